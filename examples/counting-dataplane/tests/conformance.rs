//! The conformance suite on real packets, through the counting dataplane wrapped around
//! nftables. A packet test: it needs root (it creates network namespaces) and the tools it
//! names, so it is ignored by a plain `cargo test`; `cargo xtask test` runs it.

use counting_dataplane::CountingDataplane;
use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_nftables::{NftablesConfig, NftablesDataplane};
use kproxy_testkit::prereq::{Tool, require};

fn build(env: &NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> {
    let inner = NftablesDataplane::new(NftablesConfig {
        cluster_cidrs: env.cluster_cidrs.clone(),
        masquerade_all: env.masquerade_all,
        netns: Some(env.netns.clone()),
        ..NftablesConfig::default()
    });
    Ok(Box::new(CountingDataplane { inner, syncs: (0, 0), endpoints: 0 }))
}

/// Cases this example does not pass, with the reason.
const SKIPS: &[(&str, &str)] = &[(
    "localhost-nodeport",
    "the example wraps the plain nftables dataplane; node ports on loopback come from the daemon's \
     --nftables-localhost-nodeports wrapper, which it does not add",
)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn counting_dataplane_conformance() {
    require(&[Tool::Ip, Tool::Nft]);
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    run_conformance(build, SKIPS, filter.as_deref()).await.assert_all_passed();
}
