//! iptables: cold full sync against a bare `iptables-restore` of the same text (1k with
//! iptables-nft and iptables-legacy, 10k with iptables-legacy), one endpoint change with
//! 10k present (legacy), and connect latency with 10k services against 10 (legacy).
//!
//! iptables-nft is not loaded with 10k services: it needs more than 30 minutes here
//! (`this-machine-anchors.md`), so that row reports the anchor instead. Every run is bounded.

mod latency;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use kproxy_core::{Changes, Dataplane, IpFamily, ProxyState};
use kproxy_iptables::{IptablesConfig, IptablesDataplane};
use kproxy_netfilter::{CommandError, ExecIptables, FakeConntrack, IptablesBackend, IptablesRunner};

use super::state::{change_one_endpoint, synthetic};
use super::{Row, median, ms};
use crate::netns::run as sh;

const ENDPOINTS: usize = 10;
const CHANGE_SAMPLES: usize = 7;
/// The longest any one load may take (a cold load of 50k services takes about 200 s of CPU
/// here, more on a busy machine).
const BOUND: Duration = Duration::from_secs(900);

/// Every iptables row.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    crate::packages::ensure(&[kproxy_testkit::prereq::Tool::IptablesLegacy])?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut rows = Vec::new();
    for (services, backend) in
        [(1_000, IptablesBackend::Nft), (1_000, IptablesBackend::Legacy), (10_000, IptablesBackend::Legacy)]
    {
        let state = synthetic(services, ENDPOINTS);
        let (cold, bare) = runtime.block_on(cold_sync(&state, backend))?;
        rows.push(Row {
            name: format!("iptables-{backend} cold full sync, {services} svc x {ENDPOINTS} ep"),
            value: ms(cold),
            baseline: format!("iptables-{backend}-restore same text {}", ms(bare)),
            ratio: Some(cold.as_secs_f64() / bare.as_secs_f64()),
            goal: "-".to_owned(),
        });
        if services == 10_000 {
            let (change, bare) = runtime.block_on(one_change(state, backend))?;
            rows.push(Row {
                name: format!("iptables-{backend} one endpoint change, 10k svc present"),
                value: ms(change),
                baseline: format!("iptables-{backend}-restore same text {}", ms(bare)),
                ratio: Some(change.as_secs_f64() / bare.as_secs_f64()),
                goal: "anchor 1520 ms (upstream text)".to_owned(),
            });
        }
    }
    rows.push(Row {
        name: format!("iptables-nft cold full sync, 10000 svc x {ENDPOINTS} ep"),
        value: "not run".to_owned(),
        baseline: "anchor: > 30 min (iptables-nft-restore, upstream text)".to_owned(),
        ratio: None,
        goal: "-".to_owned(),
    });
    rows.push(latency::run(&runtime)?);
    Ok(rows)
}

/// A runner that records every restore text it passes on.
pub(super) struct Recording {
    inner: ExecIptables,
    restores: Mutex<Vec<String>>,
}

impl Recording {
    pub(super) fn last(&self) -> String {
        self.restores.lock().unwrap_or_else(PoisonError::into_inner).last().cloned().unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl IptablesRunner for Recording {
    async fn restore(&self, text: &str) -> Result<(), CommandError> {
        self.restores.lock().unwrap_or_else(PoisonError::into_inner).push(text.to_owned());
        self.inner.restore(text).await
    }
    async fn save(&self, table: &str) -> Result<String, CommandError> {
        self.inner.save(table).await
    }
    async fn chain_exists(&self, table: &str, chain: &str) -> Result<bool, CommandError> {
        self.inner.chain_exists(table, chain).await
    }
    async fn enable_route_localnet(&self) -> Result<(), CommandError> {
        self.inner.enable_route_localnet().await
    }
}

/// An IPv4-only dataplane in `ns` whose restores are recorded.
pub(super) fn dataplane(ns: &str, backend: IptablesBackend) -> (IptablesDataplane, Arc<Recording>) {
    let exec = |prefix| ExecIptables::new(prefix, backend, Some(ns.to_owned()));
    let v4 = Arc::new(Recording { inner: exec("iptables"), restores: Mutex::new(Vec::new()) });
    let config =
        IptablesConfig { families: vec![IpFamily::V4], netns: Some(ns.to_owned()), ..IptablesConfig::default() };
    let dp = IptablesDataplane::with_runners(
        config,
        v4.clone(),
        Arc::new(exec("ip6tables")),
        Arc::new(FakeConntrack::default()),
    );
    (dp, v4)
}

/// A sync, bounded.
pub(super) async fn sync(
    dp: &mut IptablesDataplane,
    state: &ProxyState,
    changes: &Changes,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    tokio::time::timeout(BOUND, dp.sync(state, changes)).await.context("sync took too long")??;
    Ok(started.elapsed())
}

/// `iptables-<backend>-restore --noflush` of `text` in `ns`, bounded.
pub(super) fn bare_restore(ns: &str, backend: IptablesBackend, text: &str) -> anyhow::Result<Duration> {
    let file = std::env::temp_dir().join(format!("kproxy-bench-{}.iptables", std::process::id()));
    std::fs::write(&file, text)?;
    let tool = format!("iptables-{backend}-restore");
    let (bound, path) = (BOUND.as_secs().to_string(), file.to_str().unwrap_or_default().to_owned());
    let started = Instant::now();
    let result = sh(&["timeout", &bound, "ip", "netns", "exec", ns, &tool, "--noflush", "-w", "30", &path]);
    let took = started.elapsed();
    std::fs::remove_file(&file)?;
    result.map(|_| took)
}

/// The dataplane's first sync into an empty namespace, and a bare restore of the text it
/// wrote into another.
async fn cold_sync(state: &ProxyState, backend: IptablesBackend) -> anyhow::Result<(Duration, Duration)> {
    let ns = Namespace::create("cold")?;
    let (mut dp, recorded) = dataplane(&ns.0, backend);
    let cold = sync(&mut dp, state, &Changes::full_sync()).await?;
    let text = recorded.last();
    drop(ns);
    let ns = Namespace::create("bare")?;
    let bare = bare_restore(&ns.0, backend, &text)?;
    Ok((cold, bare))
}

/// Median of one-endpoint changes with `state` loaded, and of bare restores of the same
/// partial texts.
async fn one_change(state: ProxyState, backend: IptablesBackend) -> anyhow::Result<(Duration, Duration)> {
    let ns = Namespace::create("change")?;
    let (mut dp, recorded) = dataplane(&ns.0, backend);
    sync(&mut dp, &state, &Changes::full_sync()).await?;
    changes(&ns.0, (&mut dp, &*recorded), state, backend, CHANGE_SAMPLES).await
}

/// Median of `samples` one-endpoint changes synced by `dp` (in `ns`, with `state` loaded,
/// its restores recorded), and of bare restores of the same partial texts, replayed after
/// them (declaring a chain recreates what `-X` then deletes).
pub(super) async fn changes(
    ns: &str,
    (dp, recorded): (&mut IptablesDataplane, &Recording),
    mut state: ProxyState,
    backend: IptablesBackend,
    samples: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let (mut took, mut texts) = (Vec::new(), Vec::new());
    for round in 0..samples {
        let changes = change_one_endpoint(&mut state, round, ENDPOINTS);
        took.push(sync(dp, &state, &changes).await?);
        texts.push(recorded.last());
    }
    let bare: anyhow::Result<Vec<Duration>> = texts.iter().map(|t| bare_restore(ns, backend, t)).collect();
    Ok((median(took), median(bare?)))
}

/// A namespace for the benchmark, removed on drop.
pub(super) struct Namespace(pub(super) String);

impl Namespace {
    pub(super) fn create(what: &str) -> anyhow::Result<Self> {
        let name = format!("kpbipt{}-{what}", std::process::id() % 100_000);
        sh(&["ip", "netns", "add", &name])?;
        Ok(Self(name))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.0]);
    }
}
