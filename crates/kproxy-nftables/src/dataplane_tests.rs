//! The dataplane against `FakeNft` and `FakeConntrack`: which scripts each sync sends, the
//! fallbacks, stale flows and cleanup; and `Committed`'s reference counting.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::{ChangeTracker, Changes, Dataplane, IpFamily, NamespacedName, ProxyState, SyncStats};
use kproxy_netfilter::{FakeConntrack, FakeNft, FlowFilter};
use kproxy_testkit::ip_plan::{NODE_IP, NODE_NAME, OTHER_NODE_NAME, POD_CIDR};
use kproxy_testkit::{node, service, slice};

use super::NftablesDataplane;
use crate::config::NftablesConfig;

/// A dataplane on fakes, fed by a change tracker as the daemon feeds it.
struct Harness {
    dataplane: NftablesDataplane,
    nft: FakeNft,
    conntrack: FakeConntrack,
    tracker: ChangeTracker,
    state: ProxyState,
}

impl Harness {
    fn new() -> Self {
        let config = NftablesConfig { cluster_cidrs: vec![POD_CIDR.parse().unwrap()], ..NftablesConfig::default() };
        let nft = FakeNft::default();
        let conntrack = FakeConntrack::default();
        let dataplane = NftablesDataplane::with_runners(config, Arc::new(nft.clone()), Arc::new(conntrack.clone()));
        let mut tracker = ChangeTracker::new(NODE_NAME, UNIX_EPOCH);
        tracker.on_node_update(&node(NODE_NAME).zone("zone-a").internal_ip(NODE_IP).build()).unwrap();
        Self { dataplane, nft, conntrack, tracker, state: ProxyState::new(NODE_NAME) }
    }

    fn apply(&mut self, services: &[Service], slices: &[EndpointSlice]) -> &mut Self {
        for s in services {
            self.tracker.on_service_update(s).unwrap();
        }
        for s in slices {
            self.tracker.on_slice_update(s).unwrap();
        }
        self
    }

    fn checkout(&mut self) -> Changes {
        self.tracker.checkout_into(&mut self.state)
    }

    async fn sync(&mut self) -> SyncStats {
        let changes = self.checkout();
        self.dataplane.sync(&self.state, &changes).await.unwrap()
    }

    /// Syncs and returns the scripts it sent.
    async fn sync_scripts(&mut self) -> (SyncStats, Vec<String>) {
        let before = self.nft.scripts().len();
        let stats = self.sync().await;
        (stats, self.nft.scripts()[before..].to_vec())
    }
}

fn svc(name: &str, ip: &str) -> Service {
    service("ns1", name).cluster_ip(ip).tcp("p80", 80).build()
}

/// A slice of `name` with ready endpoints on node2 (none is local).
fn eps(name: &str, ips: &[&str]) -> EndpointSlice {
    ips.iter()
        .fold(slice("ns1", name, &format!("{name}-1")).tcp("p80", 8080), |b, ip| {
            b.endpoint(ip, |e| e.node(OTHER_NODE_NAME))
        })
        .build()
}

/// The lines of `script` that start with `prefix`.
fn lines<'a>(script: &'a str, prefix: &str) -> Vec<&'a str> {
    script.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// Index of the first line of `script` equal to `line` (panics when absent).
fn position(script: &str, line: &str) -> usize {
    script.lines().position(|l| l == line).unwrap_or_else(|| panic!("no line `{line}` in:\n{script}"))
}

#[tokio::test]
async fn first_sync_loads_both_tables_fully() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1", "10.180.1.2", "10.180.1.3"])]);
    let (stats, scripts) = h.sync_scripts().await;
    assert!(stats.full);
    assert_eq!(stats.service_ports, 1);
    assert_eq!(scripts.len(), 2, "one transaction per family");
    let v4 = &scripts[0];
    assert_eq!(v4.lines().next(), Some("add table ip kproxy"));
    assert!(v4.contains("\nflush table ip kproxy\n"));
    assert!(v4.contains("add chain ip kproxy cluster-tcp-3\n"));
    assert!(v4.contains("add chain ip kproxy internal-to-cluster-tcp-3\n"));
    assert!(
        v4.contains("add element ip kproxy service-ips { 172.30.0.41 . tcp . 80 : goto internal-to-cluster-tcp-3 }\n")
    );
    assert!(v4.contains(
        "add element ip kproxy cluster-endpoints-tcp { 172.30.0.41 . 80 . 0 : 10.180.1.1 . 8080, 172.30.0.41 . 80 . 1 : 10.180.1.2 . 8080, 172.30.0.41 . 80 . 2 : 10.180.1.3 . 8080 }\n"
    ));
    assert!(v4.contains("add element ip kproxy cluster-cidrs { 10.0.0.0/8 }\n"));
    // Elements are added after the flush, rules after the chains exist.
    assert!(
        position(v4, "flush table ip kproxy")
            < position(v4, "add rule ip kproxy services ip daddr . meta l4proto . th dport vmap @service-ips")
    );
    let v6 = &scripts[1];
    assert_eq!(v6.lines().next(), Some("add table ip6 kproxy"));
    assert!(v6.contains("\nflush table ip6 kproxy\n"));
    assert!(lines(v6, "add element ip6 kproxy service-ips").is_empty(), "no IPv6 service");
}

#[tokio::test]
async fn endpoint_change_sends_only_element_changes() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1", "10.180.1.2", "10.180.1.3"])]);
    h.sync().await;
    h.apply(&[], &[eps("svc1", &["10.180.1.1", "10.180.1.2", "10.180.1.4"])]);
    let (stats, scripts) = h.sync_scripts().await;
    assert!(!stats.full);
    assert_eq!(stats.touched_service_ports, 1);
    assert_eq!(scripts.len(), 1, "the IPv6 table has nothing to change: {scripts:?}");
    let script = &scripts[0];
    assert_eq!(
        script.lines().collect::<Vec<_>>(),
        [
            "delete element ip kproxy cluster-endpoints-tcp { 172.30.0.41 . 80 . 2 }",
            "delete element ip kproxy hairpin-endpoints { 10.180.1.3 . 10.180.1.3 }",
            "add element ip kproxy cluster-endpoints-tcp { 172.30.0.41 . 80 . 2 : 10.180.1.4 . 8080 }",
            "add element ip kproxy hairpin-endpoints { 10.180.1.4 . 10.180.1.4 }",
        ]
    );
}

#[tokio::test]
async fn endpoint_count_change_swaps_the_generic_chain() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1", "10.180.1.2", "10.180.1.3"])]);
    h.sync().await;
    h.apply(&[], &[eps("svc1", &["10.180.1.1", "10.180.1.2"])]);
    let (_, scripts) = h.sync_scripts().await;
    let script = &scripts[0];
    assert!(!script.contains("flush table"));
    assert_eq!(
        lines(script, "add chain"),
        ["add chain ip kproxy cluster-tcp-2", "add chain ip kproxy internal-to-cluster-tcp-2"]
    );
    assert_eq!(
        lines(script, "delete chain"),
        ["delete chain ip kproxy cluster-tcp-3", "delete chain ip kproxy internal-to-cluster-tcp-3"]
    );
    let add_chain = position(script, "add chain ip kproxy internal-to-cluster-tcp-2");
    let redirect = position(
        script,
        "add element ip kproxy service-ips { 172.30.0.41 . tcp . 80 : goto internal-to-cluster-tcp-2 }",
    );
    let unlink = position(script, "delete element ip kproxy service-ips { 172.30.0.41 . tcp . 80 }");
    let flush_old = position(script, "flush chain ip kproxy internal-to-cluster-tcp-3");
    let delete_old = position(script, "delete chain ip kproxy internal-to-cluster-tcp-3");
    assert!(add_chain < redirect, "a chain exists before an element points to it");
    assert!(unlink < redirect, "the old element goes before the new one is added");
    assert!(unlink < delete_old && flush_old < delete_old, "a chain is deleted once nothing points to it");
    assert!(script.contains("delete element ip kproxy cluster-endpoints-tcp { 172.30.0.41 . 80 . 2 }\n"));
    assert!(!script.contains("cluster-endpoints-tcp { 172.30.0.41 . 80 . 0"), "unchanged elements stay");
}

#[tokio::test]
async fn removing_a_service_keeps_generic_chains_another_port_uses() {
    let mut h = Harness::new();
    h.apply(
        &[svc("svc1", "172.30.0.41"), svc("svc2", "172.30.0.42")],
        &[eps("svc1", &["10.180.1.1", "10.180.1.2"]), eps("svc2", &["10.180.1.3", "10.180.1.4"])],
    );
    h.sync().await;

    h.tracker.on_service_delete(&NamespacedName::new("ns1", "svc2"));
    let (_, scripts) = h.sync_scripts().await;
    let script = &scripts[0];
    assert!(lines(script, "delete chain").is_empty(), "svc1 still uses cluster-tcp-2:\n{script}");
    assert!(lines(script, "add ").is_empty());
    assert!(script.contains("delete element ip kproxy service-ips { 172.30.0.42 . tcp . 80 }\n"));
    assert!(script.contains("delete element ip kproxy cluster-endpoints-tcp { 172.30.0.42 . 80 . 1 }\n"));
    assert!(script.contains("delete element ip kproxy hairpin-endpoints { 10.180.1.4 . 10.180.1.4 }\n"));
    assert!(!script.contains("172.30.0.41"));

    h.tracker.on_service_delete(&NamespacedName::new("ns1", "svc1"));
    let (_, scripts) = h.sync_scripts().await;
    let script = &scripts[0];
    assert_eq!(
        lines(script, "delete chain"),
        ["delete chain ip kproxy cluster-tcp-2", "delete chain ip kproxy internal-to-cluster-tcp-2"]
    );
    assert!(script.contains("delete element ip kproxy service-ips { 172.30.0.41 . tcp . 80 }\n"));
}

fn sticky() -> Service {
    service("ns1", "sticky").cluster_ip("172.30.0.45").tcp("p80", 80).client_ip_affinity(Some(300)).build()
}

#[tokio::test]
async fn an_affinity_service_adds_and_removes_its_own_chains_and_sets() {
    let mut h = Harness::new();
    h.sync().await;
    h.apply(&[sticky()], &[eps("sticky", &["10.180.1.1", "10.180.1.2"])]);
    let (_, scripts) = h.sync_scripts().await;
    let script = &scripts[0];
    let set1 = "affinity-cluster-ns1/sticky/tcp/p80__10.180.1.1/8080";
    let set2 = "affinity-cluster-ns1/sticky/tcp/p80__10.180.1.2/8080";
    assert_eq!(
        lines(script, "add set"),
        [
            format!("add set ip kproxy {set1} {{ type ipv4_addr; flags dynamic,timeout; timeout 300s; }}"),
            format!("add set ip kproxy {set2} {{ type ipv4_addr; flags dynamic,timeout; timeout 300s; }}"),
        ]
    );
    assert_eq!(
        lines(script, "add chain"),
        [
            "add chain ip kproxy affinity-cluster-ns1/sticky/tcp/p80",
            "add chain ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.1/8080",
            "add chain ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.2/8080",
            "add chain ip kproxy internal-to-affinity-cluster-ns1/sticky/tcp/p80",
        ]
    );
    assert!(script.contains(&format!(
        "add rule ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.1/8080 update @{set1} {{ ip saddr }}\n"
    )));
    assert!(lines(script, "add element ip kproxy cluster-endpoints-tcp").is_empty(), "affinity chains DNAT themselves");
    assert!(
        position(
            script,
            &format!("add set ip kproxy {set1} {{ type ipv4_addr; flags dynamic,timeout; timeout 300s; }}")
        ) < position(
            script,
            &format!(
                "add rule ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.1/8080 update @{set1} {{ ip saddr }}"
            )
        )
    );

    // One endpoint goes: its chain and set go, the port's choice chain is rewritten.
    h.apply(&[], &[eps("sticky", &["10.180.1.1"])]);
    let (_, scripts) = h.sync_scripts().await;
    let script = &scripts[0];
    assert!(script.contains("flush chain ip kproxy affinity-cluster-ns1/sticky/tcp/p80\n"));
    assert_eq!(
        lines(script, "delete chain"),
        ["delete chain ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.2/8080"]
    );
    assert_eq!(lines(script, "delete set"), [format!("delete set ip kproxy {set2}")]);
    assert!(lines(script, "add set").is_empty(), "the remaining set is kept, not re-added");
    assert!(
        position(script, "flush chain ip kproxy affinity-cluster-ns1/sticky/tcp/p80")
            < position(script, &format!("delete set ip kproxy {set2}"))
    );
    assert!(
        position(script, "delete chain ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.2/8080")
            < position(script, &format!("delete set ip kproxy {set2}"))
    );

    // The Service goes: everything of its own goes.
    h.tracker.on_service_delete(&NamespacedName::new("ns1", "sticky"));
    let (_, scripts) = h.sync_scripts().await;
    let script = &scripts[0];
    assert_eq!(
        lines(script, "delete chain"),
        [
            "delete chain ip kproxy affinity-cluster-ns1/sticky/tcp/p80",
            "delete chain ip kproxy endpoint-cluster-ns1/sticky/tcp/p80__10.180.1.1/8080",
            "delete chain ip kproxy internal-to-affinity-cluster-ns1/sticky/tcp/p80",
        ]
    );
    assert_eq!(lines(script, "delete set"), [format!("delete set ip kproxy {set1}")]);
}

#[tokio::test]
async fn a_failed_partial_update_falls_back_to_a_full_load_in_the_same_sync() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    h.nft.fail_next(1);
    h.apply(&[], &[eps("svc1", &["10.180.1.2"])]);
    let (_, scripts) = h.sync_scripts().await;
    assert_eq!(scripts.len(), 2, "{scripts:?}");
    assert!(!scripts[0].contains("flush table"), "the partial update came first");
    assert!(scripts[1].starts_with("add table ip kproxy\n"));
    assert!(scripts[1].contains("\nflush table ip kproxy\n"));
    assert!(
        scripts[1]
            .contains("add element ip kproxy cluster-endpoints-tcp { 172.30.0.41 . 80 . 0 : 10.180.1.2 . 8080 }\n")
    );

    // What the full load committed is trusted again: the next change is partial.
    h.apply(&[], &[eps("svc1", &["10.180.1.3"])]);
    let (stats, scripts) = h.sync_scripts().await;
    assert!(!stats.full);
    assert_eq!(scripts.len(), 1);
    assert!(!scripts[0].contains("flush table"));
}

#[tokio::test]
async fn a_failed_full_load_falls_back_to_replacing_the_table() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.nft.fail_next(1);
    let (stats, scripts) = h.sync_scripts().await;
    assert!(stats.full);
    assert_eq!(scripts.len(), 3, "full (failed), replace, then the IPv6 table");
    assert!(scripts[0].contains("\nflush table ip kproxy\n"));
    let replace = &scripts[1];
    assert!(replace.starts_with("add table ip kproxy\ndelete table ip kproxy\ntable ip kproxy {\n"), "{replace}");
    assert!(replace.contains("172.30.0.41 . tcp . 80 : goto internal-to-cluster-tcp-1"));
    assert!(replace.ends_with("}\n"));
    assert!(scripts[2].starts_with("add table ip6 kproxy\n"));

    // Both fail: the sync fails, retryably, and the next one is full again.
    h.nft.fail_next(2);
    h.tracker.request_full_sync();
    let changes = h.checkout();
    let error = h.dataplane.sync(&h.state, &changes).await.unwrap_err();
    assert!(error.is_retryable());
    h.apply(&[], &[eps("svc1", &["10.180.1.2"])]);
    let (stats, scripts) = h.sync_scripts().await;
    assert!(stats.full);
    assert!(scripts[0].contains("\nflush table ip kproxy\n"), "no partial update after a failure");
}

#[tokio::test]
async fn a_full_sync_deletes_stale_objects_and_keeps_wanted_affinity_sets() {
    let mut h = Harness::new();
    h.apply(&[sticky()], &[eps("sticky", &["10.180.1.1"])]);
    let wanted_set = "affinity-cluster-ns1/sticky/tcp/p80__10.180.1.1/8080";
    let stale_set = "affinity-cluster-ns1/gone/tcp/p80__10.180.1.9/8080";
    let listing = format!(
        "table ip other {{\n\tchain x {{\n\t}}\n\tset y {{\n\t\ttype ipv4_addr\n\t}}\n}}\n\
         table ip kproxy {{\n\
         \tchain nat-prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}}\n\
         \tchain services {{\n\t}}\n\
         \tchain cluster-tcp-7 {{\n\t}}\n\
         \tchain endpoint-cluster-ns1/gone/tcp/p80__10.180.1.9/8080 {{\n\t}}\n\
         \tchain affinity-cluster-ns1/sticky/tcp/p80 {{\n\t}}\n\
         \tset cluster-cidrs {{\n\t\ttype ipv4_addr\n\t\tflags interval\n\t}}\n\
         \tset {wanted_set} {{\n\t\ttype ipv4_addr\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout 5m\n\t}}\n\
         \tset {stale_set} {{\n\t\ttype ipv4_addr\n\t}}\n\
         }}\n\
         table ip6 kproxy {{\n\tchain cluster-tcp-9 {{\n\t}}\n}}\n"
    );
    h.nft.set_listing(&listing);
    let (_, scripts) = h.sync_scripts().await;
    let v4 = &scripts[0];
    assert_eq!(
        lines(v4, "delete "),
        [
            "delete chain ip kproxy cluster-tcp-7".to_owned(),
            "delete chain ip kproxy endpoint-cluster-ns1/gone/tcp/p80__10.180.1.9/8080".to_owned(),
            format!("delete set ip kproxy {stale_set}"),
        ]
    );
    assert!(position(v4, "flush table ip kproxy") < position(v4, "delete chain ip kproxy cluster-tcp-7"));
    assert!(v4.contains(&format!("add set ip kproxy {wanted_set} {{")), "declared (a no-op when it exists)");
    assert!(!v4.contains(&format!("flush set ip kproxy {wanted_set}")), "its clients stay sticky");
    assert!(lines(v4, "flush set").iter().all(|l| !l.contains("affinity-")));
    assert!(!v4.contains(" x\n") && !v4.contains(" y\n"), "another table is not ours");
    assert_eq!(lines(&scripts[1], "delete "), ["delete chain ip6 kproxy cluster-tcp-9"]);
}

#[tokio::test]
async fn stale_udp_endpoints_clear_flows_for_every_address_and_the_node_port() {
    let mut h = Harness::new();
    let dns = service("ns1", "dns")
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.10")
        .port("dns", 53, "UDP", Some(30053))
        .external_ips(&["192.168.99.11"])
        .lb_ingress("1.2.3.4", None)
        .build();
    let slice_of = |ips: &[&str]| {
        ips.iter()
            .fold(slice("ns1", "dns", "dns-1").udp("dns", 5353), |b, ip| b.endpoint(ip, |e| e.node(OTHER_NODE_NAME)))
            .build()
    };
    h.apply(&[dns], &[slice_of(&["10.180.1.1", "10.180.1.2"])]);
    h.sync().await;
    assert!(h.conntrack.deleted().is_empty());

    h.apply(&[], &[slice_of(&["10.180.1.1"])]);
    h.sync().await;
    let gone: IpAddr = "10.180.1.2".parse().unwrap();
    let mut deleted = h.conntrack.deleted();
    deleted.sort();
    let mut expected: Vec<FlowFilter> = ["172.30.0.10", "192.168.99.11", "1.2.3.4"]
        .iter()
        .map(|vip| FlowFilter { service: Some(vip.parse().unwrap()), port: 53, endpoint: gone })
        .chain(std::iter::once(FlowFilter { service: None, port: 30053, endpoint: gone }))
        .collect();
    expected.sort();
    assert_eq!(deleted, expected);
}

#[tokio::test]
async fn tcp_endpoints_leave_conntrack_alone() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1", "10.180.1.2"])]);
    h.sync().await;
    h.apply(&[], &[eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    assert!(h.conntrack.deleted().is_empty());
}

#[tokio::test]
async fn an_ipv6_change_touches_only_the_ip6_table() {
    let mut h = Harness::new();
    let v6 = service("ns1", "v6").cluster_ip("fd00:172:30::1").tcp("p80", 80).build();
    let v6_eps = |ip: &str| {
        slice("ns1", "v6", "v6-1")
            .address_type("IPv6")
            .tcp("p80", 8080)
            .endpoint(ip, |e| e.node(OTHER_NODE_NAME))
            .build()
    };
    h.apply(&[v6, svc("svc1", "172.30.0.41")], &[v6_eps("fd00:10::1"), eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    h.apply(&[], &[v6_eps("fd00:10::2")]);
    let (_, scripts) = h.sync_scripts().await;
    assert_eq!(scripts.len(), 1);
    assert_eq!(
        lines(&scripts[0], "add element"),
        [
            "add element ip6 kproxy cluster-endpoints-tcp { fd00:172:30::1 . 80 . 0 : fd00:10::2 . 8080 }",
            "add element ip6 kproxy hairpin-endpoints { fd00:10::2 . fd00:10::2 }",
        ]
    );
}

#[tokio::test]
async fn a_requested_full_sync_reloads_everything() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    h.tracker.request_full_sync();
    let (stats, scripts) = h.sync_scripts().await;
    assert!(stats.full);
    assert_eq!(scripts.len(), 2);
    assert!(scripts[0].contains("\nflush table ip kproxy\n"));
    assert!(
        scripts[0].contains(
            "add element ip kproxy service-ips { 172.30.0.41 . tcp . 80 : goto internal-to-cluster-tcp-1 }\n"
        )
    );
}

#[tokio::test]
async fn nothing_changed_sends_nothing() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    let (stats, scripts) = h.sync_scripts().await;
    assert!(!stats.full);
    assert!(scripts.is_empty());
}

#[tokio::test]
async fn a_table_someone_deleted_is_loaded_again_by_the_next_sync_with_nothing_changed() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    h.nft.drop_tables(IpFamily::V4);
    let (_, scripts) = h.sync_scripts().await;
    assert_eq!(scripts.len(), 1, "the IPv4 table only: {scripts:?}");
    assert!(scripts[0].contains("\nflush table ip kproxy\n"), "a full load:\n{}", scripts[0]);
    assert!(scripts[0].contains("172.30.0.41 . tcp . 80"), "with the services:\n{}", scripts[0]);
    let (_, scripts) = h.sync_scripts().await;
    assert!(scripts.is_empty(), "back in place: {scripts:?}");
}

#[tokio::test]
async fn cleanup_deletes_both_tables() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.sync().await;
    let before = h.nft.scripts().len();
    h.dataplane.cleanup().await.unwrap();
    assert_eq!(
        h.nft.scripts()[before..],
        ["add table ip kproxy\ndelete table ip kproxy\n", "add table ip6 kproxy\ndelete table ip6 kproxy\n"]
    );
    // Whatever was committed is forgotten: the next sync is full.
    h.apply(&[], &[eps("svc1", &["10.180.1.2"])]);
    let (stats, scripts) = h.sync_scripts().await;
    assert!(stats.full);
    assert!(scripts[0].contains("\nflush table ip kproxy\n"));
}

#[tokio::test]
async fn render_is_the_text_of_both_tables() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41")], &[eps("svc1", &["10.180.1.1"])]);
    h.checkout();
    let text = h.dataplane.render(&h.state);
    assert!(text.starts_with("table ip kproxy {\n"));
    assert!(text.contains("\n}\ntable ip6 kproxy {\n"));
    assert!(text.contains("172.30.0.41 . tcp . 80 : goto internal-to-cluster-tcp-1"));
}

#[tokio::test]
async fn explain_names_the_map_elements_and_chains_the_render_holds() {
    let mut h = Harness::new();
    h.apply(&[svc("svc1", "172.30.0.41"), svc("svc2", "172.30.0.42")], &[eps("svc1", &["10.180.1.1"])]);
    h.checkout();
    let query = kproxy_core::explain::Query { destination: "172.30.0.41:80".parse().unwrap(), source: None };
    let x = kproxy_core::explain_with(&h.dataplane, &h.state, &query);
    assert_eq!(x.mode, "nftables");
    assert_eq!(x.masquerade.decision, kproxy_core::explain::Decision::Depends, "a cluster CIDR is configured");
    let text = h.dataplane.render(&h.state);
    let elements: Vec<(String, String, Option<String>)> = x
        .rules
        .iter()
        .filter(|r| r.kind == "element")
        .map(|r| (r.table.clone(), r.name.clone(), r.detail.clone()))
        .collect();
    assert!(
        elements.contains(&(
            "ip kproxy service-ips".to_owned(),
            "172.30.0.41 . tcp . 80".to_owned(),
            Some("goto internal-to-cluster-tcp-1".to_owned())
        )),
        "{elements:?}"
    );
    assert!(
        elements.iter().any(|(t, k, v)| t == "ip kproxy cluster-endpoints-tcp"
            && k == "172.30.0.41 . 80 . 0"
            && v.as_deref() == Some("10.180.1.1 . 8080")),
        "{elements:?}"
    );
    assert!(elements.iter().all(|(_, k, _)| !k.contains("172.30.0.42")), "another port's elements: {elements:?}");
    for (_, key, value) in &elements {
        let line = match value {
            Some(v) => format!("{key} : {v}"),
            None => key.clone(),
        };
        assert!(text.contains(&line), "{line} is not in the rendering");
    }
    let chains: Vec<&str> = x.rules.iter().filter(|r| r.kind == "chain").map(|r| r.name.as_str()).collect();
    assert!(chains.contains(&"internal-to-cluster-tcp-1"), "{chains:?}");
    for chain in chains {
        assert!(text.contains(&format!("chain {chain} {{")), "{chain} is not in the rendering");
    }
}

/// `Committed`'s reference counts, on renders made by hand.
mod committed {
    use kproxy_core::render::PortEntry;
    use kproxy_core::{Endpoint, IpFamily, NamespacedName, Protocol, ServicePort, ServicePortName, TopologyNode};

    use crate::Family;
    use crate::apply::{Committed, Delta};
    use crate::config::NftablesConfig;
    use crate::render::{PortRender, RenderContext, render_port};

    fn name(service: &str) -> ServicePortName {
        ServicePortName::new(NamespacedName::new("ns1", service), "p80", Protocol::Tcp)
    }

    fn endpoints(ips: &[&str]) -> Vec<Endpoint> {
        ips.iter().map(|ip| Endpoint::new(ip.parse().unwrap(), 8080)).collect()
    }

    fn render(service: &str, vip: &str, ips: &[&str], affinity: bool) -> PortRender {
        let config = NftablesConfig::default();
        let ctx = RenderContext {
            family: Family(IpFamily::V4),
            config: &config,
            node: TopologyNode { name: "node1", zone: None },
        };
        let mut port = ServicePort::new(vip.parse().unwrap(), 80, Protocol::Tcp);
        if affinity {
            port.session_affinity = kproxy_core::SessionAffinity::ClientIp { timeout_seconds: 60 };
        }
        let (name, endpoints) = (name(service), endpoints(ips));
        render_port(&ctx, PortEntry { name: &name, port: &port, endpoints: &endpoints })
    }

    fn committed(ports: Vec<(&str, PortRender)>) -> Committed {
        let mut committed = Committed::default();
        let delta = committed.update(ports.into_iter().map(|(n, r)| (name(n), Some(r))).collect());
        assert!(!delta.is_empty());
        committed
    }

    #[test]
    fn a_chain_shared_by_two_ports_goes_with_the_last_one() {
        let mut c = committed(vec![
            ("a", render("a", "172.30.0.1", &["10.0.0.1", "10.0.0.2"], false)),
            ("b", render("b", "172.30.0.2", &["10.0.0.3", "10.0.0.4"], false)),
        ]);
        let delta = c.update(vec![(name("a"), None)]);
        assert!(delta.removed_chains.is_empty(), "{delta:?}");
        assert!(delta.added_chains.is_empty());
        assert_eq!(delta.removed_elements.len(), 6, "cluster IP, service-ips, 2 endpoints, 2 hairpins: {delta:?}");
        let delta = c.update(vec![(name("b"), None)]);
        assert_eq!(delta.removed_chains, ["cluster-tcp-2", "internal-to-cluster-tcp-2"]);
        assert!(c.ports.is_empty());
    }

    #[test]
    fn a_cluster_ip_stays_active_while_any_of_its_ports_is_left() {
        let cluster_ip = |delta: &Delta| -> Vec<(bool, String)> {
            let removed = delta.removed_elements.iter().map(|e| (false, e));
            let added = delta.added_elements.iter().map(|e| (true, e));
            removed.chain(added).filter(|(_, e)| e.set == "cluster-ips").map(|(a, e)| (a, e.key.clone())).collect()
        };
        let mut c = Committed::default();
        let delta = c.update(vec![(name("a"), Some(render("a", "172.30.0.1", &["10.0.0.1"], false)))]);
        assert_eq!(cluster_ip(&delta), [(true, "172.30.0.1".to_owned())]);
        let delta = c.update(vec![(name("b"), Some(render("b", "172.30.0.1", &["10.0.0.2"], false)))]);
        assert_eq!(cluster_ip(&delta), [], "already active");
        let delta = c.update(vec![(name("a"), None)]);
        assert_eq!(cluster_ip(&delta), [], "b still uses it");
        let delta = c.update(vec![(name("b"), None)]);
        assert_eq!(cluster_ip(&delta), [(false, "172.30.0.1".to_owned())]);
    }

    #[test]
    fn an_element_shared_by_two_ports_goes_with_the_last_one() {
        // Both ports have endpoint 10.0.0.1: one hairpin element, counted twice.
        let mut c = committed(vec![
            ("a", render("a", "172.30.0.1", &["10.0.0.1"], false)),
            ("b", render("b", "172.30.0.2", &["10.0.0.1"], false)),
        ]);
        let delta = c.update(vec![(name("a"), None)]);
        assert!(delta.removed_elements.iter().all(|e| e.set != "hairpin-endpoints"), "{delta:?}");
        let delta = c.update(vec![(name("b"), None)]);
        assert!(delta.removed_elements.iter().any(|e| e.set == "hairpin-endpoints" && e.key == "10.0.0.1 . 10.0.0.1"));
    }

    #[test]
    fn the_same_render_again_changes_nothing() {
        let mut c = committed(vec![("a", render("a", "172.30.0.1", &["10.0.0.1"], true))]);
        let delta = c.update(vec![(name("a"), Some(render("a", "172.30.0.1", &["10.0.0.1"], true)))]);
        assert!(delta.is_empty(), "{delta:?}");
    }

    #[test]
    fn a_port_moving_between_generic_chains_is_one_delta() {
        let mut c = committed(vec![
            ("a", render("a", "172.30.0.1", &["10.0.0.1"], false)),
            ("b", render("b", "172.30.0.2", &["10.0.0.2", "10.0.0.3"], false)),
        ]);
        // a grows to 2 endpoints (joins b's chains), b shrinks to 1 (takes a's): no chain
        // is added or removed, only elements move.
        let delta = c.update(vec![
            (name("a"), Some(render("a", "172.30.0.1", &["10.0.0.1", "10.0.0.4"], false))),
            (name("b"), Some(render("b", "172.30.0.2", &["10.0.0.2"], false))),
        ]);
        assert!(delta.added_chains.is_empty() && delta.removed_chains.is_empty(), "{delta:?}");
        assert!(
            delta
                .added_elements
                .iter()
                .any(|e| e.key == "172.30.0.1 . tcp . 80"
                    && e.value.as_deref() == Some("goto internal-to-cluster-tcp-2"))
        );
    }

    #[test]
    fn an_affinity_port_owns_its_sets_and_rewrites_its_choice_chain() {
        let mut c = committed(vec![("a", render("a", "172.30.0.1", &["10.0.0.1", "10.0.0.2"], true))]);
        let delta = c.update(vec![(name("a"), Some(render("a", "172.30.0.1", &["10.0.0.1", "10.0.0.3"], true)))]);
        assert_eq!(delta.removed_sets, ["affinity-cluster-ns1/a/tcp/p80__10.0.0.2/8080"]);
        assert_eq!(delta.added_sets.len(), 1);
        assert_eq!(delta.added_sets[0].name, "affinity-cluster-ns1/a/tcp/p80__10.0.0.3/8080");
        assert_eq!(delta.replaced_chains.len(), 1);
        assert_eq!(delta.replaced_chains[0].name, "affinity-cluster-ns1/a/tcp/p80");
        assert_eq!(delta.removed_chains, ["endpoint-cluster-ns1/a/tcp/p80__10.0.0.2/8080"]);
        assert_eq!(delta.added_chains.len(), 1);
    }

    #[test]
    fn a_changed_affinity_timeout_redeclares_the_sets() {
        let mut c = committed(vec![("a", render("a", "172.30.0.1", &["10.0.0.1"], true))]);
        let mut longer = render("a", "172.30.0.1", &["10.0.0.1"], true);
        for set in &mut longer.sets {
            set.spec = set.spec.replace("timeout 60s", "timeout 120s");
        }
        let delta = c.update(vec![(name("a"), Some(longer))]);
        assert_eq!(delta.added_sets.len(), 1);
        assert!(delta.added_sets[0].spec.contains("timeout 120s"));
        assert!(delta.removed_sets.is_empty());
    }

    #[test]
    fn removing_an_unknown_port_changes_nothing() {
        let mut c = Committed::default();
        assert!(c.update(vec![(name("ghost"), None)]).is_empty());
    }
}

/// A full sync of 10k service ports × 10 endpoints is one `nft -f` transaction per family,
/// the IPv4 one holding every service. With `KPROXY_DUMP_FULL_SCRIPT=FILE` the script is also written to `FILE` (for
/// measuring it with `nft -f` by hand).
#[tokio::test]
async fn a_full_sync_of_ten_thousand_service_ports_is_one_script() {
    let mut state = ProxyState::new("node1");
    let view = state.family_mut(kproxy_core::IpFamily::V4);
    for i in 0..10_000u32 {
        let name = kproxy_core::ServicePortName::new(
            NamespacedName::new("b", format!("s{i}")),
            "p",
            kproxy_core::Protocol::Tcp,
        );
        let vip = IpAddr::V4(std::net::Ipv4Addr::from(0xac1e_0000 + i + 1));
        view.services.insert(name.clone(), kproxy_core::ServicePort::new(vip, 80, kproxy_core::Protocol::Tcp));
        let eps = (0..10)
            .map(|j| kproxy_core::Endpoint::new(IpAddr::V4(std::net::Ipv4Addr::from(0x0a40_0000 + i * 10 + j)), 8080))
            .collect();
        view.endpoints.insert(name, eps);
    }
    let nft = FakeNft::default();
    let mut dp = NftablesDataplane::with_runners(
        NftablesConfig::default(),
        Arc::new(nft.clone()),
        Arc::new(FakeConntrack::default()),
    );
    let stats = dp.sync(&state, &Changes::full_sync()).await.unwrap();
    assert_eq!((stats.full, stats.service_ports), (true, 10_000));
    let scripts = nft.scripts();
    assert_eq!(scripts.len(), 2, "one transaction per family");
    let ipv4 = scripts.iter().find(|s| s.starts_with("add table ip kproxy")).expect("the IPv4 script");
    for vip in ["172.30.0.1 . tcp . 80", "172.30.39.16 . tcp . 80"] {
        assert!(ipv4.contains(vip), "{vip} is in the service-ips map");
    }
    if let Ok(path) = std::env::var("KPROXY_DUMP_FULL_SCRIPT") {
        std::fs::write(path, ipv4).unwrap();
    }
}
