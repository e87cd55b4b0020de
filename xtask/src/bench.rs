//! `cargo xtask bench`: dataplane benchmarks, each reported as a ratio to a baseline
//! measured in the same run, inside network namespaces created for the run.

mod iptables;
mod latency;
mod nftables;
mod rss;
mod state;
mod userspace;

use std::time::Duration;

use kproxy_testkit::prereq::Tool;

/// Runs every benchmark (or those whose phase name contains `only`) and prints the table.
pub(crate) fn run(only: Option<&str>) -> anyhow::Result<()> {
    if !kproxy_testkit::prereq::is_root() {
        anyhow::bail!("benchmarks create network namespaces: run them as root");
    }
    crate::packages::ensure(&[Tool::Nft, Tool::Ip])?;
    crate::cargo(&["build", "--quiet", "--release", "-p", "kproxy", "-p", "xtask"])?;
    if cfg!(debug_assertions) {
        // Measure optimised code: hand over to the release build of this program.
        let mut release = std::process::Command::new(crate::target_dir().join("release/xtask"));
        release.arg("bench");
        if let Some(only) = only {
            release.args(["--only", only]);
        }
        let status = release.status()?;
        anyhow::ensure!(status.success(), "release benchmark run failed: {status}");
        return Ok(());
    }
    let mut rows = Vec::new();
    type Phase = fn() -> anyhow::Result<Vec<Row>>;
    let phases: [(&str, Phase); 5] = [
        ("nftables sync", nftables::run),
        ("iptables sync and latency", iptables::run),
        ("daemon memory", || rss::run().map(|r| vec![r])),
        ("connect latency", latency::run),
        ("userspace relay", userspace::run),
    ];
    let chosen: Vec<_> = phases.into_iter().filter(|(name, _)| only.is_none_or(|o| name.contains(o))).collect();
    anyhow::ensure!(!chosen.is_empty(), "no benchmark phase matches {only:?}");
    for (name, phase) in chosen {
        match phase() {
            Ok(measured) => {
                measured.iter().for_each(|r| println!("measured: {} = {} (baseline {})", r.name, r.value, r.baseline));
                rows.extend(measured);
            }
            Err(error) => {
                println!("{name} failed: {error:#}");
                rows.push(Row {
                    name: name.to_owned(),
                    value: format!("failed: {error}"),
                    baseline: "-".to_owned(),
                    ratio: None,
                    goal: "-".to_owned(),
                });
            }
        }
    }
    print_table(&rows);
    Ok(())
}

/// One line of the results table.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) baseline: String,
    pub(crate) ratio: Option<f64>,
    pub(crate) goal: String,
}

fn print_table(rows: &[Row]) {
    println!("\n| benchmark | kproxy | baseline | ratio | goal |");
    println!("|---|---|---|---|---|");
    for row in rows {
        let ratio = row.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".to_owned());
        println!("| {} | {} | {} | {ratio} | {} |", row.name, row.value, row.baseline, row.goal);
    }
}

/// Milliseconds with one decimal.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The median of `samples`.
pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
