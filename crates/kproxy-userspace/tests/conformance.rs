//! The conformance suite on real packets, for the userspace dataplane. A packet test: it
//! needs root (it creates network namespaces) and the tools it names, so a plain
//! `cargo test` ignores it; `cargo xtask test` runs it. Cases this mode cannot pass are
//! reported as skipped cases, with the reason, in the suite's summary.

use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_testkit::prereq::{Tool, require};
use kproxy_userspace::{UserspaceConfig, UserspaceDataplane};

/// The relay connects to endpoints from the node: they see the node's address, never the
/// client's. Cases that check a preserved source cannot pass in this mode.
const SOURCE_LOST: &str = "a userspace relay opens its own connection to the endpoint, so the endpoint sees the node's address: the client's source cannot be preserved";

/// Upstream's userspace mode does not do this; only its nftables mode has `cluster-ips-check`.
const NO_CLUSTER_IP_HYGIENE: &str = "upstream's userspace mode neither rejects unknown ports of cluster IPs nor drops unallocated \
     service-CIDR addresses: only its nftables mode does (cluster-ips-check)";

/// Cases this dataplane cannot run, with the reason.
const SKIPS: &[(&str, &str)] = &[
    ("cluster-ip-hygiene", NO_CLUSTER_IP_HYGIENE),
    ("nodeport-local-policy", SOURCE_LOST),
    ("loadbalancer-local-policy", SOURCE_LOST),
    ("cluster-cidr-masquerade", SOURCE_LOST),
    ("ipv6-clusterip", SOURCE_LOST),
    (
        "sctp-clusterip",
        "the userspace relay carries TCP and UDP only: an SCTP association's streams and message boundaries do not survive a byte-stream relay (upstream's userspace mode had no SCTP either)",
    ),
];

fn build(env: &NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> {
    // Called on a thread inside node1: the relay's threads and sockets live there.
    Ok(Box::new(UserspaceDataplane::new(UserspaceConfig {
        cluster_cidrs: env.cluster_cidrs.clone(),
        netns: Some(env.netns.clone()),
        ..UserspaceConfig::default()
    })?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn userspace_conformance() {
    require(&[Tool::Ip, Tool::Nft]);
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let skips: &[(&str, &str)] = if std::env::var_os("KPROXY_CONFORMANCE_NO_SKIPS").is_some() { &[] } else { SKIPS };
    let report = run_conformance(build, skips, filter.as_deref()).await;
    report.assert_all_passed();
}
