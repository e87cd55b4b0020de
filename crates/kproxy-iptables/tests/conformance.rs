//! The conformance suite on real packets, for the iptables dataplane, once with
//! iptables-nft and once with iptables-legacy. Packet tests: they need root (they create
//! network namespaces) and the tools they name, so a plain `cargo test` ignores them;
//! `cargo xtask test` runs them. `KPROXY_CONFORMANCE_FILTER` selects cases by name.

use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_iptables::{Backend, IptablesConfig, IptablesDataplane};
use kproxy_testkit::prereq::{Tool, require};

/// Cases this dataplane cannot pass, with the reason (one list, shared with its other suite).
const SKIPS: &[(&str, &str)] = kproxy_iptables::UNSUPPORTED_CASES;

/// The two runs share the legacy xtables lock and the machine's two cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn build(backend: Backend) -> impl Fn(&NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> + Send + Sync + 'static {
    move |env: &NodeEnv| {
        Ok(Box::new(IptablesDataplane::new(IptablesConfig {
            backend,
            cluster_cidrs: env.cluster_cidrs.clone(),
            masquerade_all: env.masquerade_all,
            netns: Some(env.netns.clone()),
            ..IptablesConfig::default()
        })) as Box<dyn Dataplane>)
    }
}

/// What the suite runs: namespaces, both iptables flavours (detection reads both),
/// `sysctl` for `route_localnet`; stale UDP flows go over netlink.
const TOOLS: &[Tool] = &[Tool::Ip, Tool::IptablesLegacy, Tool::IptablesNft, Tool::Sysctl];

async fn conformance(backend: Backend, label: &str) {
    require(TOOLS);
    let _turn = ONE_AT_A_TIME.lock().await;
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    println!("== iptables dataplane, {label}");
    let report = run_conformance(build(backend), SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn iptables_nft_conformance() {
    conformance(Backend::Nft, "iptables-nft").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip, iptables and sysctl; run by cargo xtask test"]
async fn iptables_legacy_conformance() {
    conformance(Backend::Legacy, "iptables-legacy").await;
}
