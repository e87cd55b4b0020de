//! The conformance suite on real packets, for the nftables dataplane. A packet test: it
//! needs root (it creates network namespaces) and the tools it names, so it is ignored by a
//! plain `cargo test`; `cargo xtask test` runs it. `KPROXY_CONFORMANCE_FILTER` selects cases.

use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_nftables::{NftablesConfig, NftablesDataplane};
use kproxy_testkit::prereq::{Tool, require};
use kproxy_userspace::{LocalhostNodePorts, WithLocalhostNodePorts};

/// Cases this dataplane cannot run, with the reason.
const SKIPS: &[(&str, &str)] = &[];

fn build(env: &NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> {
    let dataplane = NftablesDataplane::new(NftablesConfig {
        cluster_cidrs: env.cluster_cidrs.clone(),
        masquerade_all: env.masquerade_all,
        netns: Some(env.netns.clone()),
        ..NftablesConfig::default()
    });
    if !env.localhost_nodeports {
        return Ok(Box::new(dataplane));
    }
    // Called on a thread inside node1: the relay's listeners bind node1's loopback.
    let localhost = LocalhostNodePorts::new(LocalhostNodePorts::default_relay())?;
    Ok(Box::new(WithLocalhostNodePorts::new(dataplane, localhost)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn nftables_conformance() {
    require(&[Tool::Ip, Tool::Nft]);
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let report = run_conformance(build, SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
