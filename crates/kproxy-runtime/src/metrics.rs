//! Prometheus metrics with upstream kube-proxy's names, types, labels and buckets
//! (`pkg/proxy/metrics/metrics.go`, subsystem `kubeproxy`), so existing dashboards and
//! alerts keep working.
//!
//! prometheus-client writes the OpenMetrics text format and appends `_total` to counter
//! samples itself, so counters are registered without it; gauges whose upstream name ends
//! in `_total` (`kubeproxy_sync_proxy_rules_no_local_endpoints_total`) keep it. No unit is
//! registered, so no unit suffix is added. As upstream since 1.33, the sync metrics carry an
//! `ip_family` label (`IPv4`, `IPv6`). One kproxy sync programs both families, so it is
//! observed under both; a failure the dataplane traces to one family counts under that
//! family only.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kproxy_core::stale_flows::FlowCleanup;
use kproxy_core::{IpFamily, MapUsages, ObjectKind, PacketCounters, RULE_TABLES, TableRuleCounts};
use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets, linear_buckets};
use prometheus_client::registry::Registry;

mod packet_counters;
#[cfg(test)]
mod tests;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A traffic policy, the `traffic_policy` label of
/// `kubeproxy_sync_proxy_rules_no_local_endpoints_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrafficPolicy {
    /// `internalTrafficPolicy: Local`.
    Internal,
    /// `externalTrafficPolicy: Local`.
    External,
}

impl TrafficPolicy {
    /// The label value: `internal` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::External => "external",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FamilyLabel {
    ip_family: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabel {
    ip_family: &'static str,
    table: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TrafficPolicyLabel {
    ip_family: &'static str,
    traffic_policy: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MapLabel {
    map: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type PerFamily<M> = Family<FamilyLabel, M>;
type HistogramPerFamily = Family<FamilyLabel, Histogram, fn() -> Histogram>;

fn family_label(family: IpFamily) -> FamilyLabel {
    FamilyLabel { ip_family: family.as_str() }
}

fn sync_histogram() -> Histogram {
    Histogram::new(sync_duration_buckets())
}

fn network_programming_histogram() -> Histogram {
    Histogram::new(network_programming_buckets())
}

/// The daemon's metrics and the registry that exposes them. Cheap to share behind an `Arc`;
/// every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    sync_duration: HistogramPerFamily,
    sync_full_duration: HistogramPerFamily,
    sync_partial_duration: HistogramPerFamily,
    network_programming_duration: HistogramPerFamily,
    last_sync: PerFamily<FloatGauge>,
    last_queued: PerFamily<FloatGauge>,
    service_changes_pending: Gauge,
    service_changes: Counter,
    endpoint_changes_pending: Gauge,
    endpoint_changes: Counter,
    no_local_endpoints: Family<TrafficPolicyLabel, Gauge>,
    healthz: Family<CodeLabel, Counter>,
    livez: Family<CodeLabel, Counter>,
    malformed_objects: Family<KindLabel, Counter>,
    service_port_conflicts: Gauge,
    quarantined_service_ports: Gauge,
    nftables_sync_failures: PerFamily<Counter>,
    nftables_cleanup_failures: PerFamily<Counter>,
    iptables_restore_failures: PerFamily<Counter>,
    iptables_partial_restore_failures: PerFamily<Counter>,
    conntrack_reconcile_duration: HistogramPerFamily,
    conntrack_deleted_entries: PerFamily<Counter>,
    iptables_total: Family<TableLabel, Gauge>,
    iptables_last: Family<TableLabel, Gauge>,
    ebpf_sync_failures: PerFamily<Counter>,
    ebpf_map_max_entries: Family<MapLabel, Gauge>,
    ebpf_map_entries: Family<MapLabel, Gauge>,
    packet_counters: Option<packet_counters::PacketCounterMetrics>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Upstream's sync-duration buckets: `ExponentialBuckets(0.001, 2, 15)`.
pub fn sync_duration_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 15).collect()
}

/// Upstream's network-programming buckets: `MergeBuckets` (which starts with a 0 bucket) of
/// 0.25 s and 0.5 s, 1..=59 s, 60..=115 s by 5 s and 120..=300 s by 30 s.
pub fn network_programming_buckets() -> Vec<f64> {
    std::iter::once(0.0)
        .chain(linear_buckets(0.25, 0.25, 2))
        .chain(linear_buckets(1.0, 1.0, 59))
        .chain(linear_buckets(60.0, 5.0, 12))
        .chain(linear_buckets(120.0, 30.0, 7))
        .collect()
}

impl Metrics {
    /// Every metric, registered and initialised (labelled series start at 0).
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::default(),
            sync_duration: Family::new_with_constructor(sync_histogram),
            sync_full_duration: Family::new_with_constructor(sync_histogram),
            sync_partial_duration: Family::new_with_constructor(sync_histogram),
            network_programming_duration: Family::new_with_constructor(network_programming_histogram),
            last_sync: Family::default(),
            last_queued: Family::default(),
            service_changes_pending: Gauge::default(),
            service_changes: Counter::default(),
            endpoint_changes_pending: Gauge::default(),
            endpoint_changes: Counter::default(),
            no_local_endpoints: Family::default(),
            healthz: Family::default(),
            livez: Family::default(),
            malformed_objects: Family::default(),
            service_port_conflicts: Gauge::default(),
            quarantined_service_ports: Gauge::default(),
            nftables_sync_failures: Family::default(),
            nftables_cleanup_failures: Family::default(),
            iptables_restore_failures: Family::default(),
            iptables_partial_restore_failures: Family::default(),
            conntrack_reconcile_duration: Family::new_with_constructor(sync_histogram),
            conntrack_deleted_entries: Family::default(),
            iptables_total: Family::default(),
            iptables_last: Family::default(),
            ebpf_sync_failures: Family::default(),
            ebpf_map_max_entries: Family::default(),
            ebpf_map_entries: Family::default(),
            packet_counters: None,
        };
        metrics.register_sync();
        metrics.register_failures();
        metrics.register_changes();
        metrics.register_health();
        metrics.register_ebpf();
        metrics.initialise_labels();
        metrics
    }

    fn register_sync(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds",
            self.sync_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for full resyncs",
            self.sync_full_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds",
            "SyncProxyRules latency in seconds for partial resyncs",
            self.sync_partial_duration.clone(),
        );
        r.register(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            self.network_programming_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            self.last_sync.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            self.last_queued.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            self.no_local_endpoints.clone(),
        );
    }

    fn register_failures(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "Cumulative nftables transactions the kernel rejected (nftables and userspace modes)",
            self.nftables_sync_failures.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_nftables_cleanup_failures",
            "Cumulative proxy nftables cleanup failures",
            self.nftables_cleanup_failures.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures",
            "Cumulative proxy iptables restore failures",
            self.iptables_restore_failures.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures",
            "Cumulative proxy iptables partial restore failures",
            self.iptables_partial_restore_failures.clone(),
        );
        r.register(
            "kubeproxy_conntrack_reconciler_sync_duration_seconds",
            "ReconcileConntrackFlowsLatency latency in seconds",
            self.conntrack_reconcile_duration.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_iptables_total",
            "Total number of iptables rules owned by kube-proxy",
            self.iptables_total.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_iptables_last",
            "Number of iptables rules written by kube-proxy in last sync",
            self.iptables_last.clone(),
        );
        r.register(
            "kubeproxy_conntrack_reconciler_deleted_entries",
            "Cumulative conntrack flows deleted by conntrack reconciler",
            self.conntrack_deleted_entries.clone(),
        );
    }

    fn register_changes(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules Endpoint changes",
            self.endpoint_changes_pending.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_endpoint_changes",
            "Cumulative proxy rules Endpoint changes",
            self.endpoint_changes.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes",
            self.service_changes_pending.clone(),
        );
        r.register(
            "kubeproxy_sync_proxy_rules_service_changes",
            "Cumulative proxy rules Service changes",
            self.service_changes.clone(),
        );
        r.register(
            "kubeproxy_malformed_objects",
            "Cumulative API objects skipped because they could not be used",
            self.malformed_objects.clone(),
        );
        r.register(
            "kproxy_service_port_conflicts",
            "Claims on an address and port (or a node port) that a service port lost to an older one",
            self.service_port_conflicts.clone(),
        );
        r.register(
            "kproxy_quarantined_service_ports",
            "Service ports held out of the dataplane because programming them failed",
            self.quarantined_service_ports.clone(),
        );
    }

    /// The eBPF mode's own (no upstream counterpart); their series appear once it reports.
    fn register_ebpf(&mut self) {
        let r = &mut self.registry;
        r.register(
            "kproxy_ebpf_sync_failures",
            "Cumulative eBPF dataplane syncs that failed (a map write, or a map that would exceed its capacity)",
            self.ebpf_sync_failures.clone(),
        );
        r.register(
            "kproxy_ebpf_map_max_entries",
            "Entries each eBPF map of the dataplane can hold",
            self.ebpf_map_max_entries.clone(),
        );
        r.register(
            "kproxy_ebpf_map_entries",
            "Entries the eBPF dataplane has written to each map it fills (maps the programs fill are not counted)",
            self.ebpf_map_entries.clone(),
        );
    }

    fn register_health(&mut self) {
        let r = &mut self.registry;
        r.register("kubeproxy_proxy_healthz", "Cumulative proxy healthz HTTP status", self.healthz.clone());
        r.register("kubeproxy_proxy_livez", "Cumulative proxy livez HTTP status", self.livez.clone());
    }

    /// Creates the labelled series so they are exposed (at 0) before first use.
    fn initialise_labels(&self) {
        for family in IpFamily::ALL {
            for policy in [TrafficPolicy::Internal, TrafficPolicy::External] {
                drop(self.no_local_endpoints.get_or_create(&no_local_label(family, policy)));
            }
            let label = family_label(family);
            for histogram in [&self.sync_duration, &self.sync_full_duration, &self.sync_partial_duration] {
                drop(histogram.get_or_create(&label));
            }
            drop(self.network_programming_duration.get_or_create(&label));
            drop(self.last_sync.get_or_create(&label));
            drop(self.last_queued.get_or_create(&label));
            for counter in [
                &self.nftables_sync_failures,
                &self.nftables_cleanup_failures,
                &self.iptables_restore_failures,
                &self.iptables_partial_restore_failures,
            ] {
                drop(counter.get_or_create(&label));
            }
        }
        for code in [200, 503] {
            drop(self.healthz.get_or_create(&code_label(code)));
            drop(self.livez.get_or_create(&code_label(code)));
        }
        for kind in [ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::Node, ObjectKind::ServiceCidr] {
            drop(self.malformed_objects.get_or_create(&KindLabel { kind: kind.to_string() }));
        }
    }

    /// The registry, to add more metrics (e.g. a dataplane's own).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Exposes the dataplane's kernel packet counters (see
    /// [`Dataplane::packet_counters`](kproxy_core::Dataplane::packet_counters)), read at
    /// every scrape through [`refresh_packet_counters`](Self::refresh_packet_counters).
    pub fn expose_packet_counters(&mut self, source: Arc<dyn PacketCounters>) {
        self.packet_counters = Some(packet_counters::PacketCounterMetrics::register(source, &mut self.registry));
    }

    /// Brings the kernel packet counters up to date; the metrics server calls it before
    /// [`encode`](Self::encode).
    pub async fn refresh_packet_counters(&self) {
        if let Some(counters) = &self.packet_counters {
            counters.refresh().await;
        }
    }

    /// The registry in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut text = String::new();
        text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// One sync (of both families) took `duration`: observed into the all-syncs histogram
    /// and the full or partial one.
    pub fn observe_sync(&self, duration: Duration, full: bool) {
        let seconds = duration.as_secs_f64();
        let kind = if full { &self.sync_full_duration } else { &self.sync_partial_duration };
        for label in IpFamily::ALL.map(family_label) {
            self.sync_duration.get_or_create(&label).observe(seconds);
            kind.get_or_create(&label).observe(seconds);
        }
    }

    /// After a successful sync at `now`, observes `now − t` for every endpoint-slice
    /// `last-change-trigger-time` `t` of `family` the sync programmed (as upstream, a
    /// trigger time in the future, i.e. clock skew, lands in the 0 bucket).
    pub fn observe_network_programming(&self, now: SystemTime, family: IpFamily, trigger_times: &[SystemTime]) {
        let histogram = self.network_programming_duration.get_or_create(&family_label(family));
        for &trigger in trigger_times {
            let latency = match now.duration_since(trigger) {
                Ok(elapsed) => elapsed.as_secs_f64(),
                Err(ahead) => -ahead.duration().as_secs_f64(),
            };
            histogram.observe(latency);
        }
    }

    /// Proxy rules (of both families) were last synced successfully at `at`.
    pub fn set_last_sync(&self, at: SystemTime) {
        for family in IpFamily::ALL {
            self.last_sync.get_or_create(&family_label(family)).set(unix_seconds(at));
        }
    }

    /// A sync was last queued (a change arrived) at `at`.
    pub fn set_last_queued(&self, at: SystemTime) {
        for family in IpFamily::ALL {
            self.last_queued.get_or_create(&family_label(family)).set(unix_seconds(at));
        }
    }

    /// A deletion of stale UDP flows: its duration under each family it looked at, and the
    /// flows it deleted.
    pub fn observe_flow_cleanup(&self, cleanup: &FlowCleanup) {
        for family in IpFamily::ALL.into_iter().filter(|f| cleanup.families[f.index()]) {
            let label = family_label(family);
            self.conntrack_reconcile_duration.get_or_create(&label).observe(cleanup.duration.as_secs_f64());
            self.conntrack_deleted_entries.get_or_create(&label).inc_by(cleanup.deleted[family.index()]);
        }
    }

    /// The rules an iptables dataplane owns and wrote, per family and table.
    pub fn set_table_rules(&self, counts: &TableRuleCounts) {
        for family in IpFamily::ALL {
            for (t, table) in RULE_TABLES.iter().enumerate() {
                let label = TableLabel { ip_family: family.as_str(), table };
                let i = family.index();
                self.iptables_total.get_or_create(&label).set(saturating_i64(counts.total[i][t]));
                self.iptables_last.get_or_create(&label).set(saturating_i64(counts.written[i][t]));
            }
        }
    }

    /// The capacity of each map a dataplane fills, and the entries it has written to it.
    pub fn set_map_usage(&self, maps: &MapUsages) {
        for usage in maps.iter() {
            let label = MapLabel { map: usage.map };
            let max = i64::try_from(usage.max_entries).unwrap_or(i64::MAX);
            self.ebpf_map_max_entries.get_or_create(&label).set(max);
            if let Some(entries) = usage.entries {
                self.ebpf_map_entries.get_or_create(&label).set(i64::try_from(entries).unwrap_or(i64::MAX));
            }
        }
    }

    /// `failures[i]` loads over stale objects of an earlier run failed for the family of
    /// index `i` (nftables mode; the sync recovered by replacing the table).
    pub fn add_cleanup_failures(&self, failures: [usize; 2]) {
        for family in IpFamily::ALL {
            let n = u64::try_from(failures[family.index()]).unwrap_or(u64::MAX);
            self.nftables_cleanup_failures.get_or_create(&family_label(family)).inc_by(n);
        }
    }

    /// `count` more Service changes were received.
    pub fn add_service_changes(&self, count: u64) {
        self.service_changes.inc_by(count);
    }

    /// `pending` Service changes are waiting for a sync.
    pub fn set_service_changes_pending(&self, pending: usize) {
        self.service_changes_pending.set(saturating_i64(pending));
    }

    /// `count` more EndpointSlice changes were received.
    pub fn add_endpoint_changes(&self, count: u64) {
        self.endpoint_changes.inc_by(count);
    }

    /// `pending` endpoint changes are waiting for a sync.
    pub fn set_endpoint_changes_pending(&self, pending: usize) {
        self.endpoint_changes_pending.set(saturating_i64(pending));
    }

    /// `services` service ports of `family` with a Local `policy` have no local endpoints.
    pub fn set_no_local_endpoints(&self, family: IpFamily, policy: TrafficPolicy, services: usize) {
        self.no_local_endpoints.get_or_create(&no_local_label(family, policy)).set(saturating_i64(services));
    }

    /// `/healthz` answered `code`.
    pub fn record_healthz(&self, code: u16) {
        self.healthz.get_or_create(&code_label(code)).inc();
    }

    /// `/livez` answered `code`.
    pub fn record_livez(&self, code: u16) {
        self.livez.get_or_create(&code_label(code)).inc();
    }

    /// `failures` dataplane calls of `mode` failed, in `family` (`None`: a call that programs
    /// both families): counted in upstream's metric for that mode (`nftables` and
    /// `userspace` write nft transactions, `iptables` restores; the eBPF mode has no
    /// upstream counterpart). `partial`: the calls were partial syncs (iptables counts
    /// those once more, in its partial-restore metric).
    pub fn add_sync_failures(&self, mode: &str, family: Option<IpFamily>, failures: usize, partial: bool) {
        let failures = u64::try_from(failures).unwrap_or(u64::MAX);
        let families = family.map_or(IpFamily::ALL.to_vec(), |f| vec![f]);
        for label in families.into_iter().map(family_label) {
            match mode {
                "nftables" | "userspace" => drop(self.nftables_sync_failures.get_or_create(&label).inc_by(failures)),
                "iptables" => {
                    self.iptables_restore_failures.get_or_create(&label).inc_by(failures);
                    if partial {
                        self.iptables_partial_restore_failures.get_or_create(&label).inc_by(failures);
                    }
                }
                "ebpf" => drop(self.ebpf_sync_failures.get_or_create(&label).inc_by(failures)),
                _ => {}
            }
        }
    }

    /// How many claims are lost to another service port right now.
    pub fn set_service_port_conflicts(&self, conflicts: usize) {
        self.service_port_conflicts.set(saturating_i64(conflicts));
    }

    /// How many service ports are quarantined right now.
    pub fn set_quarantined_service_ports(&self, ports: usize) {
        self.quarantined_service_ports.set(saturating_i64(ports));
    }

    /// An API object of `kind` was skipped because it could not be used.
    pub fn inc_malformed(&self, kind: ObjectKind) {
        self.malformed_objects.get_or_create(&KindLabel { kind: kind.to_string() }).inc();
    }
}

fn no_local_label(family: IpFamily, policy: TrafficPolicy) -> TrafficPolicyLabel {
    TrafficPolicyLabel { ip_family: family.as_str(), traffic_policy: policy.as_str() }
}

fn code_label(code: u16) -> CodeLabel {
    CodeLabel { code: code.to_string() }
}

fn unix_seconds(at: SystemTime) -> f64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

fn saturating_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
