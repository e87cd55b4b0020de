//! The conformance suite end to end: the `kproxy` binary (nftables mode) runs inside node1's
//! namespace and watches the testkit's fake apiserver, which gets every object the cases
//! apply or delete. Needs root (it creates network namespaces); skips with a message
//! otherwise. `KPROXY_CONFORMANCE_FILTER=<part of a case name>` runs a subset.

use std::path::Path;

use kproxy_conformance::run_conformance_e2e;

/// Cases that cannot run end to end, with the reason.
const SKIPS: &[(&str, &str)] = &[];

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_end_to_end() {
    if !is_root() {
        eprintln!("skipping the end-to-end conformance suite: needs root to create network namespaces");
        return;
    }
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let binary = Path::new(env!("CARGO_BIN_EXE_kproxy"));
    let report = run_conformance_e2e(binary, "nftables", SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
