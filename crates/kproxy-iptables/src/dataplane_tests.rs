use std::net::IpAddr;

use kproxy_core::{Endpoint, NamespacedName, Protocol, ServicePort, ServicePortName};
use kproxy_netfilter::{FakeConntrack, FakeIptables, FlowFilter};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP")
}

fn port_name(i: usize) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns", format!("svc{i}")), "http", Protocol::Tcp)
}

/// `n` ClusterIP service ports with two endpoints each.
fn state(n: usize) -> ProxyState {
    state_with(0..n)
}

/// ClusterIP service ports `ids` with two endpoints each.
fn state_with(ids: impl IntoIterator<Item = usize>) -> ProxyState {
    let mut state = ProxyState::new("node1");
    let v4 = state.family_mut(IpFamily::V4);
    for i in ids {
        v4.services.insert(port_name(i), ServicePort::new(ip(&format!("172.30.0.{}", i + 1)), 80, Protocol::Tcp));
        let endpoints = (0..2).map(|e| Endpoint::new(ip(&format!("10.0.{i}.{e}")), 8080)).collect();
        v4.endpoints.insert(port_name(i), endpoints);
    }
    state
}

fn changed(names: impl IntoIterator<Item = ServicePortName>) -> Changes {
    let mut changes = Changes::default();
    changes.family_mut(IpFamily::V4).service_ports.extend(names);
    changes
}

struct Fixture {
    dataplane: IptablesDataplane,
    v4: FakeIptables,
    conntrack: FakeConntrack,
}

fn fixture() -> Fixture {
    let (v4, v6, conntrack) = (FakeIptables::default(), FakeIptables::default(), FakeConntrack::default());
    let config =
        IptablesConfig { cluster_cidrs: vec!["10.0.0.0/8".parse().expect("CIDR")], ..IptablesConfig::default() };
    let dataplane =
        IptablesDataplane::with_runners(config, Arc::new(v4.clone()), Arc::new(v6), Arc::new(conntrack.clone()));
    Fixture { dataplane, v4, conntrack }
}

/// What a full sync of `state` leaves in a fresh fake.
async fn fresh_nat(state: &ProxyState) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut f = fixture();
    f.dataplane.sync(state, &Changes::full_sync()).await.expect("full sync");
    f.v4.chains("nat")
}

#[tokio::test]
async fn first_sync_is_one_restore_per_family() {
    let mut f = fixture();
    let stats = f.dataplane.sync(&state(50), &Changes::default()).await.expect("sync");
    assert!(stats.full);
    assert_eq!(stats.service_ports, 50);
    assert_eq!(f.v4.calls(), ["route_localnet", "save filter", "save nat", "restore"]);
    let nat = f.v4.chains("nat");
    assert_eq!(nat.keys().filter(|c| c.starts_with("KUBE-SEP-")).count(), 100);
    assert_eq!(nat["PREROUTING"], ["-m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"]);
    assert!(f.v4.chains("mangle").contains_key("KUBE-PROXY-CANARY"));
    assert!(f.v4.route_localnet());
}

#[tokio::test]
async fn partial_sync_rewrites_only_changed_ports_and_deletes_their_stale_chains() {
    let mut f = fixture();
    let mut s = state(20);
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("full sync");
    s.family_mut(IpFamily::V4).endpoints.insert(port_name(3), vec![Endpoint::new(ip("10.9.9.9"), 8080)]);
    let stats = f.dataplane.sync(&s, &changed([port_name(3)])).await.expect("partial sync");
    assert!(!stats.full);
    assert_eq!(stats.touched_service_ports, 1);
    let calls = f.v4.calls();
    assert_eq!(calls[calls.len() - 2..], ["chain_exists mangle KUBE-PROXY-CANARY", "restore"]);
    let text = f.v4.restores().pop().expect("a restore");
    assert_eq!(text.matches(":KUBE-SVC-").count(), 1, "{text}");
    assert_eq!(text.matches("-X KUBE-SEP-").count(), 2, "{text}");
    assert_eq!(text.matches("-A KUBE-SERVICES ").count(), 21, "shared chains are complete");
    assert_eq!(f.v4.chains("nat"), fresh_nat(&s).await);
}

#[tokio::test]
async fn partial_syncs_converge_to_what_a_full_sync_writes() {
    let mut f = fixture();
    let mut s = state(10);
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("full sync");
    let with_node_port = |s: &mut ProxyState| {
        let v4 = s.family_mut(IpFamily::V4);
        let port = ServicePort { node_port: Some(30010), ..ServicePort::new(ip("172.30.1.10"), 80, Protocol::Tcp) };
        v4.services.insert(port_name(10), port);
        v4.endpoints.insert(port_name(10), vec![Endpoint::new(ip("10.1.0.1"), 80)]);
    };
    with_node_port(&mut s);
    f.dataplane.sync(&s, &changed([port_name(10)])).await.expect("add");
    s = state_with((0..10).filter(|i| *i != 2));
    with_node_port(&mut s);
    s.family_mut(IpFamily::V4).endpoints.insert(port_name(4), Vec::new());
    let stats = f.dataplane.sync(&s, &changed([port_name(2), port_name(4)])).await.expect("remove and empty");
    assert_eq!(f.v4.chains("nat"), fresh_nat(&s).await);
    // The rules owned, counted from a partial sync, are those the fake tables hold.
    let held = |table: &str| f.v4.chains(table).values().map(Vec::len).sum::<usize>();
    let tables = stats.table_rules.expect("iptables counts its rules");
    assert_eq!(tables.total[IpFamily::V4.index()], [held("filter"), held("nat")]);
    assert!(tables.written[IpFamily::V4.index()][1] < tables.total[IpFamily::V4.index()][1], "a partial write");
    assert_eq!(f.v4.chains("filter"), {
        let mut fresh = fixture();
        fresh.dataplane.sync(&s, &Changes::full_sync()).await.expect("full");
        fresh.v4.chains("filter")
    });
}

#[tokio::test]
async fn a_missing_canary_turns_the_next_sync_into_a_full_one() {
    let mut f = fixture();
    let s = state(5);
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("full sync");
    f.v4.wipe();
    let stats = f.dataplane.sync(&s, &changed([port_name(1)])).await.expect("sync");
    assert!(stats.full);
    assert_eq!(f.v4.chains("nat"), fresh_nat(&s).await, "jumps, shared and service chains are back");
}

#[tokio::test]
async fn a_failed_partial_restore_falls_back_to_a_full_sync() {
    let mut f = fixture();
    let s = state(5);
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("full sync");
    f.v4.fail_next(1);
    let stats = f.dataplane.sync(&s, &changed([port_name(1)])).await.expect("sync");
    assert!(stats.full);
    f.v4.fail_next(2);
    let error = f.dataplane.sync(&s, &changed([port_name(1)])).await.expect_err("both restores fail");
    assert!(error.is_retryable());
    f.dataplane.sync(&s, &changed([])).await.expect("sync");
    assert_eq!(f.v4.calls().last().map(String::as_str), Some("restore"), "after an error the next sync is full");
}

#[tokio::test]
async fn full_sync_deletes_service_chains_nobody_wants() {
    let f = fixture();
    let leftover = "*nat\n:KUBE-SVC-LEFTOVER0000000 - [0:0]\n:KUBE-SEP-LEFTOVER0000000 - [0:0]\n-A KUBE-SVC-LEFTOVER0000000 -j KUBE-SEP-LEFTOVER0000000\nCOMMIT\n";
    f.v4.restore(leftover).await.expect("leftovers");
    let mut f = f;
    f.dataplane.sync(&state(2), &Changes::full_sync()).await.expect("full sync");
    let nat = f.v4.chains("nat");
    assert!(!nat.keys().any(|c| c.contains("LEFTOVER")), "{:?}", nat.keys());
}

#[tokio::test]
async fn jumps_are_not_duplicated_by_full_syncs() {
    let mut f = fixture();
    f.dataplane.sync(&state(2), &Changes::full_sync()).await.expect("full sync");
    f.dataplane.sync(&state(2), &Changes::full_sync()).await.expect("full sync again");
    assert_eq!(f.v4.chains("filter")["INPUT"].len(), 4, "{:?}", f.v4.chains("filter")["INPUT"]);
    assert_eq!(f.v4.chains("nat")["PREROUTING"].len(), 1);
}

#[tokio::test]
async fn cleanup_removes_our_chains_and_jumps_only() {
    let mut f = fixture();
    f.v4.restore("*nat\n:OTHER - [0:0]\n-A OUTPUT -j OTHER\nCOMMIT\n").await.expect("someone else's rules");
    f.v4.restore("*filter\n:FOREIGN - [0:0]\n-A INPUT -j FOREIGN\nCOMMIT\n").await.expect("someone else's filter rule");
    f.dataplane.sync(&state(3), &Changes::full_sync()).await.expect("full sync");
    f.dataplane.cleanup().await.expect("cleanup");
    let nat = f.v4.chains("nat");
    assert_eq!(nat.keys().filter(|c| c.starts_with("KUBE-")).count(), 0, "{:?}", nat.keys());
    assert_eq!(nat["OUTPUT"], ["-j OTHER"]);
    let filter = f.v4.chains("filter");
    assert_eq!(
        filter.keys().filter(|c| c.starts_with("KUBE-")).count(),
        0,
        "KUBE-FIREWALL is ours too: {:?}",
        filter.keys()
    );
    assert_eq!(filter["INPUT"], ["-j FOREIGN"], "only the foreign jump stays");
    assert!(!f.v4.chains("mangle").contains_key("KUBE-PROXY-CANARY"));
    let restores = f.v4.restores().len();
    f.dataplane.cleanup().await.expect("cleanup again");
    assert_eq!(f.v4.restores().len(), restores, "nothing left to remove");
}

#[tokio::test]
async fn stale_udp_endpoints_lose_their_flows() {
    let mut f = fixture();
    let mut s = ProxyState::new("node1");
    let name = ServicePortName::new(NamespacedName::new("ns", "dns"), "dns", Protocol::Udp);
    s.family_mut(IpFamily::V4).services.insert(name.clone(), ServicePort::new(ip("172.30.0.10"), 53, Protocol::Udp));
    let mut changes = changed([name.clone()]);
    changes.family_mut(IpFamily::V4).stale_udp_endpoints.push((name, Endpoint::new(ip("10.0.0.7"), 53)));
    f.dataplane.sync(&s, &changes).await.expect("sync");
    assert_eq!(
        f.conntrack.deleted(),
        [FlowFilter { service: Some(ip("172.30.0.10")), port: 53, endpoint: ip("10.0.0.7") }]
    );
}

#[tokio::test]
async fn a_deleted_udp_service_loses_its_flows_too() {
    let mut f = fixture();
    let name = ServicePortName::new(NamespacedName::new("ns", "dns"), "dns", Protocol::Udp);
    let mut s = ProxyState::new("node1");
    let port = ServicePort { node_port: Some(30053), ..ServicePort::new(ip("172.30.0.10"), 53, Protocol::Udp) };
    s.family_mut(IpFamily::V4).services.insert(name.clone(), port);
    s.family_mut(IpFamily::V4).endpoints.insert(name.clone(), vec![Endpoint::new(ip("10.0.0.7"), 53)]);
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("sync");
    let mut changes = changed([name.clone()]);
    changes.family_mut(IpFamily::V4).stale_udp_endpoints.push((name, Endpoint::new(ip("10.0.0.7"), 53)));
    f.dataplane.sync(&ProxyState::new("node1"), &changes).await.expect("sync");
    let flow = |service, port| FlowFilter { service, port, endpoint: ip("10.0.0.7") };
    assert_eq!(f.conntrack.deleted(), [flow(Some(ip("172.30.0.10")), 53), flow(None, 30053)]);
}

#[test]
fn explain_names_the_hashed_chains_and_the_rules_of_the_destination() {
    let name = ServicePortName::new(NamespacedName::new("ns1", "svc1"), "p80", Protocol::Tcp);
    let mut state = state(1);
    let v4 = state.family_mut(IpFamily::V4);
    v4.services.insert(
        name.clone(),
        ServicePort { node_port: Some(30080), ..ServicePort::new(ip("172.30.0.41"), 80, Protocol::Tcp) },
    );
    v4.endpoints.insert(name, vec![Endpoint::new(ip("10.180.0.1"), 80)]);
    let dataplane = fixture().dataplane;
    let ask = |dst: &str| {
        let query = kproxy_core::explain::Query { destination: dst.parse().expect("dst"), source: None };
        kproxy_core::explain_with(&dataplane, &state, &query)
    };
    let x = ask("172.30.0.41:80");
    assert_eq!(x.mode, "iptables");
    let chains: Vec<&str> = x.rules.iter().filter(|r| r.kind == "chain").map(|r| r.name.as_str()).collect();
    // Upstream's hashes (TestOverallIPTablesRules).
    assert!(chains.contains(&"KUBE-SVC-XPGD46QRK7WJZT7O"), "{chains:?}");
    assert!(chains.contains(&"KUBE-SEP-SXIVWICOYRO3J4NJ"), "{chains:?}");
    assert!(chains.contains(&"KUBE-EXT-XPGD46QRK7WJZT7O"), "{chains:?}");
    let rules: Vec<&str> = x.rules.iter().filter(|r| r.kind == "rule").map(|r| r.name.as_str()).collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(
        rules[0].starts_with("-A KUBE-SERVICES ") && rules[0].ends_with("-j KUBE-SVC-XPGD46QRK7WJZT7O"),
        "{rules:?}"
    );
    let node_port = ask("192.168.0.2:30080");
    assert!(node_port.rules.is_empty(), "no node address known: no match");
    let mut with_node = state.clone();
    with_node.node.addresses = vec![ip("192.168.0.2")];
    let query = kproxy_core::explain::Query { destination: "192.168.0.2:30080".parse().expect("dst"), source: None };
    let x = kproxy_core::explain_with(&dataplane, &with_node, &query);
    let rules: Vec<&str> = x.rules.iter().filter(|r| r.kind == "rule").map(|r| r.name.as_str()).collect();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(
        rules[0].starts_with("-A KUBE-NODEPORTS ") && rules[0].ends_with("-j KUBE-EXT-XPGD46QRK7WJZT7O"),
        "{rules:?}"
    );
    assert_eq!(x.masquerade.decision, kproxy_core::explain::Decision::Yes);
}

/// One NodePort service port (30080) with two endpoints.
fn node_port_state() -> ProxyState {
    let mut s = state(1);
    let port = ServicePort { node_port: Some(30080), ..ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp) };
    s.family_mut(IpFamily::V4).services.insert(port_name(0), port);
    s
}

#[tokio::test]
async fn rules_feed_upstreams_nfacct_counters_once_they_exist() {
    let nfacct = Arc::new(kproxy_netfilter::FakeNfacct::default());
    let mut f = fixture();
    f.dataplane = f.dataplane.with_nfacct(nfacct.clone());
    let s = node_port_state();
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("sync");
    assert_eq!(nfacct.names(), [CT_STATE_INVALID_DROPPED, LOCALHOST_NODEPORTS_ACCEPTED]);
    assert_eq!(
        f.v4.chains("filter")["KUBE-FORWARD"][0],
        "-m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP"
    );
    let nodeports = &f.v4.chains("nat")["KUBE-NODEPORTS"];
    assert_eq!(nodeports.len(), 2, "{nodeports:?}");
    assert!(
        nodeports[0]
            .contains("-d 127.0.0.0/8 --dport 30080 -m nfacct --nfacct-name localhost_nps_accepted_pkts -j KUBE-EXT-")
    );
    assert!(!nodeports[1].contains("127.0.0.0/8"), "then the rule for every address");
    // The metrics read the kernel's counts.
    nfacct.count(LOCALHOST_NODEPORTS_ACCEPTED, 3);
    let counters = f.dataplane.packet_counters().expect("iptables keeps counters");
    assert_eq!(
        counters.kinds(),
        [PacketCounter::IptablesCtStateInvalidDropped, PacketCounter::IptablesLocalhostNodePortsAccepted]
    );
    assert_eq!(
        counters.read().await,
        [(PacketCounter::IptablesCtStateInvalidDropped, 0), (PacketCounter::IptablesLocalhostNodePortsAccepted, 3)]
    );
    f.dataplane.cleanup().await.expect("cleanup");
    assert!(nfacct.names().is_empty(), "cleanup deletes the counters");
}

#[tokio::test]
async fn without_nfacct_the_rules_count_nothing_and_still_sync() {
    let mut f = fixture();
    let s = node_port_state();
    f.dataplane.sync(&s, &Changes::full_sync()).await.expect("sync");
    assert_eq!(f.v4.chains("filter")["KUBE-FORWARD"][0], "-m conntrack --ctstate INVALID -j DROP");
    assert_eq!(f.v4.chains("nat")["KUBE-NODEPORTS"].len(), 1);
}
