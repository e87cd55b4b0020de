//! The conformance suite on real packets, for the iptables dataplane, once with
//! iptables-nft and once with iptables-legacy. Needs root (it creates network namespaces);
//! skips with a message otherwise. `KPROXY_CONFORMANCE_FILTER` selects cases by name.

use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
use kproxy_core::Dataplane;
use kproxy_iptables::{Backend, IptablesConfig, IptablesDataplane};

/// Cases this dataplane cannot run, with the reason (upstream's iptables mode has the same
/// gap).
const SKIPS: &[(&str, &str)] = &[];

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

fn is_root() -> bool {
    std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn has_iptables() -> bool {
    std::process::Command::new("sh")
        .args(["-c", "command -v iptables-nft-restore && command -v iptables-legacy-restore"])
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn conformance(backend: Backend, label: &str) {
    if !is_root() || !has_iptables() {
        eprintln!("skipping iptables ({label}) conformance: needs root and the iptables package");
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().await;
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    println!("== iptables dataplane, {label}");
    let report = run_conformance(build(backend), SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iptables_nft_conformance() {
    conformance(Backend::Nft, "iptables-nft").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iptables_legacy_conformance() {
    conformance(Backend::Legacy, "iptables-legacy").await;
}
