//! Daemon memory with 10k service ports × 10 endpoints, from a manifest directory and from
//! the testkit's fake apiserver: peak and steady RSS of the release daemon, each against the
//! same daemon on an empty cluster (its baseline, measured in the same run).

mod apiserver;
pub(crate) mod daemon;
pub(crate) mod heap;
pub(super) mod objects;

use std::time::Duration;

use super::Row;
pub(crate) use daemon::Source;
use daemon::{Measured, Setup};

/// Service ports of the loaded cluster.
const SERVICES: usize = 10_000;
/// Endpoints per service port.
const ENDPOINTS: usize = 10;

/// The names of the rows of `source`: peak, then steady.
fn row_names(source: Source) -> [String; 2] {
    let what = format!("{SERVICES} svc x {ENDPOINTS} ep ({})", source.name());
    [format!("daemon peak RSS, {what}"), format!("daemon steady RSS, {what}")]
}

/// Every row name of the memory phase of `source`, for `--only`.
pub(crate) fn rows_of(source: Source) -> Vec<String> {
    row_names(source).into()
}

/// The daemon fed from a manifest directory.
pub(crate) fn manifests() -> anyhow::Result<Vec<Row>> {
    run(Source::Manifests)
}

/// The daemon fed from the fake apiserver.
pub(crate) fn apiserver() -> anyhow::Result<Vec<Row>> {
    run(Source::ApiServer)
}

/// Measures the daemon on an empty cluster, then on the loaded one.
fn run(source: Source) -> anyhow::Result<Vec<Row>> {
    let idle = daemon::measure(source, 0, ENDPOINTS, None, &Setup::PLAIN)?;
    let loaded = daemon::measure(source, SERVICES, ENDPOINTS, None, &Setup::PLAIN)?;
    let [peak_name, steady_name] = row_names(source);
    let per_service = |loaded: u64, idle: u64| loaded.saturating_sub(idle) as f64 * 1024.0 / SERVICES as f64;
    Ok(vec![
        Row {
            name: peak_name,
            value: format!(
                "{} ({:.0} B/svc; first sync after {:.1} s)",
                mib(loaded.peak_kib),
                per_service(loaded.peak_kib, idle.peak_kib),
                loaded.synced_after.as_secs_f64()
            ),
            baseline: format!("empty cluster {}", mib(idle.peak_kib)),
            ratio: Some(ratio(&loaded, &idle, |m| m.peak_kib)),
            goal: "< 100 MiB".to_owned(),
        },
        Row {
            name: steady_name,
            value: format!("{} ({:.0} B/svc)", mib(loaded.steady_kib), per_service(loaded.steady_kib, idle.steady_kib)),
            baseline: format!("empty cluster {}", mib(idle.steady_kib)),
            ratio: Some(ratio(&loaded, &idle, |m| m.steady_kib)),
            goal: "-".to_owned(),
        },
    ])
}

/// How long after its first sync the daemon's memory counts as steady.
pub(crate) const SETTLE: Duration = Duration::from_secs(5);

fn ratio(loaded: &Measured, idle: &Measured, kib: impl Fn(&Measured) -> u64) -> f64 {
    kib(loaded) as f64 / kib(idle).max(1) as f64
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
