//! The conformance suite end to end in userspace mode: the `kproxy` binary runs inside
//! node1's namespace with `--mode userspace` (its relay threads and listeners live there)
//! and watches the testkit's fake apiserver. A packet test: it needs root and the tools it
//! names, so a plain `cargo test` ignores it; `cargo xtask test` runs it.
//! `KPROXY_CONFORMANCE_FILTER=<part of a case name>` runs a subset.

use std::path::Path;

use kproxy_conformance::run_conformance_e2e;
use kproxy_testkit::prereq::{Tool, require};

/// A userspace relay opens its own connection to the endpoint.
const SOURCE_LOST: &str = "a userspace relay opens its own connection to the endpoint, so the endpoint sees the node's address: the client's source cannot be preserved";

/// Upstream's userspace mode does not do this; only its nftables mode has `cluster-ips-check`.
const NO_CLUSTER_IP_HYGIENE: &str = "upstream's userspace mode neither rejects unknown ports of cluster IPs nor drops unallocated \
     service-CIDR addresses: only its nftables mode does (cluster-ips-check)";

/// Cases that cannot pass in userspace mode, with the reason (as in kproxy-userspace's own
/// conformance test).
const SKIPS: &[(&str, &str)] = &[
    ("cluster-ip-hygiene", NO_CLUSTER_IP_HYGIENE),
    ("nodeport-local-policy", SOURCE_LOST),
    ("loadbalancer-local-policy", SOURCE_LOST),
    ("cluster-cidr-masquerade", SOURCE_LOST),
    ("ipv6-clusterip", SOURCE_LOST),
    ("sctp-clusterip", "the userspace relay carries TCP and UDP only"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn conformance_end_to_end_userspace() {
    require(&[Tool::Ip, Tool::Nft]);
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let binary = Path::new(env!("CARGO_BIN_EXE_kproxy"));
    let report = run_conformance_e2e(binary, "userspace", SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
