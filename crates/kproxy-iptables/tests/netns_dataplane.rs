//! The dataplane against real iptables (legacy and nft) in network namespaces this test
//! creates: partial syncs end where a full sync would, a flushed table is noticed and
//! rebuilt, cleanup leaves nothing of ours, and backend detection. Packet tests: they need
//! root, `ip`, both iptables flavours, and `sysctl`, so a plain `cargo test` ignores them;
//! `cargo xtask test` runs them.

mod support;

use kproxy_conformance::OfflineNode;
use kproxy_core::{Changes, Dataplane};
use kproxy_iptables::{Backend, IptablesConfig, IptablesDataplane};
use kproxy_netfilter::{IptablesBackend, Netns as ToolNetns};
use kproxy_testkit::golden;
use kproxy_testkit::ip_plan::{NODE_NAME, OTHER_NODE_NAME};
use kproxy_testkit::{service, slice};
use support::{Netns, netns, pod_cidr_v4, require_kernel};

fn dataplane(netns: &Netns, backend: Backend) -> IptablesDataplane {
    IptablesDataplane::new(IptablesConfig {
        backend,
        cluster_cidrs: vec![pod_cidr_v4()],
        netns: Some(netns.name.clone()),
        ..IptablesConfig::default()
    })
}

/// A cluster with a ClusterIP, a NodePort and an affinity service.
fn cluster() -> OfflineNode {
    let web = service("ns1", "web").cluster_ip("172.30.0.41").node_port("http", 80, 30080).build();
    let web_eps = slice("ns1", "web", "web-1")
        .tcp("http", 8080)
        .endpoint("10.180.0.1", |e| e.node(NODE_NAME))
        .endpoint("10.180.1.1", |e| e.node(OTHER_NODE_NAME))
        .build();
    let sticky =
        service("ns1", "sticky").cluster_ip("172.30.0.42").tcp("http", 80).client_ip_affinity(Some(60)).build();
    let sticky_eps =
        slice("ns1", "sticky", "sticky-1").tcp("http", 8080).endpoint("10.180.0.2", |e| e.node(NODE_NAME)).build();
    OfflineNode::with(&golden::node(), &[web, sticky], &[web_eps, sticky_eps])
}

/// A table as `iptables-save` prints it, without comments and counters, chains sorted.
fn saved(netns: &Netns, backend: &str, table: &str) -> Vec<String> {
    let text = netns.run_ok(&format!("iptables-{backend}-save"), &["-t", table], "");
    let mut lines: Vec<String> =
        text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(" [").next().unwrap_or(l).to_owned()).collect();
    lines.sort();
    lines
}

async fn partial_syncs_match_a_fresh_full_sync(backend: Backend, name: &str) {
    let (a, b) = (netns(&format!("{name}-a")), netns(&format!("{name}-b")));
    let mut cluster = cluster();
    let mut dp = dataplane(&a, backend);
    dp.sync(&cluster.state, &Changes::full_sync()).await.expect("full sync");
    let moved =
        slice("ns1", "web", "web-1").tcp("http", 8080).endpoint("10.180.2.1", |e| e.node(OTHER_NODE_NAME)).build();
    let extra = service("ns2", "new").cluster_ip("172.30.0.43").udp("dns", 53).build();
    cluster.apply(&[extra], &[moved]);
    let changes = cluster.checkout();
    let stats = dp.sync(&cluster.state, &changes).await.expect("partial sync");
    assert!(!stats.full, "a partial sync");
    let mut fresh = dataplane(&b, backend);
    fresh.sync(&cluster.state, &Changes::full_sync()).await.expect("full sync");
    for table in ["nat", "filter", "mangle"] {
        assert_eq!(saved(&a, name, table), saved(&b, name, table), "{table} after a partial sync ({name})");
    }
    assert!(!saved(&a, name, "nat").iter().any(|l| l.contains("10.180.0.1")), "the old endpoint's chain is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn partial_syncs_match_a_fresh_full_sync_legacy() {
    require_kernel();
    partial_syncs_match_a_fresh_full_sync(Backend::Legacy, "legacy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn partial_syncs_match_a_fresh_full_sync_nft() {
    require_kernel();
    partial_syncs_match_a_fresh_full_sync(Backend::Nft, "nft").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn a_flushed_table_is_rebuilt_on_the_next_sync() {
    require_kernel();
    let netns = netns("tamper");
    let cluster = cluster();
    let mut dp = dataplane(&netns, Backend::Nft);
    dp.sync(&cluster.state, &Changes::full_sync()).await.expect("full sync");
    let before = saved(&netns, "nft", "nat");
    // What a firewall restart does: every table flushed and its chains deleted.
    for table in ["mangle", "nat", "filter"] {
        netns.run_ok("iptables-nft", &["-t", table, "-F"], "");
        netns.run_ok("iptables-nft", &["-t", table, "-X"], "");
    }
    let stats = dp.sync(&cluster.state, &Changes::default()).await.expect("sync");
    assert!(stats.full, "the missing canary forces a full sync");
    assert_eq!(saved(&netns, "nft", "nat"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn cleanup_restores_the_listing_taken_before_the_first_sync() {
    require_kernel();
    for backend in ["legacy", "nft"] {
        let netns = netns(&format!("cleanup-{backend}"));
        let tool = format!("iptables-{backend}");
        netns.run_ok(&tool, &["-t", "nat", "-N", "OTHER"], "");
        netns.run_ok(&tool, &["-t", "nat", "-A", "OUTPUT", "-j", "OTHER"], "");
        netns.run_ok(&tool, &["-t", "filter", "-A", "INPUT", "-s", "198.51.100.7/32", "-j", "DROP"], "");
        let listing = |t: &str| ["nat", "filter", "mangle"].map(|table| saved(&netns, t, table));
        let before = listing(backend);
        let choice = if backend == "legacy" { Backend::Legacy } else { Backend::Nft };
        dataplane(&netns, choice).sync(&cluster().state, &Changes::full_sync()).await.expect("full sync");
        assert_ne!(listing(backend), before, "{backend}: the sync programmed something");
        dataplane(&netns, Backend::Auto).cleanup().await.expect("cleanup");
        assert_eq!(listing(backend), before, "{backend}: cleanup leaves exactly what was there before");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn detection_follows_the_flavour_in_use() {
    require_kernel();
    let netns = netns("detect");
    let tools = ToolNetns(Some(netns.name.clone()));
    assert_eq!(IptablesBackend::detect(&tools).await, IptablesBackend::Nft, "empty: nft");
    for port in ["22", "80", "443"] {
        netns.run_ok("iptables-legacy", &["-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "ACCEPT"], "");
    }
    assert_eq!(IptablesBackend::detect(&tools).await, IptablesBackend::Legacy, "legacy holds more rules");
    netns.run_ok("iptables-nft", &["-t", "mangle", "-N", "KUBE-IPTABLES-HINT"], "");
    assert_eq!(IptablesBackend::detect(&tools).await, IptablesBackend::Nft, "kubelet's hint wins");
}
