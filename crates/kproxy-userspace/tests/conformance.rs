//! The conformance suite on real packets, for the userspace dataplane. A packet test: it
//! needs root (it creates network namespaces) and the tools it names, so a plain
//! `cargo test` ignores it; `cargo xtask test` runs it. Cases this mode cannot pass are
//! reported as skipped cases, with the reason, in the suite's summary.

use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_testkit::prereq::{Tool, require};
use kproxy_userspace::{UserspaceConfig, UserspaceDataplane};

/// Cases this dataplane cannot pass, with the reason (one list, shared with its other suite).
const SKIPS: &[(&str, &str)] = kproxy_userspace::UNSUPPORTED_CASES;

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
