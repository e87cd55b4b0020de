//! The conformance suite end to end: the `kproxy` binary (nftables mode) runs inside node1's
//! namespace and watches the testkit's fake apiserver, which gets every object the cases
//! apply or delete. A packet test: it needs root (it creates network namespaces) and the
//! tools it names, so a plain `cargo test` ignores it; `cargo xtask test` runs it.
//! `KPROXY_CONFORMANCE_FILTER=<part of a case name>` runs a subset.

use std::path::Path;

use kproxy_conformance::run_conformance_e2e;
use kproxy_testkit::prereq::{Tool, require};

/// Cases that cannot run end to end, with the reason.
const SKIPS: &[(&str, &str)] = &[];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn conformance_end_to_end() {
    require(&[Tool::Ip, Tool::Nft]);
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let binary = Path::new(env!("CARGO_BIN_EXE_kproxy"));
    let report = run_conformance_e2e(binary, "nftables", SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
