//! nftables at 50k: the dataplane's cold full sync against `nft -f` of the very scripts it
//! sent, into a fresh namespace; one endpoint change with 50k loaded against the same
//! change with 10k loaded (does a change cost more when the table is larger?).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kproxy_core::{Changes, Dataplane, ProxyState};
use kproxy_netfilter::{ExecNft, NetlinkConntrack, RecordingNft};
use kproxy_nftables::{NftablesConfig, NftablesDataplane};

use super::{CHANGE_BASELINE_SERVICES, Cpu, ENDPOINTS, Namespace, SERVICES, count, secs};
use crate::bench::state::synthetic;
use crate::bench::{Row, ms};
use crate::netns::run as sh;

/// Changes per table size (median reported).
const CHANGE_SAMPLES: usize = 15;

/// The row names, for `--only`.
pub(crate) fn rows() -> Vec<String> {
    vec![cold_name(), change_name()]
}

fn cold_name() -> String {
    format!("nftables cold full sync, {} svc x {ENDPOINTS} ep", count(SERVICES))
}

fn change_name() -> String {
    format!("nftables one endpoint change, {} svc present", count(SERVICES))
}

/// Both rows.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let state = synthetic(SERVICES, ENDPOINTS);
    let (cold, scripts, change) = runtime.block_on(load_and_change(state))?;
    let (bare, bare_cpu) = nft_f(&scripts)?;
    drop(scripts);
    let (_, _, baseline_change) = runtime.block_on(load_and_change(synthetic(CHANGE_BASELINE_SERVICES, ENDPOINTS)))?;
    Ok(vec![
        Row {
            name: cold_name(),
            value: format!("{} (CPU: kproxy {}, nft {})", secs(cold.wall), secs(cold.cpu.own), secs(cold.cpu.children)),
            baseline: format!("nft -f same text, fresh netns {} (CPU {})", secs(bare), secs(bare_cpu.children)),
            ratio: Some(cold.wall.as_secs_f64() / bare.as_secs_f64()),
            goal: "< 10 s, ratio <= 1.2".to_owned(),
        },
        Row {
            name: change_name(),
            value: ms(change),
            baseline: format!("same change, {} svc present {}", count(CHANGE_BASELINE_SERVICES), ms(baseline_change)),
            ratio: Some(change.as_secs_f64() / baseline_change.as_secs_f64()),
            goal: "< 50 ms".to_owned(),
        },
    ])
}

/// Loads `state` into a fresh namespace (timed; the scripts sent are kept), then times
/// [`CHANGE_SAMPLES`] one-endpoint changes (median).
async fn load_and_change(state: ProxyState) -> anyhow::Result<(Cold, Vec<String>, Duration)> {
    let ns = Namespace::create(&format!("nft{}", count(state.family(kproxy_core::IpFamily::V4).services.len())))?;
    let recorded = Arc::new(RecordingNft::new(Arc::new(ExecNft::new(Some(ns.0.clone())))));
    let config = NftablesConfig { netns: Some(ns.0.clone()), ..NftablesConfig::default() };
    let conntrack = Arc::new(NetlinkConntrack::new(Some(ns.0.clone())));
    let mut dp = NftablesDataplane::with_runners(config, recorded.clone(), conntrack);
    let (started, cpu) = (Instant::now(), Cpu::now()?);
    dp.sync(&state, &Changes::full_sync()).await?;
    let cold = Cold { wall: started.elapsed(), cpu: cpu.since()? };
    let scripts: Vec<String> = recorded.take_scripts().into_iter().map(|s| s.text).collect();
    let change = crate::bench::nftables::changes(&mut dp, state, CHANGE_SAMPLES).await?;
    Ok((cold, scripts, change))
}

/// A cold load: its wall time and the CPU it used.
struct Cold {
    wall: Duration,
    cpu: Cpu,
}

/// `nft -f` of each script in turn, into a fresh namespace: the bare tool's wall time and CPU.
fn nft_f(scripts: &[String]) -> anyhow::Result<(Duration, Cpu)> {
    let ns = Namespace::create("nft-bare")?;
    let cpu = Cpu::now()?;
    let file = std::env::temp_dir().join(format!("kproxy-bench-scale-{}.nft", std::process::id()));
    let mut took = Duration::ZERO;
    for script in scripts {
        std::fs::write(&file, script)?;
        let started = Instant::now();
        let result = sh(&["ip", "netns", "exec", &ns.0, "nft", "-f", file.to_str().unwrap_or_default()]);
        took += started.elapsed();
        if let Err(error) = result {
            let _ = std::fs::remove_file(&file);
            return Err(error);
        }
    }
    std::fs::remove_file(&file)?;
    Ok((took, cpu.since()?))
}
