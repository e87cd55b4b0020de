//! nftables: cold full sync against `nft -f` of the same text, and one endpoint change.

use std::time::{Duration, Instant};

use kproxy_core::{Changes, Dataplane, ProxyState};
use kproxy_nftables::{NftablesConfig, NftablesDataplane};

use super::state::{change_one_endpoint, synthetic};
use super::{Row, median, ms};
use crate::netns::run as sh;

/// Endpoints per service port.
pub(super) const ENDPOINTS: usize = 10;
pub(super) const CHANGE_SAMPLES: usize = 15;

/// Cold sync at 1k and 10k service ports, and one change at 10k.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ns = Namespace::create(&format!("kpbench{}", std::process::id() % 100_000))?;
    let mut rows = Vec::new();
    for services in [1_000, 10_000] {
        let state = synthetic(services, ENDPOINTS);
        let (cold, raw) = runtime.block_on(cold_sync(&ns.0, &state))?;
        rows.push(Row {
            name: format!("nftables cold full sync, {services} svc x {ENDPOINTS} ep"),
            value: ms(cold),
            baseline: format!("nft -f same text {}", ms(raw)),
            ratio: Some(cold.as_secs_f64() / raw.as_secs_f64()),
            goal: if services == 10_000 { "< 2 s".to_owned() } else { "-".to_owned() },
        });
        if services == 10_000 {
            let change = runtime.block_on(one_change(&ns.0, state))?;
            rows.push(Row {
                name: "nftables one endpoint change, 10k svc present".to_owned(),
                value: ms(change),
                baseline: "-".to_owned(),
                ratio: None,
                goal: "< 50 ms".to_owned(),
            });
        }
    }
    Ok(rows)
}

pub(super) fn dataplane(ns: &str) -> NftablesDataplane {
    NftablesDataplane::new(NftablesConfig { netns: Some(ns.to_owned()), ..NftablesConfig::default() })
}

async fn cold_sync(ns: &str, state: &ProxyState) -> anyhow::Result<(Duration, Duration)> {
    let mut dp = dataplane(ns);
    dp.cleanup().await?;
    let started = Instant::now();
    dp.sync(state, &Changes::full_sync()).await?;
    let cold = started.elapsed();
    let text = dp.render(state);
    dp.cleanup().await?;
    let file = std::env::temp_dir().join(format!("kproxy-bench-{}.nft", std::process::id()));
    std::fs::write(&file, text)?;
    let started = Instant::now();
    sh(&["ip", "netns", "exec", ns, "nft", "-f", file.to_str().unwrap_or_default()])?;
    let raw = started.elapsed();
    std::fs::remove_file(&file)?;
    dp.cleanup().await?;
    Ok((cold, raw))
}

async fn one_change(ns: &str, state: ProxyState) -> anyhow::Result<Duration> {
    let mut dp = dataplane(ns);
    dp.sync(&state, &Changes::full_sync()).await?;
    let took = changes(&mut dp, state, CHANGE_SAMPLES).await?;
    dp.cleanup().await?;
    Ok(took)
}

/// The median of `samples` one-endpoint changes (each to another service port) synced by
/// `dp`, which has `state` loaded.
pub(super) async fn changes(dp: &mut dyn Dataplane, mut state: ProxyState, samples: usize) -> anyhow::Result<Duration> {
    let mut took = Vec::new();
    for round in 0..samples {
        let changes = change_one_endpoint(&mut state, round, ENDPOINTS);
        let started = Instant::now();
        dp.sync(&state, &changes).await?;
        took.push(started.elapsed());
    }
    Ok(median(took))
}

/// A namespace for the benchmark, removed on drop.
pub(super) struct Namespace(pub(super) String);

impl Namespace {
    /// Creates namespace `name`.
    pub(super) fn create(name: &str) -> anyhow::Result<Self> {
        sh(&["ip", "netns", "add", name])?;
        Ok(Self(name.to_owned()))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.0]);
    }
}
