#![allow(clippy::unwrap_used, reason = "scratch")]
use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_nftables::{NftablesConfig, NftablesDataplane};

fn build(env: &NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> {
    let config = NftablesConfig {
        cluster_cidrs: env.cluster_cidrs.clone(),
        masquerade_all: env.masquerade_all,
        netns: Some(env.netns.clone()),
        ..NftablesConfig::default()
    };
    Ok(Box::new(NftablesDataplane::new(config)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_nftables() {
    let filter = std::env::var("KPC_FILTER").ok();
    let report = run_conformance(build, &[], filter.as_deref()).await;
    report.assert_all_passed();
}
