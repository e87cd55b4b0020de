//! `NftablesDataplane`: keeps what it committed per family, sends only differences, and
//! falls back to a full load whenever its memory cannot be trusted.

use std::sync::Arc;

use kproxy_core::explain::{ModeProfile, PortTarget, RuleRef};
use kproxy_core::render::render_changes;
use kproxy_core::stale_flows::{FlowFilter, stale_udp_flows};
use kproxy_core::{Changes, Dataplane, IpFamily, PacketCounters, ProxyState, ServicePortName, SyncError, SyncStats};
use kproxy_netfilter::{CommandError, Conntrack, ExecNft, NetlinkConntrack, NftRunner, delete_stale_flows};

use crate::apply::{Committed, FullLoad, cleanup_script, existing_objects, partial_script, replace_script};
use crate::config::NftablesConfig;
use crate::counters::TableCounters;
use crate::render::names::CT_STATE_INVALID_DROPPED;
use crate::render::{PortRender, RenderContext, render_family, render_port, render_static, render_text};

const NAME: &str = "nftables";

/// The nftables dataplane. See the crate documentation for the table's shape.
pub struct NftablesDataplane {
    config: NftablesConfig,
    nft: Arc<dyn NftRunner>,
    conntrack: Arc<dyn Conntrack>,
    /// What each family's table holds, when known (`None`: load it fully next time).
    committed: [Option<Committed>; 2],
    /// Per family, loads over an existing table that failed since the last report.
    cleanup_failures: [usize; 2],
}

const _: () = {
    const fn assert_dataplane<T: Dataplane>() {}
    assert_dataplane::<NftablesDataplane>()
};

impl NftablesDataplane {
    /// A dataplane running the real `nft` and `conntrack` (in `config.netns` if set).
    pub fn new(config: NftablesConfig) -> Self {
        let nft = Arc::new(ExecNft::new(config.netns.clone()));
        let conntrack = Arc::new(NetlinkConntrack::new(config.netns.clone()));
        Self::with_runners(config, nft, conntrack)
    }

    /// A dataplane using the given runners (fakes in tests).
    pub fn with_runners(config: NftablesConfig, nft: Arc<dyn NftRunner>, conntrack: Arc<dyn Conntrack>) -> Self {
        Self { config, nft, conntrack, committed: [None, None], cleanup_failures: [0; 2] }
    }

    async fn sync_family(
        &mut self,
        state: &ProxyState,
        changes: &Changes,
        family: IpFamily,
    ) -> Result<usize, SyncError> {
        let trusted = !changes.full() && self.committed[family.index()].is_some();
        if trusted {
            match self.partial_sync(state, changes, family).await {
                Ok(touched) => return Ok(touched),
                Err(error) => tracing::warn!(%error, ?family, "partial nftables sync failed; loading the table fully"),
            }
        }
        self.full_sync(state, family).await
    }

    /// Loads the whole table, written while each port is rendered and taken into what
    /// will be committed ([`FullLoad`]): neither the render of the whole table nor its
    /// script is held (only the rare fallback renders it whole).
    async fn full_sync(&mut self, state: &ProxyState, family: IpFamily) -> Result<usize, SyncError> {
        self.committed[family.index()] = None;
        let config = on_node(&self.config, &state.node);
        let ctx = RenderContext { family: crate::Family(family), config: &config, node: state.topology_node() };
        let statics = render_static(&ctx, state);
        let listing = self.listing().await;
        let existing = existing_objects(&listing, crate::Family(family).keyword(), &self.config.table);
        let ports = state.family(family);
        let mut load = FullLoad {
            ctx: &ctx,
            statics: &statics,
            ports,
            name: &self.config.table,
            existing: &existing,
            committed: Committed::default(),
        };
        let committed = match self.nft.apply_streamed(&mut load).await {
            Ok(()) => load.committed,
            Err(error) => {
                drop(load);
                tracing::warn!(%error, ?family, "loading over the existing table failed; replacing it");
                self.cleanup_failures[family.index()] += 1;
                let table = render_family(&config, state, family);
                self.nft.apply(&replace_script(&table, &self.config.table)).await.map_err(sync_error)?;
                Committed::from_renders(table.ports)
            }
        };
        let touched = committed.ports.len();
        self.committed[family.index()] = Some(committed);
        Ok(touched)
    }

    /// The chains and sets of every table, as `nft` lists them (empty if listing fails).
    async fn listing(&self) -> String {
        let chains = self.nft.list("list chains").await.unwrap_or_default();
        let sets = self.nft.list("-t list sets").await.unwrap_or_default();
        format!("{chains}\n{sets}")
    }

    async fn partial_sync(
        &mut self,
        state: &ProxyState,
        changes: &Changes,
        family: IpFamily,
    ) -> Result<usize, SyncError> {
        let config = on_node(&self.config, &state.node);
        let ctx = RenderContext { family: crate::Family(family), config: &config, node: state.topology_node() };
        let names = &changes.family(family).service_ports;
        let renders: Vec<(ServicePortName, Option<PortRender>)> =
            render_changes(state.family(family), names, |entry| render_port(&ctx, entry)).collect();
        let touched = renders.len();
        let committed = self.committed[family.index()].take().unwrap_or_default();
        let mut committed = committed;
        let delta = committed.update(renders);
        if delta.is_empty() {
            self.check_table(family).await?;
        } else {
            let script = partial_script(ctx.family.keyword(), &self.config.table, &delta);
            self.nft.apply(&script).await.map_err(sync_error)?;
        }
        self.committed[family.index()] = Some(committed);
        Ok(touched)
    }

    /// With nothing to send (the periodic sync), checks that the table is still there,
    /// by a counter it always declares (read over netlink, not by listing the table):
    /// a table someone deleted is loaded again at once rather than at the hourly full
    /// sync, as upstream's iptables canary does. A failed read proves nothing.
    async fn check_table(&self, family: IpFamily) -> Result<(), SyncError> {
        match self.nft.counter_packets(family, &self.config.table, CT_STATE_INVALID_DROPPED).await {
            Ok(None) => Err(SyncError::retryable(NAME, "check table", "the table or its counters are gone")),
            Ok(Some(_)) => Ok(()),
            Err(error) => {
                tracing::debug!(%error, ?family, "cannot check the nftables table");
                Ok(())
            }
        }
    }

    /// The flows of every stale UDP endpoint in `changes`. Computed before a sync, so that
    /// a deleted service's addresses still come from what was committed.
    fn stale_flows(&self, state: &ProxyState, changes: &Changes) -> Vec<(ServicePortName, FlowFilter)> {
        stale_udp_flows(state, changes, &IpFamily::ALL, |family, name| {
            Some(self.committed[family.index()].as_ref()?.ports.get(name)?.destinations.clone())
        })
    }
}

/// The configuration as it applies on `node` (`--nodeport-addresses primary` and
/// `--detect-local-mode NodeCIDR` resolved).
pub(crate) fn on_node<'a>(
    config: &'a NftablesConfig,
    node: &kproxy_core::LocalNode,
) -> std::borrow::Cow<'a, NftablesConfig> {
    let config =
        kproxy_netfilter::config_for_node(config, &config.nodeport_addresses, node, |c| &mut c.nodeport_addresses);
    let detect = config.local_detect.clone();
    kproxy_netfilter::local_cidrs_for_node(config, &detect, node, |c| &mut c.cluster_cidrs)
}

fn sync_error(error: CommandError) -> SyncError {
    error.into_sync_error(NAME, "nft -f")
}

#[async_trait::async_trait]
impl Dataplane for NftablesDataplane {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let full = changes.full() || self.committed.iter().any(Option::is_none);
        let stale = self.stale_flows(state, changes);
        let mut touched = 0;
        for family in IpFamily::ALL {
            touched += self.sync_family(state, changes, family).await.map_err(|e| e.in_family(family))?;
        }
        let stale_flows = delete_stale_flows(&*self.conntrack, stale).await;
        let service_ports = state.families().map(|f| f.services.len()).sum();
        let cleanup_failures = std::mem::take(&mut self.cleanup_failures);
        Ok(SyncStats {
            full,
            service_ports,
            touched_service_ports: touched,
            rules: 0,
            stale_flows,
            cleanup_failures,
            ..SyncStats::default()
        })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        self.committed = [None, None];
        for family in IpFamily::ALL {
            let script = cleanup_script(crate::Family(family).keyword(), &self.config.table);
            self.nft.apply(&script).await.map_err(|e| SyncError::retryable(NAME, "nft delete table", e))?;
        }
        Ok(())
    }

    fn render(&self, state: &ProxyState) -> String {
        let config = on_node(&self.config, &state.node);
        IpFamily::ALL.iter().map(|f| render_text(&render_family(&config, state, *f), &config.table)).collect()
    }

    fn explain_profile(&self) -> ModeProfile {
        crate::explain::profile(NAME, &self.config)
    }

    fn explain_rules(&self, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
        crate::explain::rules(&on_node(&self.config, &state.node), state, target)
    }

    fn packet_counters(&self) -> Option<Arc<dyn PacketCounters>> {
        Some(Arc::new(TableCounters {
            nft: self.nft.clone(),
            table: self.config.table.clone(),
            localhost_nodeports_served: self.config.localhost_nodeports_served,
        }))
    }
}

#[cfg(test)]
#[path = "dataplane_tests.rs"]
mod tests;
