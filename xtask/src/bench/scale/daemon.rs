//! The daemon at 50k, fed from the testkit's fake apiserver (nftables mode, its defaults:
//! min-sync-period 1 s): peak and steady RSS against the same daemon on an empty cluster,
//! and network programming latency against the same measurement with 10 services.

use std::time::Duration;

use super::programming::{self, CHANGES};
use super::{ENDPOINTS, SERVICES, count};
use crate::bench::Row;
use crate::bench::memory::SETTLE;
use crate::bench::memory::daemon::{Daemon, Measured, Source};
use crate::netns::Cluster;

/// The cluster size of the latency's baseline.
const BASELINE_SERVICES: usize = 10;

/// The row names, for `--only`.
pub(crate) fn rows() -> Vec<String> {
    vec![rss_name(), latency_name()]
}

fn rss_name() -> String {
    format!("daemon peak RSS, {} svc x {ENDPOINTS} ep (apiserver)", count(SERVICES))
}

fn latency_name() -> String {
    format!("network programming latency, {} svc x {ENDPOINTS} ep, {CHANGES} changes (p50 / p99)", count(SERVICES))
}

/// Both rows.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let (idle, _) = run_daemon(0)?;
    let (_, baseline_latency) = run_daemon(BASELINE_SERVICES)?;
    let (loaded, latency) = run_daemon(SERVICES)?;
    let (p50, p99) = (percentile(&latency, 50), percentile(&latency, 99));
    let (base50, base99) = (percentile(&baseline_latency, 50), percentile(&baseline_latency, 99));
    Ok(vec![
        Row {
            name: rss_name(),
            value: format!(
                "{} (steady {}; first sync after {:.1} s)",
                mib(loaded.peak_kib),
                mib(loaded.steady_kib),
                loaded.synced_after.as_secs_f64()
            ),
            baseline: format!("empty cluster {} (steady {})", mib(idle.peak_kib), mib(idle.steady_kib)),
            ratio: Some(loaded.peak_kib as f64 / idle.peak_kib.max(1) as f64),
            goal: "< 400 MiB".to_owned(),
        },
        Row {
            name: latency_name(),
            value: format!("{:.0} / {:.0} ms", millis(p50), millis(p99)),
            baseline: format!("{BASELINE_SERVICES} svc {:.0} / {:.0} ms", millis(base50), millis(base99)),
            ratio: Some(p99.as_secs_f64() / base99.as_secs_f64().max(1e-3)),
            goal: "p99 < 1200 ms".to_owned(),
        },
    ])
}

/// Runs the daemon on `services` Services (in a cluster of two pods), measures its memory
/// [`SETTLE`] after its first sync, then (with any Service) its network programming latency.
fn run_daemon(services: usize) -> anyhow::Result<(Measured, Vec<Duration>)> {
    let name = format!("d{}", count(services));
    let dir = std::env::temp_dir().join(format!("kproxy-bench-scale-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| {
        let mut cluster = Cluster::create(&format!("{}-{name}", super::prefix()), programming::PODS)?;
        programming::serve_pods(&mut cluster)?;
        let daemon = Daemon::start(cluster, &dir, Source::ApiServer, services, ENDPOINTS, None, &[])?;
        std::thread::sleep(SETTLE);
        let measured = daemon.measured()?;
        let latency = match services {
            0 => Vec::new(),
            _ => programming::measure(&daemon, services - 1)?,
        };
        if !latency.is_empty() {
            let mut sorted: Vec<u128> = latency.iter().map(Duration::as_millis).collect();
            sorted.sort_unstable();
            println!("network programming latencies, {} services, ms: {sorted:?}", count(services));
        }
        Ok((measured, latency))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The `p`th percentile of `samples` by nearest rank (p99 of fewer than 100 samples is
/// the highest).
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * p).div_ceil(100);
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<Duration> = (1..=30).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 50), Duration::from_millis(15));
        assert_eq!(percentile(&samples, 99), Duration::from_millis(30));
        assert_eq!(percentile(&[], 99), Duration::ZERO);
    }
}
