//! The `Dataplane` trait: how a backend (nftables, iptables, userspace, eBPF or yours) is
//! driven.

use crate::explain::{Explanation, ModeProfile, PortTarget, Query, RuleRef};
use crate::names::IpFamily;
use crate::proxy_state::{Changes, ProxyState};

/// Programs the node so that traffic to service IPs reaches the endpoints in a [`ProxyState`].
///
/// # Contract
///
/// - **Call order.** The runner calls [`sync`](Dataplane::sync) only after every initial list
///   (Services, EndpointSlices, this Node) has completed, and never concurrently: one call
///   ends before the next begins. The first call after start-up, and the first after an
///   error, has [`Changes::full`] set. [`cleanup`](Dataplane::cleanup) is called alone
///   (`kproxy --cleanup`), never interleaved with syncs.
/// - **Idempotence.** `sync` makes the dataplane match `state`; calling it twice with the
///   same state programs the same result. `changes` is a hint of which service ports
///   changed since the last *successful* sync; a dataplane may always do more (a full
///   rebuild is always correct), never less. When `changes.full()` is set it must not trust
///   any memory of what it programmed before.
/// - **Partial failure.** An error means the previous programming may still be in force, in
///   whole or in part, and traffic must keep flowing as well as it can: a dataplane applies
///   each change as one transaction where the kernel allows it. After an error the runner
///   retries with a full sync, and with the changes it failed to apply merged into new ones.
/// - **Errors.** [`SyncError::is_retryable`] tells the runner whether trying again can help
///   (a busy lock, a transient kernel error) or not (a missing kernel feature, no
///   permission); a fatal error stops the daemon.
/// - **Ownership.** A dataplane touches only what it installed itself (its own tables,
///   chains, maps, programs and sockets); `cleanup` removes all of that and nothing else,
///   and succeeds when there is nothing to remove.
/// - **Threads.** Implementations are `Send` so the runner can drive them from a task.
///
/// # Example: a downstream dataplane
///
/// ```
/// use kproxy_core::{Changes, Dataplane, IpFamily, ProxyState, SyncError, SyncStats};
///
/// /// Counts what it would program; a real one would write rules.
/// #[derive(Default)]
/// struct CountingDataplane {
///     service_ports: usize,
/// }
///
/// #[async_trait::async_trait]
/// impl Dataplane for CountingDataplane {
///     fn name(&self) -> &'static str {
///         "counting"
///     }
///
///     async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
///         self.service_ports = state.families().map(|f| f.services.len()).sum();
///         let touched = IpFamily::ALL.iter().map(|f| changes.family(*f).service_ports.len()).sum();
///         let (full, service_ports) = (changes.full(), self.service_ports);
///         Ok(SyncStats { full, service_ports, touched_service_ports: touched, ..SyncStats::default() })
///     }
///
///     async fn cleanup(&mut self) -> Result<(), SyncError> {
///         self.service_ports = 0;
///         Ok(())
///     }
/// }
///
/// const _: () = {
///     const fn assert_dataplane<T: Dataplane>() {}
///     assert_dataplane::<CountingDataplane>()
/// };
/// ```
#[async_trait::async_trait]
pub trait Dataplane: Send {
    /// A stable name, e.g. `"nftables"`; used in logs, metrics and `/proxyMode`.
    fn name(&self) -> &'static str;

    /// Makes the dataplane match `state`; see the trait's contract.
    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError>;

    /// Removes everything this dataplane ever installed, and nothing else.
    async fn cleanup(&mut self) -> Result<(), SyncError>;

    /// The daemon is stopping. What was programmed stays in place (kube-proxy leaves its
    /// rules so traffic keeps flowing while it restarts); a dataplane that carries
    /// connections itself (a userspace relay) stops accepting and lets connections in flight
    /// finish within `drain`. Called at most once, after the last sync. Does nothing by default.
    async fn shutdown(&mut self, drain: std::time::Duration) {
        let _ = drain;
    }

    /// What [`sync`](Dataplane::sync) would program for `state` from scratch, as text
    /// (rules, map elements, listeners), without touching the kernel: `kproxy render`.
    fn render(&self, state: &ProxyState) -> String {
        let ports: usize = state.families().map(|f| f.services.len()).sum();
        format!("# {}: no text rendering; {ports} service ports\n", self.name())
    }

    /// How this mode treats a packet's source, for `kproxy explain`. By default: it does
    /// not tell.
    fn explain_profile(&self) -> ModeProfile {
        ModeProfile::unknown(self.name())
    }

    /// The names of what [`render`](Dataplane::render) programs for `target` (chains,
    /// rules, map elements, listeners, map keys), for `kproxy explain`; computed by the
    /// same functions that render them. Empty by default.
    fn explain_rules(&self, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
        let _ = (state, target);
        Vec::new()
    }

    /// The packet counters this dataplane's rules keep in the kernel, read when metrics
    /// are scraped. None by default.
    fn packet_counters(&self) -> Option<std::sync::Arc<dyn crate::PacketCounters>> {
        None
    }
}

/// [`explain`](crate::explain::explain) with `dataplane`'s profile and rule names.
pub fn explain_with(dataplane: &dyn Dataplane, state: &ProxyState, query: &Query) -> Explanation {
    crate::explain::explain(state, query, &dataplane.explain_profile(), |target| dataplane.explain_rules(state, target))
}

/// What one successful sync did, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStats {
    /// It was a full rebuild.
    pub full: bool,
    /// Service ports programmed in all (both families).
    pub service_ports: usize,
    /// Service ports rewritten by this sync.
    pub touched_service_ports: usize,
    /// Rules, map elements or listeners written, as the dataplane counts them.
    pub rules: usize,
    /// The stale UDP flows this sync deleted, if it looked for any.
    pub stale_flows: Option<crate::stale_flows::FlowCleanup>,
    /// Per family (indexed by [`IpFamily::index`]), failed attempts to remove stale objects
    /// left in the kernel by an earlier run, which this sync recovered from (upstream's
    /// `kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total`).
    pub cleanup_failures: [usize; 2],
    /// Rules per family and table, for a dataplane that writes iptables tables.
    pub table_rules: Option<TableRuleCounts>,
    /// The fixed-size kernel maps the dataplane fills (eBPF maps): capacity and use
    /// (`kproxy_ebpf_map_max_entries`, `kproxy_ebpf_map_entries`); empty for other kinds.
    pub maps: MapUsages,
}

/// One fixed-size kernel map a dataplane fills (an eBPF map): how many entries it can hold
/// and how many the dataplane has written to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapUsage {
    /// The map's name, e.g. `kp_services`.
    pub map: &'static str,
    /// The entries it can hold.
    pub max_entries: u64,
    /// The entries the dataplane has written and not removed; `None` for a map the kernel
    /// side fills (an LRU map of connections or affinity).
    pub entries: Option<u64>,
}

/// The maps of [`SyncStats::maps`]: up to [`MapUsages::CAPACITY`] of them, in a fixed
/// array so that the stats stay `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapUsages {
    len: usize,
    maps: [MapUsage; MapUsages::CAPACITY],
}

impl MapUsages {
    /// How many maps it holds at most.
    pub const CAPACITY: usize = 16;

    /// Adds `usage`; `false` (and nothing added) when [`MapUsages::CAPACITY`] are there.
    pub fn push(&mut self, usage: MapUsage) -> bool {
        let Some(slot) = self.maps.get_mut(self.len) else { return false };
        *slot = usage;
        self.len += 1;
        true
    }

    /// The maps, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = &MapUsage> {
        self.maps[..self.len].iter()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<MapUsage> for MapUsages {
    /// The first [`MapUsages::CAPACITY`] of `maps`.
    fn from_iter<I: IntoIterator<Item = MapUsage>>(maps: I) -> Self {
        let mut usages = Self::default();
        for usage in maps {
            if !usages.push(usage) {
                break;
            }
        }
        usages
    }
}

/// The tables of [`TableRuleCounts`], in index order.
pub const RULE_TABLES: [&str; 2] = ["filter", "nat"];

/// Rules an iptables-like dataplane owns and wrote, per family (indexed by
/// [`IpFamily::index`]) and table (indexed as [`RULE_TABLES`]): upstream's
/// `kubeproxy_sync_proxy_rules_iptables_total` and `…_iptables_last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableRuleCounts {
    /// Rules in the tables after the sync.
    pub total: [[usize; 2]; 2],
    /// Rules the sync wrote.
    pub written: [[usize; 2]; 2],
}

/// Whether trying the same sync again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Transient: the runner retries after its retry interval, with a full sync.
    Retryable,
    /// The dataplane refused the state itself (the kernel or a tool rejected the rules
    /// written for it): the same state fails again, but one without the offending service
    /// ports can succeed. [`ProxyLoop`](crate::ProxyLoop) finds and quarantines those ports
    /// and programs the rest in the same sync.
    Rejected,
    /// Permanent: retrying cannot help; the daemon reports it and exits.
    Fatal,
}

/// A failed sync or cleanup.
#[derive(Debug, thiserror::Error)]
#[error("{dataplane} {step} failed: {source}")]
pub struct SyncError {
    /// The dataplane's name.
    pub dataplane: &'static str,
    /// The step that failed, e.g. `"nft -f"` or `"iptables-restore"`.
    pub step: &'static str,
    /// Whether a retry can help.
    pub retry: Retry,
    /// The family whose step failed, when the dataplane programs families separately
    /// (`None`: both, or not known); failure metrics are counted per family.
    pub family: Option<IpFamily>,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl SyncError {
    /// A transient failure of `step`.
    pub fn retryable(
        dataplane: &'static str,
        step: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { dataplane, step, retry: Retry::Retryable, family: None, source: source.into() }
    }

    /// `step` refused the state (see [`Retry::Rejected`]).
    pub fn rejected(
        dataplane: &'static str,
        step: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { dataplane, step, retry: Retry::Rejected, family: None, source: source.into() }
    }

    /// A permanent failure of `step`.
    pub fn fatal(
        dataplane: &'static str,
        step: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { dataplane, step, retry: Retry::Fatal, family: None, source: source.into() }
    }

    /// The same error, naming the family whose step failed.
    pub fn in_family(self, family: IpFamily) -> Self {
        Self { family: Some(family), ..self }
    }

    /// Whether the runner should try again (also after a rejection: the state changes).
    pub fn is_retryable(&self) -> bool {
        self.retry != Retry::Fatal
    }

    /// Whether the dataplane refused the state itself (see [`Retry::Rejected`]).
    pub fn is_rejection(&self) -> bool {
        self.retry == Retry::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_usages_keep_their_order_and_stop_at_their_capacity() {
        let usage = |max_entries| MapUsage { map: "m", max_entries, entries: Some(1) };
        let usages: MapUsages = (1..=20).map(usage).collect();
        let maxima: Vec<u64> = usages.iter().map(|u| u.max_entries).collect();
        assert_eq!(maxima, (1..=16).collect::<Vec<u64>>());
        let mut usages = usages;
        assert!(!usages.push(usage(21)), "full");
        assert!(MapUsages::default().is_empty() && !usages.is_empty());
    }
}
