//! The dataplane against a real kernel, in network namespaces this test creates: after a
//! full load and after every partial update, the table equals a from-scratch load of the
//! same state; a full sync over a live table applies without falling back, deletes stale
//! objects and keeps affinity entries; cleanup leaves the ruleset as it was before the first
//! sync (another table included).
//!
//! A packet test: it needs root, `ip` and `nft`, so a plain `cargo test` ignores it;
//! `cargo xtask test` runs it.

mod support;

use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_conformance::OfflineNode;
use kproxy_core::{Dataplane, NamespacedName};
use kproxy_netfilter::{ExecNft, FakeConntrack, RecordingNft};
use kproxy_nftables::{NftablesConfig, NftablesDataplane};
use kproxy_testkit::golden::unified_diff;
use kproxy_testkit::ip_plan::{NODE_NAME, OTHER_NODE_NAME};
use kproxy_testkit::{EndpointBuilder, service, slice};
use support::{Netns, netns, node1, normalize_listing, pod_cidrs, require_kernel};

fn on(node: &'static str) -> impl FnOnce(EndpointBuilder) -> EndpointBuilder {
    move |e| e.node(node)
}

fn web_eps(ips: &[&str]) -> EndpointSlice {
    ips.iter().fold(slice("ns1", "web", "web-1").tcp("p80", 8080), |b, ip| b.endpoint(ip, on(OTHER_NODE_NAME))).build()
}

fn sticky_eps(ips: &[&str]) -> EndpointSlice {
    ips.iter()
        .fold(slice("ns1", "sticky", "sticky-1").tcp("p80", 8080), |b, ip| b.endpoint(ip, on(OTHER_NODE_NAME)))
        .build()
}

fn local_eps(local: bool) -> EndpointSlice {
    let b = slice("ns1", "local", "local-1").tcp("p80", 8080).endpoint("10.180.1.30", on(OTHER_NODE_NAME));
    if local { b.endpoint("10.180.0.30", on(NODE_NAME)) } else { b }.build()
}

fn dual_v6_eps(ip: &str) -> EndpointSlice {
    slice("ns1", "dual", "dual-v6").address_type("IPv6").tcp("p80", 8080).endpoint(ip, on(OTHER_NODE_NAME)).build()
}

fn services() -> Vec<Service> {
    vec![
        service("ns1", "web").cluster_ip("172.30.0.41").tcp("p80", 80).build(),
        service("ns1", "np")
            .cluster_ip("172.30.0.42")
            .node_port("p80", 80, 30080)
            .port("dns", 53, "UDP", Some(30053))
            .build(),
        service("ns1", "sticky")
            .type_("NodePort")
            .cluster_ip("172.30.0.43")
            .port("p80", 80, "TCP", Some(30081))
            .client_ip_affinity(Some(120))
            .build(),
        service("ns1", "local")
            .type_("LoadBalancer")
            .cluster_ip("172.30.0.44")
            .port("p80", 80, "TCP", Some(30082))
            .lb_ingress("1.2.3.4", None)
            .source_ranges(&["203.0.113.0/25"])
            .external_traffic_policy("Local")
            .build(),
        service("ns1", "dual").cluster_ips(&["172.30.0.45", "fd00:172:30::45"]).tcp("p80", 80).build(),
    ]
}

fn slices() -> Vec<EndpointSlice> {
    vec![
        web_eps(&["10.180.1.1", "10.180.1.2", "10.180.1.3"]),
        slice("ns1", "np", "np-1")
            .tcp("p80", 8080)
            .udp("dns", 5353)
            .endpoint("10.180.0.10", on(NODE_NAME))
            .endpoint("10.180.1.10", on(OTHER_NODE_NAME))
            .build(),
        sticky_eps(&["10.180.1.20", "10.180.1.21"]),
        local_eps(true),
        slice("ns1", "dual", "dual-v4").tcp("p80", 8080).endpoint("10.180.1.40", on(OTHER_NODE_NAME)).build(),
        dual_v6_eps("fd00:10::40"),
    ]
}

/// The kernel's view of what `netns` holds, in canonical form.
fn listing(netns: &Netns) -> Vec<String> {
    normalize_listing(&netns.nft_ok(&["list", "ruleset"], ""))
}

/// A table that is not kproxy's, in both namespaces.
const FOREIGN: &str =
    "table inet foreign {\n chain input { type filter hook input priority 0; tcp dport 2222 drop; }\n}\n";

/// `live` holds what a from-scratch load of `cluster`'s state gives in `scratch`.
fn assert_matches_scratch(
    step: &str,
    live: &Netns,
    scratch: &Netns,
    dataplane: &NftablesDataplane,
    cluster: &OfflineNode,
) {
    scratch.nft_ok(&["flush", "ruleset"], "");
    scratch.nft_ok(&["-f", "-"], FOREIGN);
    scratch.nft_ok(&["-f", "-"], &dataplane.render(&cluster.state));
    let expected = listing(scratch).join("\n");
    let actual = listing(live).join("\n");
    if expected != actual {
        panic!(
            "{step}: the live table differs from a fresh load:\n{}",
            unified_diff(&expected, &actual, "fresh load", "live")
        );
    }
}

#[tokio::test]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn partial_updates_keep_the_kernel_equal_to_a_fresh_load() {
    require_kernel();
    let live = netns("live");
    let scratch = netns("scratch");
    // Someone else's table: cleanup must leave it exactly as it was.
    live.nft_ok(&["-f", "-"], FOREIGN);
    let before_start = live.nft_ok(&["list", "ruleset"], "");
    let config =
        NftablesConfig { cluster_cidrs: pod_cidrs(), netns: Some(live.name.clone()), ..NftablesConfig::default() };
    let nft = Arc::new(RecordingNft::new(Arc::new(ExecNft::new(Some(live.name.clone())))));
    let mut dataplane = NftablesDataplane::with_runners(config, nft.clone(), Arc::new(FakeConntrack::default()));
    let mut cluster = node1();
    cluster.apply(&services(), &slices());
    let changes = cluster.checkout();
    let stats = dataplane.sync(&cluster.state, &changes).await.expect("first sync");
    assert!(stats.full);
    assert_matches_scratch("first sync", &live, &scratch, &dataplane, &cluster);

    type Step = (&'static str, Box<dyn Fn(&mut OfflineNode)>);
    let steps: Vec<Step> = vec![
        ("an endpoint replaced", Box::new(|c| c.apply(&[], &[web_eps(&["10.180.1.1", "10.180.1.2", "10.180.1.4"])]))),
        ("3 endpoints become 2", Box::new(|c| c.apply(&[], &[web_eps(&["10.180.1.1", "10.180.1.2"])]))),
        ("an affinity endpoint goes", Box::new(|c| c.apply(&[], &[sticky_eps(&["10.180.1.20"])]))),
        ("an affinity endpoint comes", Box::new(|c| c.apply(&[], &[sticky_eps(&["10.180.1.20", "10.180.1.22"])]))),
        (
            "a service is added",
            Box::new(|c| {
                c.apply(
                    &[service("ns1", "new").cluster_ip("172.30.0.46").tcp("p80", 80).build()],
                    &[slice("ns1", "new", "new-1")
                        .tcp("p80", 8080)
                        .endpoint("10.180.1.50", on(OTHER_NODE_NAME))
                        .build()],
                )
            }),
        ),
        (
            "a node-port service is deleted",
            Box::new(|c| {
                c.tracker.on_service_delete(&NamespacedName::new("ns1", "np"));
            }),
        ),
        ("the last local endpoint goes", Box::new(|c| c.apply(&[], &[local_eps(false)]))),
        ("a local endpoint comes back", Box::new(|c| c.apply(&[], &[local_eps(true)]))),
        (
            "the affinity timeout changes",
            Box::new(|c| {
                let sticky = services().into_iter().find(|s| s.metadata.name.as_deref() == Some("sticky"));
                let sticky = sticky.expect("sticky").clone();
                let mut sticky = sticky;
                let spec = sticky.spec.as_mut().expect("spec");
                spec.session_affinity_config
                    .as_mut()
                    .and_then(|a| a.client_ip.as_mut())
                    .expect("config")
                    .timeout_seconds = Some(600);
                c.apply(&[sticky], &[]);
            }),
        ),
        ("an IPv6 endpoint is replaced", Box::new(|c| c.apply(&[], &[dual_v6_eps("fd00:10::41")]))),
        ("every endpoint of a service goes", Box::new(|c| c.apply(&[], &[web_eps(&[])]))),
        (
            "a service is deleted",
            Box::new(|c| {
                c.tracker.on_service_delete(&NamespacedName::new("ns1", "web"));
            }),
        ),
    ];
    for (step, change) in &steps {
        change(&mut cluster);
        let changes = cluster.checkout();
        let stats = dataplane.sync(&cluster.state, &changes).await.unwrap_or_else(|e| panic!("{step}: {e}"));
        assert!(!stats.full, "{step}: expected a partial update");
        assert!(nft.failures().is_empty(), "{step}: nft refused a script: {:#?}", nft.failures());
        assert_matches_scratch(step, &live, &scratch, &dataplane, &cluster);
    }

    // A full sync over the live table: stale objects go, affinity entries stay.
    let sticky_set = "affinity-cluster-ns1/sticky/tcp/p80__10.180.1.20/8080";
    live.nft_ok(&["-f", "-"], &format!("add element ip kproxy {sticky_set} {{ 10.99.0.1 }}\n"));
    live.nft_ok(
        &["-f", "-"],
        "add chain ip kproxy stale-chain\nadd set ip kproxy affinity-stale { type ipv4_addr; }\n",
    );
    cluster.tracker.request_full_sync();
    let changes = cluster.checkout();
    let stats = dataplane.sync(&cluster.state, &changes).await.expect("full sync");
    assert!(stats.full);
    assert!(nft.failures().is_empty(), "the full load fell back: {:#?}", nft.failures());
    let set = live.nft_ok(&["list", "set", "ip", "kproxy", sticky_set], "");
    assert!(set.contains("10.99.0.1"), "the affinity entry survived the full sync:\n{set}");
    live.nft_ok(&["-f", "-"], &format!("delete element ip kproxy {sticky_set} {{ 10.99.0.1 }}\n"));
    assert_matches_scratch("full sync over the live table", &live, &scratch, &dataplane, &cluster);

    // Nothing changed (the periodic sync): nothing is sent while the table is there; a
    // table someone deleted is loaded again at once.
    let sent = nft.scripts().len();
    let changes = cluster.checkout();
    dataplane.sync(&cluster.state, &changes).await.expect("a sync with nothing changed");
    assert_eq!(nft.scripts().len(), sent, "nothing to send");
    live.nft_ok(&["delete", "table", "ip", "kproxy"], "");
    let changes = cluster.checkout();
    dataplane.sync(&cluster.state, &changes).await.expect("a sync after the table went");
    assert_matches_scratch("a deleted table loaded again", &live, &scratch, &dataplane, &cluster);

    dataplane.cleanup().await.expect("cleanup");
    assert_eq!(live.nft_ok(&["list", "ruleset"], ""), before_start, "cleanup leaves the ruleset as it was before");
    dataplane.cleanup().await.expect("cleanup twice");
}
