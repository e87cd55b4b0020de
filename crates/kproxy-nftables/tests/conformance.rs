//! The conformance suite on real packets, for the nftables dataplane. Needs root (it
//! creates network namespaces); skips with a message otherwise.

use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_nftables::{NftablesConfig, NftablesDataplane};

/// Cases this dataplane cannot run, with the reason.
const SKIPS: &[(&str, &str)] = &[];

fn build(env: &NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> {
    Ok(Box::new(NftablesDataplane::new(NftablesConfig {
        cluster_cidrs: env.cluster_cidrs.clone(),
        masquerade_all: env.masquerade_all,
        netns: Some(env.netns.clone()),
        ..NftablesConfig::default()
    })))
}

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nftables_conformance() {
    if !is_root() {
        eprintln!("skipping nftables conformance: needs root to create network namespaces");
        return;
    }
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let report = run_conformance(build, SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
