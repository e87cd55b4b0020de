//! The conformance suite end to end in iptables mode: the `kproxy` binary runs inside
//! node1's namespace with `--mode iptables` (backend chosen as kube-proxy's wrapper does)
//! and watches the testkit's fake apiserver. A packet test: it needs root and the tools it
//! names, so a plain `cargo test` ignores it; `cargo xtask test` runs it.
//! `KPROXY_CONFORMANCE_FILTER=<part of a case name>` runs a subset.

use std::path::Path;

use kproxy_conformance::run_conformance_e2e;
use kproxy_testkit::prereq::{Tool, require};

/// Cases this dataplane cannot pass, with the reason (one list, shared with its other suite).
const SKIPS: &[(&str, &str)] = kproxy_iptables::UNSUPPORTED_CASES;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn conformance_end_to_end_iptables() {
    require(&[Tool::Ip, Tool::IptablesLegacy, Tool::IptablesNft, Tool::Sysctl]);
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let binary = Path::new(env!("CARGO_BIN_EXE_kproxy"));
    let report = run_conformance_e2e(binary, "iptables", SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
