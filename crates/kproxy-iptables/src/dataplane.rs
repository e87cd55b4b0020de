//! `IptablesDataplane`: one restore per family and sync, full or partial, with what was
//! committed kept in memory.

use std::sync::Arc;

use kproxy_core::explain::{ModeProfile, PortTarget, RuleRef};
use kproxy_core::render::render_changes;
use kproxy_core::stale_flows::stale_udp_flows;
use kproxy_core::{
    Changes, Dataplane, IpFamily, PacketCounter, PacketCounters, ProxyState, SyncError, SyncStats, TableRuleCounts,
};
use kproxy_netfilter::{
    CT_STATE_INVALID_DROPPED, CommandError, Conntrack, ExecIptables, FakeNfacct, IptablesBackend, IptablesRunner,
    LOCALHOST_NODEPORTS_ACCEPTED, NetlinkConntrack, NetlinkNfacct, Netns, Nfacct, delete_stale_flows,
};

use crate::apply::{Committed, Updates, cleanup_text, full_text, rule_count, written_per_table};
use crate::config::{Backend, IptablesConfig, NfacctCounters};
use crate::render::names::KUBE_PROXY_CANARY;
use crate::render::{RenderContext, render_family, render_port, render_statics, render_text};

const NAME: &str = "iptables";

/// The iptables dataplane. See the crate documentation for the tables' shape.
pub struct IptablesDataplane {
    config: IptablesConfig,
    /// One runner per family (IPv4 first); `None` until the backend is detected.
    runners: Option<[Arc<dyn IptablesRunner>; 2]>,
    /// The runners are the real tools, built from the configuration.
    exec: bool,
    conntrack: Arc<dyn Conntrack>,
    /// upstream's nfacct counters, which the rules feed once they exist.
    nfacct: Arc<dyn Nfacct>,
    /// What each family's tables hold, when known (`None`: sync it fully next time).
    committed: [Option<Committed>; 2],
}

const _: () = {
    const fn assert_dataplane<T: Dataplane>() {}
    assert_dataplane::<IptablesDataplane>()
};

/// What one family's sync did.
#[derive(Default)]
struct FamilySync {
    full: bool,
    touched: usize,
    rules: usize,
    /// Rules written per table (filter, nat).
    written: [usize; 2],
}

impl IptablesDataplane {
    /// A dataplane running the real tools (in `config.netns` if set); with
    /// [`Backend::Auto`] the flavour is detected on the first sync.
    pub fn new(config: IptablesConfig) -> Self {
        let conntrack = Arc::new(NetlinkConntrack::new(config.netns.clone()));
        let runners = match config.backend {
            Backend::Auto => None,
            Backend::Legacy => Some(exec_runners(&config, IptablesBackend::Legacy)),
            Backend::Nft => Some(exec_runners(&config, IptablesBackend::Nft)),
        };
        let nfacct = Arc::new(NetlinkNfacct::new(config.netns.clone()));
        Self { config, runners, exec: true, conntrack, nfacct, committed: [None, None] }
    }

    /// A dataplane using the given runners (fakes in tests): `ipv4` and `ipv6`; no nfacct
    /// counter can be created unless [`with_nfacct`](Self::with_nfacct) gives some.
    pub fn with_runners(
        config: IptablesConfig,
        ipv4: Arc<dyn IptablesRunner>,
        ipv6: Arc<dyn IptablesRunner>,
        conntrack: Arc<dyn Conntrack>,
    ) -> Self {
        let nfacct = Arc::new(FakeNfacct::refusing());
        Self { config, runners: Some([ipv4, ipv6]), exec: false, conntrack, nfacct, committed: [None, None] }
    }

    /// The same dataplane with its nfacct counters kept by `nfacct`.
    pub fn with_nfacct(mut self, nfacct: Arc<dyn Nfacct>) -> Self {
        self.nfacct = nfacct;
        self
    }

    /// Creates upstream's nfacct counters the kernel does not have yet; the rules feed
    /// those that exist (upstream does this before each full sync).
    async fn ensure_counters(&mut self) {
        let wanted = [
            (CT_STATE_INVALID_DROPPED, self.config.counters.ct_state_invalid_dropped),
            (LOCALHOST_NODEPORTS_ACCEPTED, self.config.counters.localhost_nodeports_accepted),
        ];
        let mut exists = [false; 2];
        for (slot, (name, existed)) in exists.iter_mut().zip(wanted) {
            *slot = match self.nfacct.ensure(name).await {
                Ok(()) => true,
                Err(error) => {
                    if existed {
                        tracing::warn!(%error, counter = name, "nfacct counter lost: its metric stops counting");
                    } else {
                        tracing::debug!(%error, counter = name, "no nfacct counter: its metric will not count");
                    }
                    false
                }
            };
        }
        self.config.counters =
            NfacctCounters { ct_state_invalid_dropped: exists[0], localhost_nodeports_accepted: exists[1] };
    }

    /// The runner of `family`, detecting the backend first if needed.
    async fn runner(&mut self, family: IpFamily) -> Arc<dyn IptablesRunner> {
        let runners = match self.runners.take() {
            Some(runners) => runners,
            None => {
                let backend = IptablesBackend::detect(&Netns(self.config.netns.clone())).await;
                tracing::info!(%backend, "iptables backend detected");
                exec_runners(&self.config, backend)
            }
        };
        let runner = runners[family.index()].clone();
        self.runners = Some(runners);
        runner
    }

    async fn sync_family(
        &mut self,
        state: &ProxyState,
        changes: &Changes,
        family: IpFamily,
    ) -> Result<FamilySync, SyncError> {
        let runner = self.runner(family).await;
        let committed = self.committed[family.index()].take().filter(|_| !changes.full());
        if let Some(committed) = committed {
            match self.partial_sync(&*runner, state, changes, family, committed).await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => tracing::warn!(?family, "{KUBE_PROXY_CANARY} is gone (tables flushed?): full resync"),
                Err(error) => tracing::warn!(%error, ?family, "partial iptables sync failed: full resync"),
            }
        }
        self.full_sync(&*runner, state, family).await
    }

    /// Rewrites the shared chains and the changed ports' chains; `None` when the canary is
    /// missing and nothing was written.
    async fn partial_sync(
        &mut self,
        runner: &dyn IptablesRunner,
        state: &ProxyState,
        changes: &Changes,
        family: IpFamily,
        mut committed: Committed,
    ) -> Result<Option<FamilySync>, SyncError> {
        if !runner.chain_exists("mangle", KUBE_PROXY_CANARY).await.unwrap_or(false) {
            return Ok(None);
        }
        let names = &changes.family(family).service_ports;
        let mut done = FamilySync { touched: names.len(), ..FamilySync::default() };
        if !names.is_empty() {
            let config = on_node(&self.config, &state.node);
            let ctx = RenderContext::new(&config, state, family);
            let updates: Updates = render_changes(state.family(family), names, |e| render_port(&ctx, e)).collect();
            let statics = render_statics(&config, family);
            let text = committed.partial_text(&statics, &updates);
            runner.restore(&text).await.map_err(|e| sync_error("iptables-restore", e))?;
            committed.apply(&updates, &statics, &text);
            done.rules = rule_count(&text);
            done.written = written_per_table(&text);
        }
        self.committed[family.index()] = Some(committed);
        Ok(Some(done))
    }

    /// Writes everything, adds missing jumps and canaries, deletes stale service chains.
    async fn full_sync(
        &mut self,
        runner: &dyn IptablesRunner,
        state: &ProxyState,
        family: IpFamily,
    ) -> Result<FamilySync, SyncError> {
        let config = on_node(&self.config, &state.node);
        let render = render_family(&config, state, family);
        if config.localhost_nodeports_in(family)
            && let Err(error) = runner.enable_route_localnet().await
        {
            tracing::warn!(%error, "cannot set route_localnet: NodePorts on 127.0.0.1 will not work");
        }
        let filter = runner.save("filter").await.map_err(|e| sync_error("iptables-save", e))?;
        let nat = runner.save("nat").await.map_err(|e| sync_error("iptables-save", e))?;
        let text = full_text(&render, &filter, &nat);
        runner.restore(&text).await.map_err(|e| sync_error("iptables-restore", e))?;
        self.committed[family.index()] = Some(Committed::of(&render, &text));
        let written = written_per_table(&text);
        Ok(FamilySync { full: true, touched: render.ports.len(), rules: rule_count(&text), written })
    }

    /// The runners cleanup goes through: with detection, both flavours.
    fn cleanup_runners(&self) -> Vec<Arc<dyn IptablesRunner>> {
        let backends = match (self.exec, self.config.backend) {
            (false, _) => return self.runners.iter().flatten().cloned().collect(),
            (true, Backend::Legacy) => vec![IptablesBackend::Legacy],
            (true, Backend::Nft) => vec![IptablesBackend::Nft],
            (true, Backend::Auto) => vec![IptablesBackend::Legacy, IptablesBackend::Nft],
        };
        backends.into_iter().flat_map(|b| exec_runners(&self.config, b)).collect()
    }
}

fn exec_runners(config: &IptablesConfig, backend: IptablesBackend) -> [Arc<dyn IptablesRunner>; 2] {
    let runner = |prefix| Arc::new(ExecIptables::new(prefix, backend, config.netns.clone())) as Arc<dyn IptablesRunner>;
    [runner("iptables"), runner("ip6tables")]
}

/// `config` on `node`: `--nodeport-addresses primary` turned into the node's primary IPs,
/// `--detect-local-mode NodeCIDR` into its pod CIDRs.
pub(crate) fn on_node<'a>(
    config: &'a IptablesConfig,
    node: &kproxy_core::LocalNode,
) -> std::borrow::Cow<'a, IptablesConfig> {
    let addresses = &config.nodeport_addresses;
    let config = kproxy_netfilter::config_for_node(config, addresses, node, |copy| &mut copy.nodeport_addresses);
    let detect = config.local_detect.clone();
    kproxy_netfilter::local_cidrs_for_node(config, &detect, node, |copy| &mut copy.cluster_cidrs)
}

fn sync_error(step: &'static str, error: CommandError) -> SyncError {
    error.into_sync_error(NAME, step)
}

#[async_trait::async_trait]
impl Dataplane for IptablesDataplane {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let mut stats = SyncStats::default();
        let mut tables = TableRuleCounts::default();
        // Before the sync: a deleted port's addresses still come from what was committed.
        let stale = stale_udp_flows(state, changes, &self.config.families, |family, name| {
            self.committed[family.index()].as_ref()?.destinations(name).cloned()
        });
        if self.committed.iter().any(Option::is_none) || changes.full() {
            self.ensure_counters().await;
        }
        for family in self.config.families.clone() {
            let done = self.sync_family(state, changes, family).await.map_err(|e| e.in_family(family))?;
            stats.full |= done.full;
            stats.touched_service_ports += done.touched;
            stats.rules += done.rules;
            stats.service_ports += state.family(family).services.len();
            tables.written[family.index()] = done.written;
            tables.total[family.index()] = self.committed[family.index()].as_ref().map_or([0; 2], Committed::totals);
        }
        stats.table_rules = Some(tables);
        stats.stale_flows = delete_stale_flows(&*self.conntrack, stale).await;
        Ok(stats)
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        self.committed = [None, None];
        for runner in self.cleanup_runners() {
            let save = match runner.save("").await {
                Ok(save) => save,
                // No such tool: it never installed anything.
                Err(error) if error.is_spawn_failure() => continue,
                Err(error) => return Err(sync_error("iptables-save", error)),
            };
            if let Some(text) = cleanup_text(&save) {
                runner.restore(&text).await.map_err(|e| sync_error("iptables-restore", e))?;
            }
        }
        // Unused now that our rules are gone (a rule of another flavour may still hold one).
        for name in [CT_STATE_INVALID_DROPPED, LOCALHOST_NODEPORTS_ACCEPTED] {
            if let Err(error) = self.nfacct.delete(name).await {
                tracing::debug!(%error, counter = name, "nfacct counter not deleted");
            }
        }
        Ok(())
    }

    fn render(&self, state: &ProxyState) -> String {
        let mut out = String::new();
        for family in &self.config.families {
            let tool = if *family == IpFamily::V4 { "iptables" } else { "ip6tables" };
            out.push_str(&format!("# {family}: {tool}-restore --noflush\n"));
            out.push_str(&render_text(&render_family(&on_node(&self.config, &state.node), state, *family)));
        }
        out
    }

    fn explain_profile(&self) -> ModeProfile {
        crate::explain::profile(NAME, &self.config)
    }

    fn explain_rules(&self, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
        crate::explain::rules(&on_node(&self.config, &state.node), state, target)
    }

    fn packet_counters(&self) -> Option<Arc<dyn PacketCounters>> {
        Some(Arc::new(NfacctMetrics(self.nfacct.clone())))
    }
}

/// upstream's nfacct-backed metrics, read from the kernel at each scrape.
struct NfacctMetrics(Arc<dyn Nfacct>);

const NFACCT_METRICS: [(PacketCounter, &str); 2] = [
    (PacketCounter::IptablesCtStateInvalidDropped, CT_STATE_INVALID_DROPPED),
    (PacketCounter::IptablesLocalhostNodePortsAccepted, LOCALHOST_NODEPORTS_ACCEPTED),
];

#[async_trait::async_trait]
impl PacketCounters for NfacctMetrics {
    fn kinds(&self) -> Vec<PacketCounter> {
        NFACCT_METRICS.iter().map(|(kind, _)| *kind).collect()
    }

    async fn read(&self) -> Vec<(PacketCounter, u64)> {
        let mut out = Vec::new();
        for (kind, name) in NFACCT_METRICS {
            match self.0.packets(name).await {
                Ok(Some(packets)) => out.push((kind, packets)),
                Ok(None) => {}
                Err(error) => tracing::debug!(%error, counter = name, "cannot read nfacct counter"),
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "dataplane_tests.rs"]
mod tests;
