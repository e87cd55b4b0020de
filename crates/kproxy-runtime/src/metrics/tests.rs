use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use kproxy_core::{MapUsage, ObjectKind};

use super::*;

const HISTOGRAMS: [&str; 5] = [
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "kubeproxy_sync_full_proxy_rules_duration_seconds",
    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
    "kubeproxy_network_programming_duration_seconds",
    "kubeproxy_conntrack_reconciler_sync_duration_seconds",
];

const GAUGES: [&str; 11] = [
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
    "kubeproxy_sync_proxy_rules_service_changes_pending",
    "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
    "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
    "kproxy_service_port_conflicts",
    "kproxy_quarantined_service_ports",
    "kubeproxy_sync_proxy_rules_iptables_total",
    "kubeproxy_sync_proxy_rules_iptables_last",
    "kproxy_ebpf_map_max_entries",
    "kproxy_ebpf_map_entries",
];

const COUNTERS: [&str; 11] = [
    "kubeproxy_sync_proxy_rules_service_changes_total",
    "kubeproxy_sync_proxy_rules_endpoint_changes_total",
    "kubeproxy_proxy_healthz_total",
    "kubeproxy_proxy_livez_total",
    "kubeproxy_malformed_objects_total",
    "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
    "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total",
    "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
    "kubeproxy_conntrack_reconciler_deleted_entries_total",
    "kproxy_ebpf_sync_failures_total",
];

/// The metrics that start with no series and get one per family (or map) on first use.
const LAZY: [&str; 7] = [
    "kubeproxy_conntrack_reconciler_sync_duration_seconds",
    "kubeproxy_conntrack_reconciler_deleted_entries_total",
    "kubeproxy_sync_proxy_rules_iptables_total",
    "kubeproxy_sync_proxy_rules_iptables_last",
    "kproxy_ebpf_sync_failures_total",
    "kproxy_ebpf_map_max_entries",
    "kproxy_ebpf_map_entries",
];

fn render(metrics: &Metrics) -> String {
    metrics.encode().expect("encodes")
}

/// The series names a scraper ingests: each sample line's name, without labels.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The sample line of `series` (name plus labels, exactly), e.g. `x_total{code="200"}`.
fn value_of(text: &str, series: &str) -> String {
    let prefix = format!("{series} ");
    let line = text.lines().find(|line| line.starts_with(&prefix)).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line[prefix.len()..].to_owned()
}

/// The bucket bounds of `histogram`'s IPv4 series.
fn le_values(text: &str, histogram: &str) -> Vec<String> {
    let prefix = format!("{histogram}_bucket{{le=\"");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| rest.contains(r#"ip_family="IPv4""#))
        .map(|rest| rest.split('"').next().unwrap_or_default().to_owned())
        .collect()
}

/// Metrics with one use of each lazily created series.
fn used() -> Metrics {
    let metrics = Metrics::new();
    let cleanup = FlowCleanup { duration: Duration::from_millis(3), families: [true, true], deleted: [2, 0] };
    metrics.observe_flow_cleanup(&cleanup);
    metrics.set_table_rules(&TableRuleCounts::default());
    metrics.add_sync_failures("ebpf", None, 0, false);
    metrics.set_map_usage(&[MapUsage { map: "kp_services", max_entries: 8, entries: Some(1) }].into_iter().collect());
    metrics
}

#[test]
fn exposed_names_are_exactly_upstreams() {
    let text = render(&used());
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for h in HISTOGRAMS {
        expected.extend(["_bucket", "_sum", "_count"].map(|suffix| format!("{h}{suffix}")));
    }
    expected.extend(GAUGES.map(str::to_owned));
    expected.extend(COUNTERS.map(str::to_owned));
    assert_eq!(sample_names(&text), expected, "\n{text}");
    assert!(text.ends_with("# EOF\n"));
    let fresh = sample_names(&render(&Metrics::new()));
    for lazy in LAZY {
        assert!(!fresh.iter().any(|name| name.starts_with(lazy)), "{lazy} before first use");
    }
}

#[test]
fn exposed_types_match_upstream() {
    let text = render(&used());
    for h in HISTOGRAMS {
        assert!(text.contains(&format!("# TYPE {h} histogram\n")), "{h}");
    }
    for g in GAUGES {
        assert!(text.contains(&format!("# TYPE {g} gauge\n")), "{g}");
    }
    for c in COUNTERS {
        // OpenMetrics names a counter family without its `_total` sample suffix.
        let family = c.strip_suffix("_total").unwrap_or(c);
        assert!(text.contains(&format!("# TYPE {family} counter\n")), "{c}");
    }
    assert!(!text.contains("# UNIT"), "no unit suffix is added");
}

#[test]
fn labelled_series_exist_from_the_start() {
    let text = render(&Metrics::new());
    for family in ["IPv4", "IPv6"] {
        for series in [
            format!(
                r#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{{ip_family="{family}",traffic_policy="internal"}}"#
            ),
            format!(
                r#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{{ip_family="{family}",traffic_policy="external"}}"#
            ),
            format!(r#"kubeproxy_sync_proxy_rules_duration_seconds_count{{ip_family="{family}"}}"#),
            format!(r#"kubeproxy_network_programming_duration_seconds_count{{ip_family="{family}"}}"#),
            format!(r#"kubeproxy_sync_proxy_rules_last_timestamp_seconds{{ip_family="{family}"}}"#),
            format!(r#"kubeproxy_sync_proxy_rules_nftables_sync_failures_total{{ip_family="{family}"}}"#),
            format!(r#"kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total{{ip_family="{family}"}}"#),
            format!(r#"kubeproxy_sync_proxy_rules_iptables_restore_failures_total{{ip_family="{family}"}}"#),
            format!(r#"kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total{{ip_family="{family}"}}"#),
        ] {
            assert!(["0", "0.0"].contains(&value_of(&text, &series).as_str()), "{series}");
        }
    }
    for series in [
        r#"kubeproxy_proxy_healthz_total{code="200"}"#,
        r#"kubeproxy_proxy_healthz_total{code="503"}"#,
        r#"kubeproxy_proxy_livez_total{code="200"}"#,
        r#"kubeproxy_proxy_livez_total{code="503"}"#,
        r#"kubeproxy_malformed_objects_total{kind="Service"}"#,
        r#"kubeproxy_malformed_objects_total{kind="EndpointSlice"}"#,
        r#"kubeproxy_malformed_objects_total{kind="Node"}"#,
    ] {
        assert_eq!(value_of(&text, series), "0", "{series}");
    }
}

#[test]
fn sync_duration_buckets_are_exponential_from_1ms() {
    let buckets = sync_duration_buckets();
    assert_eq!(buckets.len(), 15);
    assert_eq!(buckets[0], 0.001);
    assert_eq!(buckets[14], 0.001 * 16384.0);
    let text = render(&Metrics::new());
    for h in HISTOGRAMS.iter().filter(|h| !h.contains("network_programming") && !LAZY.contains(h)) {
        let les = le_values(&text, h);
        let got: Vec<f64> = les.iter().filter(|v| *v != "+Inf").filter_map(|v| v.parse().ok()).collect();
        assert_eq!(got, buckets, "{h}");
        assert_eq!(les.last().map(String::as_str), Some("+Inf"), "{h}");
    }
}

#[test]
fn network_programming_buckets_follow_upstream_layout() {
    let buckets = network_programming_buckets();
    assert_eq!(buckets.len(), 1 + 2 + 59 + 12 + 7);
    assert_eq!(&buckets[..4], &[0.0, 0.25, 0.5, 1.0]);
    assert_eq!(buckets[61], 59.0);
    assert_eq!(&buckets[62..64], &[60.0, 65.0]);
    assert_eq!(buckets[73], 115.0);
    assert_eq!(&buckets[74..], &[120.0, 150.0, 180.0, 210.0, 240.0, 270.0, 300.0]);
    let text = render(&Metrics::new());
    assert_eq!(le_values(&text, HISTOGRAMS[3]).len(), buckets.len() + 1);
}

#[test]
fn observations_and_setters_show_up() {
    let metrics = Metrics::new();
    metrics.observe_sync(Duration::from_millis(3), true);
    metrics.observe_sync(Duration::from_millis(1), false);
    let now = UNIX_EPOCH + Duration::from_secs(1_000);
    metrics.observe_network_programming(
        now,
        IpFamily::V6,
        &[now - Duration::from_secs(2), now + Duration::from_secs(1)],
    );
    metrics.set_last_sync(now);
    metrics.set_last_queued(UNIX_EPOCH + Duration::from_millis(1_500));
    metrics.add_service_changes(3);
    metrics.set_service_changes_pending(2);
    metrics.add_endpoint_changes(5);
    metrics.set_endpoint_changes_pending(4);
    metrics.set_no_local_endpoints(IpFamily::V6, TrafficPolicy::External, 7);
    metrics.record_healthz(503);
    metrics.record_livez(200);
    metrics.record_livez(200);
    metrics.inc_malformed(ObjectKind::EndpointSlice);
    let text = render(&metrics);

    for family in ["IPv4", "IPv6"] {
        let series = |name: &str| format!(r#"{name}{{ip_family="{family}"}}"#);
        let bucket = |name: &str, le: &str| format!(r#"{name}_bucket{{le="{le}",ip_family="{family}"}}"#);
        assert_eq!(value_of(&text, &series("kubeproxy_sync_proxy_rules_duration_seconds_count")), "2");
        assert_eq!(value_of(&text, &series("kubeproxy_sync_full_proxy_rules_duration_seconds_count")), "1");
        assert_eq!(value_of(&text, &bucket("kubeproxy_sync_full_proxy_rules_duration_seconds", "0.002")), "0");
        assert_eq!(value_of(&text, &bucket("kubeproxy_sync_full_proxy_rules_duration_seconds", "0.004")), "1");
        assert_eq!(value_of(&text, &series("kubeproxy_sync_partial_proxy_rules_duration_seconds_count")), "1");
        assert_eq!(value_of(&text, &series("kubeproxy_sync_proxy_rules_last_timestamp_seconds")), "1000.0");
        assert_eq!(value_of(&text, &series("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds")), "1.5");
    }
    let v6_bucket =
        |le: &str| format!(r#"kubeproxy_network_programming_duration_seconds_bucket{{le="{le}",ip_family="IPv6"}}"#);
    assert_eq!(value_of(&text, &v6_bucket("0.0")), "1");
    assert_eq!(value_of(&text, &v6_bucket("1.0")), "1");
    assert_eq!(value_of(&text, &v6_bucket("2.0")), "2");
    let v4_count = r#"kubeproxy_network_programming_duration_seconds_count{ip_family="IPv4"}"#;
    assert_eq!(value_of(&text, v4_count), "0", "the trigger times were IPv6 slices'");
    assert_eq!(value_of(&text, "kubeproxy_sync_proxy_rules_service_changes_total"), "3");
    assert_eq!(value_of(&text, "kubeproxy_sync_proxy_rules_service_changes_pending"), "2");
    assert_eq!(value_of(&text, "kubeproxy_sync_proxy_rules_endpoint_changes_total"), "5");
    assert_eq!(value_of(&text, "kubeproxy_sync_proxy_rules_endpoint_changes_pending"), "4");
    assert_eq!(
        value_of(
            &text,
            r#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv6",traffic_policy="external"}"#
        ),
        "7"
    );
    let v4 = r#"kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family="IPv4",traffic_policy="external"}"#;
    assert_eq!(value_of(&text, v4), "0");
    assert_eq!(value_of(&text, r#"kubeproxy_proxy_healthz_total{code="503"}"#), "1");
    assert_eq!(value_of(&text, r#"kubeproxy_proxy_livez_total{code="200"}"#), "2");
    assert_eq!(value_of(&text, r#"kubeproxy_malformed_objects_total{kind="EndpointSlice"}"#), "1");
}

#[test]
fn sync_failures_count_in_the_metric_of_the_mode_and_family() {
    let metrics = Metrics::new();
    metrics.add_sync_failures("nftables", None, 2, false);
    metrics.add_sync_failures("userspace", Some(IpFamily::V6), 1, false);
    metrics.add_sync_failures("iptables", Some(IpFamily::V4), 4, true);
    metrics.add_sync_failures("iptables", None, 1, false);
    metrics.add_sync_failures("ebpf", None, 9, false);
    metrics.add_cleanup_failures([0, 3]);
    let text = render(&metrics);
    let value = |name: &str, family: &str| value_of(&text, &format!(r#"{name}{{ip_family="{family}"}}"#));
    let nft = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total";
    assert_eq!((value(nft, "IPv4"), value(nft, "IPv6")), ("2".into(), "3".into()));
    let restore = "kubeproxy_sync_proxy_rules_iptables_restore_failures_total";
    assert_eq!((value(restore, "IPv4"), value(restore, "IPv6")), ("5".into(), "1".into()));
    let partial = "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total";
    assert_eq!((value(partial, "IPv4"), value(partial, "IPv6")), ("4".into(), "0".into()));
    let cleanup = "kubeproxy_sync_proxy_rules_nftables_cleanup_failures_total";
    assert_eq!((value(cleanup, "IPv4"), value(cleanup, "IPv6")), ("0".into(), "3".into()));
    let ebpf = "kproxy_ebpf_sync_failures_total";
    assert_eq!((value(ebpf, "IPv4"), value(ebpf, "IPv6")), ("9".into(), "9".into()));
}

#[test]
fn ebpf_maps_show_their_capacity_and_the_entries_written() {
    let metrics = Metrics::new();
    let usages = [
        MapUsage { map: "kp_services", max_entries: 65_536, entries: Some(3) },
        MapUsage { map: "kp_conntrack", max_entries: 131_072, entries: None },
    ];
    metrics.set_map_usage(&usages.into_iter().collect());
    metrics.set_map_usage(&[MapUsage { entries: Some(2), ..usages[0] }].into_iter().collect());
    let text = render(&metrics);
    let value = |name: &str, map: &str| value_of(&text, &format!(r#"{name}{{map="{map}"}}"#));
    assert_eq!(value("kproxy_ebpf_map_max_entries", "kp_services"), "65536");
    assert_eq!(value("kproxy_ebpf_map_entries", "kp_services"), "2", "the last sync's count");
    assert_eq!(value("kproxy_ebpf_map_max_entries", "kp_conntrack"), "131072");
    assert!(!text.contains(r#"kproxy_ebpf_map_entries{map="kp_conntrack"}"#), "the programs fill it: no count");
}

#[test]
fn flow_cleanups_count_per_family_they_looked_at() {
    let metrics = Metrics::new();
    let only_v4 = FlowCleanup { duration: Duration::from_millis(3), families: [true, false], deleted: [2, 0] };
    metrics.observe_flow_cleanup(&only_v4);
    metrics.observe_flow_cleanup(&FlowCleanup { families: [true, true], deleted: [1, 4], ..only_v4 });
    let text = render(&metrics);
    let value = |name: &str, family: &str| value_of(&text, &format!(r#"{name}{{ip_family="{family}"}}"#));
    let deleted = "kubeproxy_conntrack_reconciler_deleted_entries_total";
    assert_eq!((value(deleted, "IPv4"), value(deleted, "IPv6")), ("3".into(), "4".into()));
    let count = "kubeproxy_conntrack_reconciler_sync_duration_seconds_count";
    assert_eq!((value(count, "IPv4"), value(count, "IPv6")), ("2".into(), "1".into()));
}

#[test]
fn iptables_rule_counts_per_family_and_table() {
    let metrics = Metrics::new();
    metrics.set_table_rules(&TableRuleCounts { total: [[4, 30], [2, 12]], written: [[4, 7], [2, 0]] });
    let text = render(&metrics);
    let value = |name: &str, family: &str, table: &str| {
        value_of(&text, &format!(r#"{name}{{ip_family="{family}",table="{table}"}}"#))
    };
    let total = "kubeproxy_sync_proxy_rules_iptables_total";
    let last = "kubeproxy_sync_proxy_rules_iptables_last";
    assert_eq!(value(total, "IPv4", "nat"), "30");
    assert_eq!(value(total, "IPv6", "filter"), "2");
    assert_eq!(value(last, "IPv4", "nat"), "7");
    assert_eq!(value(last, "IPv6", "nat"), "0");
}

/// Kernel counters a test sets.
#[derive(Default)]
struct KernelCounters(std::sync::Mutex<Vec<(kproxy_core::PacketCounter, u64)>>);

#[async_trait::async_trait]
impl kproxy_core::PacketCounters for KernelCounters {
    fn kinds(&self) -> Vec<kproxy_core::PacketCounter> {
        use kproxy_core::PacketCounter::*;
        vec![IptablesCtStateInvalidDropped, IptablesLocalhostNodePortsAccepted]
    }

    async fn read(&self) -> Vec<(kproxy_core::PacketCounter, u64)> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn kernel_packet_counters_show_their_kernel_value_at_each_scrape() {
    use kproxy_core::PacketCounter::*;
    let kernel = Arc::new(KernelCounters::default());
    let mut metrics = Metrics::new();
    assert!(!render(&metrics).contains("kubeproxy_iptables"), "only a dataplane with counters exposes them");
    metrics.expose_packet_counters(kernel.clone());
    let invalid = "kubeproxy_iptables_ct_state_invalid_dropped_packets_total";
    let localhost = "kubeproxy_iptables_localhost_nodeports_accepted_packets_total";
    assert_eq!(
        (value_of(&render(&metrics), invalid), value_of(&render(&metrics), localhost)),
        ("0".into(), "0".into())
    );
    *kernel.0.lock().unwrap() = vec![(IptablesCtStateInvalidDropped, 7), (IptablesLocalhostNodePortsAccepted, 2)];
    metrics.refresh_packet_counters().await;
    *kernel.0.lock().unwrap() = vec![(IptablesCtStateInvalidDropped, 9)];
    metrics.refresh_packet_counters().await;
    let text = render(&metrics);
    assert_eq!((value_of(&text, invalid), value_of(&text, localhost)), ("9".into(), "2".into()));
    // The kernel counter was recreated: it counts on from its new value.
    *kernel.0.lock().unwrap() = vec![(IptablesCtStateInvalidDropped, 1)];
    metrics.refresh_packet_counters().await;
    assert_eq!(value_of(&render(&metrics), invalid), "10");
    assert!(text.contains(&format!("# TYPE {} counter", invalid.trim_end_matches("_total"))));
}
