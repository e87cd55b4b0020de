//! iptables-legacy at 50k: the dataplane's cold full sync against a bare
//! `iptables-legacy-restore` of the text it wrote (into a fresh namespace), and one
//! endpoint change against bare restores of the same partial texts (replayed into the
//! loaded namespace).

use kproxy_core::Changes;
use kproxy_netfilter::IptablesBackend;

use super::{Cpu, ENDPOINTS, Namespace, SERVICES, count, secs};
use crate::bench::iptables::{bare_restore, changes, dataplane, sync};
use crate::bench::state::synthetic;
use crate::bench::{Row, ms};

/// Changes measured with 50k loaded (each costs a restore of the whole table in the
/// kernel, kproxy's and the bare one's alike).
const CHANGE_SAMPLES: usize = 3;
const BACKEND: IptablesBackend = IptablesBackend::Legacy;

/// The row names, for `--only`.
pub(crate) fn rows() -> Vec<String> {
    vec![cold_name(), change_name()]
}

fn cold_name() -> String {
    format!("iptables-legacy cold full sync, {} svc x {ENDPOINTS} ep", count(SERVICES))
}

fn change_name() -> String {
    format!("iptables-legacy one endpoint change, {} svc present", count(SERVICES))
}

/// Both rows.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    crate::packages::ensure(&[kproxy_testkit::prereq::Tool::IptablesLegacy])?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let state = synthetic(SERVICES, ENDPOINTS);
    let ns = Namespace::create("ipt")?;
    let (mut dp, recorded) = dataplane(&ns.0, BACKEND);
    let cpu = Cpu::now()?;
    let cold = runtime.block_on(sync(&mut dp, &state, &Changes::full_sync()))?;
    let cold_cpu = cpu.since()?;
    let (bare_cold, bare_cpu) = {
        let fresh = Namespace::create("ipt-bare")?;
        let cpu = Cpu::now()?;
        (bare_restore(&fresh.0, BACKEND, &recorded.last())?, cpu.since()?)
    };
    let (change, bare_change) =
        runtime.block_on(changes(&ns.0, (&mut dp, &*recorded), state, BACKEND, CHANGE_SAMPLES))?;
    let tool = format!("iptables-{BACKEND}-restore");
    Ok(vec![
        Row {
            name: cold_name(),
            value: format!("{} (CPU: kproxy {}, restore {})", secs(cold), secs(cold_cpu.own), secs(cold_cpu.children)),
            baseline: format!("{tool} same text, fresh netns {} (CPU {})", secs(bare_cold), secs(bare_cpu.children)),
            ratio: Some(cold.as_secs_f64() / bare_cold.as_secs_f64()),
            goal: "ratio <= 1.2".to_owned(),
        },
        Row {
            name: change_name(),
            value: ms(change),
            baseline: format!("{tool} same texts {}", ms(bare_change)),
            ratio: Some(change.as_secs_f64() / bare_change.as_secs_f64()),
            goal: "ratio <= 1.2".to_owned(),
        },
    ])
}
