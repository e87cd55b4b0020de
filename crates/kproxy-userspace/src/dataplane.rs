//! `UserspaceDataplane`: binds the planned listeners, points the redirect table at them,
//! and only then stops the listeners nothing points to any more.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use kproxy_core::explain::{ModeProfile, PortTarget, RuleRef};
use kproxy_core::stale_flows::FlowFilter;
use kproxy_core::{Changes, Dataplane, IpFamily, Protocol, ProxyState, ServicePortName, SyncError, SyncStats};
use kproxy_netfilter::nft_text::Family;
use kproxy_netfilter::{CommandError, Conntrack, ExecNft, NetlinkConntrack, NftRunner, delete_stale_flows};

use crate::config::UserspaceConfig;
use crate::relay::{Relay, Retired, raise_nofile_limit};
use crate::render::plan::{Plan, plan};
use crate::render::rules::{TableRules, cleanup_script, full_script, patch_script, render, render_text};

const NAME: &str = "userspace";

/// The userspace dataplane. See the crate documentation.
pub struct UserspaceDataplane {
    config: UserspaceConfig,
    nft: Arc<dyn NftRunner>,
    conntrack: Arc<dyn Conntrack>,
    relay: Relay,
    /// What each family's table holds, when known (`None`: load it whole next time).
    committed: [Option<TableRules>; 2],
}

const _: () = {
    const fn assert_dataplane<T: Dataplane>() {}
    assert_dataplane::<UserspaceDataplane>()
};

impl UserspaceDataplane {
    /// A dataplane running the real `nft` and `conntrack` (in `config.netns` if set). Starts
    /// the relay's threads: its sockets live in the calling thread's network namespace.
    pub fn new(config: UserspaceConfig) -> std::io::Result<Self> {
        let nft = Arc::new(ExecNft::new(config.netns.clone()));
        let conntrack = Arc::new(NetlinkConntrack::new(config.netns.clone()));
        Self::with_runners(config, nft, conntrack)
    }

    /// A dataplane using the given runners (fakes in tests).
    pub fn with_runners(
        config: UserspaceConfig,
        nft: Arc<dyn NftRunner>,
        conntrack: Arc<dyn Conntrack>,
    ) -> std::io::Result<Self> {
        if config.raise_nofile_limit {
            match raise_nofile_limit() {
                Ok(limit) => tracing::debug!(limit, "userspace relay: open-files limit"),
                Err(error) => tracing::warn!(%error, "userspace relay: cannot raise the open-files limit"),
            }
        }
        let relay = Relay::new(config.relay.clone())?;
        Ok(Self { config, nft, conntrack, relay, committed: [None, None] })
    }

    /// The relay (ports, connections in progress).
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Graceful shutdown: stops accepting (new connections to services are then refused),
    /// waits up to `drain` for connections in progress, cuts the rest. The redirect tables
    /// stay until [`Dataplane::cleanup`]. Returns how many connections were cut.
    pub async fn shutdown(&mut self, drain: Duration) -> usize {
        self.relay.shutdown(drain).await
    }

    /// Loads one family's table: a patch when what is committed can be trusted, else (or
    /// when the patch fails) the whole table.
    async fn apply_family(&mut self, index: usize, rules: TableRules, full: bool) -> Result<(), SyncError> {
        let committed = self.committed[index].take();
        if let Some(before) = committed.filter(|b| !full && b.fixed == rules.fixed) {
            match patch_script(&before, &rules) {
                None if self.table_gone(&rules).await => {
                    tracing::warn!(table = %rules.table, "userspace redirect table gone; loading it whole");
                    self.nft.apply(&full_script(&rules)).await.map_err(sync_error)?;
                }
                None => {}
                Some(script) => match self.nft.apply(&script).await {
                    Ok(()) => {}
                    Err(error) => {
                        tracing::warn!(%error, "userspace redirect table patch failed; loading it whole");
                        self.nft.apply(&full_script(&rules)).await.map_err(sync_error)?;
                    }
                },
            }
        } else {
            self.nft.apply(&full_script(&rules)).await.map_err(sync_error)?;
        }
        self.committed[index] = Some(rules);
        Ok(())
    }
}

impl UserspaceDataplane {
    /// With nothing to send (the periodic sync): whether someone deleted the table (its
    /// output chain, a few rules over maps, cannot be listed). A tool that cannot run
    /// proves nothing.
    async fn table_gone(&self, rules: &TableRules) -> bool {
        let what = format!("list chain {} {} output", rules.family, rules.table);
        matches!(self.nft.list(&what).await, Err(CommandError::Failed { .. }))
    }
}

/// The conntrack flows that still steer UDP datagrams to the listeners in `retired`, so
/// that the flows' next datagrams meet the current rules: behind each destination of the
/// listener, answered by a portal address (the family's portal, or loopback).
fn retired_udp_flows(retired: &[Retired], plan: &Plan) -> Vec<(ServicePortName, FlowFilter)> {
    let mut flows = Vec::new();
    for gone in retired.iter().filter(|r| r.spec.protocol == Protocol::Udp) {
        let loopback: IpAddr = match gone.key.family {
            IpFamily::V4 => Ipv4Addr::LOCALHOST.into(),
            IpFamily::V6 => Ipv6Addr::LOCALHOST.into(),
        };
        let portals = plan.families[gone.key.family.index()].portal_ip.into_iter().chain([loopback]);
        for portal in portals {
            flows.extend(gone.spec.destinations.flows(portal).map(|f| (gone.key.name.clone(), f)));
        }
    }
    flows
}

fn sync_error(error: CommandError) -> SyncError {
    error.into_sync_error(NAME, "nft -f")
}

#[async_trait::async_trait]
impl Dataplane for UserspaceDataplane {
    async fn shutdown(&mut self, drain: Duration) {
        let cut = UserspaceDataplane::shutdown(self, drain).await;
        tracing::info!(cut, drain_seconds = drain.as_secs(), "userspace relay drained");
    }

    fn name(&self) -> &'static str {
        NAME
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let full = changes.full() || self.committed.iter().any(Option::is_none);
        let plan = plan(&self.config, state);
        if !plan.skipped.is_empty() {
            tracing::debug!(count = plan.skipped.len(), "userspace relay: SCTP service ports are not proxied");
        }
        let ports =
            self.relay.reconcile(&plan.listeners).map_err(|e| SyncError::retryable(NAME, "bind listeners", e))?;
        let mut rules = 0;
        for family in &plan.families {
            let table = render(&self.config.table, family, &ports);
            rules += table.elements.len();
            self.apply_family(family.family.index(), table, changes.full()).await?;
        }
        let retired = self.relay.retire(&plan.listeners);
        let stale_flows = delete_stale_flows(&*self.conntrack, retired_udp_flows(&retired, &plan)).await;
        let service_ports = state.families().map(|f| f.services.len()).sum();
        let touched = if full {
            service_ports
        } else {
            IpFamily::ALL.iter().map(|f| changes.family(*f).service_ports.len()).sum()
        };
        Ok(SyncStats {
            full,
            service_ports,
            touched_service_ports: touched,
            rules: rules + ports.len(),
            stale_flows,
            ..SyncStats::default()
        })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        self.committed = [None, None];
        self.relay.stop_all();
        for family in IpFamily::ALL {
            let script = cleanup_script(Family(family).keyword(), &self.config.table);
            self.nft.apply(&script).await.map_err(|e| SyncError::retryable(NAME, "nft delete table", e))?;
        }
        Ok(())
    }

    fn render(&self, state: &ProxyState) -> String {
        let plan = plan(&self.config, state);
        let ports = self.relay.ports();
        let mut out = String::from("# userspace relay listeners (port 0: not bound yet)\n");
        for (key, spec) in &plan.listeners {
            let port = ports.get(key).copied().unwrap_or(0);
            let endpoints: Vec<String> = spec.endpoints.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "#   {} {} {} {} port {port} -> {}",
                key.name,
                key.name.protocol,
                key.family,
                key.role.as_str(),
                endpoints.join(", ")
            );
        }
        let shown: BTreeMap<_, _> =
            plan.listeners.keys().map(|k| (k.clone(), ports.get(k).copied().unwrap_or(0))).collect();
        for family in &plan.families {
            out.push_str(&render_text(&render(&self.config.table, family, &shown)));
        }
        out
    }

    fn explain_profile(&self) -> ModeProfile {
        crate::explain::profile(NAME, &self.config)
    }

    fn explain_rules(&self, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
        crate::explain::rules(&self.config, &self.relay.ports(), state, target)
    }
}

#[cfg(test)]
#[path = "dataplane_tests.rs"]
mod tests;
