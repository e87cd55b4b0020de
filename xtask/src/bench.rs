//! `cargo xtask bench`: dataplane benchmarks, each reported as a ratio to a baseline
//! measured in the same run, inside network namespaces created for the run.

#[cfg(feature = "ebpf")]
mod ebpf;
mod iptables;
mod latency;
mod memory;
mod nftables;
mod scale;
mod state;
mod userspace;

use std::time::Duration;

use kproxy_testkit::prereq::Tool;

/// Runs every benchmark (or the phases whose name, or one of whose rows' names, contains
/// `only`: then only the rows asked for) and prints the table.
pub(crate) fn run(only: Option<&str>) -> anyhow::Result<()> {
    if !kproxy_testkit::prereq::is_root() {
        anyhow::bail!("benchmarks create network namespaces: run them as root");
    }
    // The kproxy binary (and this program's eBPF rows) build BPF programs with clang-19.
    crate::packages::ensure(&[Tool::Nft, Tool::Ip, Tool::Clang, Tool::Llvm, Tool::Libbpf])?;
    crate::cargo(&["build", "--quiet", "--release", "-p", "kproxy", "-p", "xtask", "--features", "xtask/ebpf"])?;
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
    let (mut rows, mut took, started) = (Vec::new(), Vec::new(), std::time::Instant::now());
    let chosen: Vec<Phase> = phases()
        .into_iter()
        .filter(|p| match only {
            Some(only) => p.matches(only),
            None => !p.on_request,
        })
        .collect();
    anyhow::ensure!(!chosen.is_empty(), "no benchmark phase or row matches {only:?}");
    for phase in chosen {
        let phase_started = std::time::Instant::now();
        let result = (phase.run)();
        took.push((phase.name, phase_started.elapsed()));
        match result {
            Ok(measured) => {
                // A phase chosen by one of its rows reports only the rows asked for.
                let by_row = only.filter(|o| !phase.name.contains(o));
                let measured = measured.into_iter().filter(|r| by_row.is_none_or(|o| r.name.contains(o)));
                for row in measured {
                    println!("measured: {} = {} (baseline {})", row.name, row.value, row.baseline);
                    rows.push(row);
                }
            }
            Err(error) => {
                println!("{} failed: {error:#}", phase.name);
                rows.push(Row {
                    name: phase.name.to_owned(),
                    value: format!("failed: {error}"),
                    baseline: "-".to_owned(),
                    ratio: None,
                    goal: "-".to_owned(),
                });
            }
        }
    }
    print_table(&rows);
    print_durations(&took, started.elapsed());
    Ok(())
}

/// How long each phase and the whole run took (the full table has a budget: 20 minutes).
fn print_durations(took: &[(&str, Duration)], total: Duration) {
    let phases: Vec<String> = took.iter().map(|(name, d)| format!("{name} {:.0} s", d.as_secs_f64())).collect();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    println!("\nphases: {}", phases.join(", "));
    println!("run took {:.1} min (load average now {load})", total.as_secs_f64() / 60.0);
}

/// A group of rows measured together; `--only` picks it by its name or a row's.
struct Phase {
    name: &'static str,
    /// The names of its rows, when known before running it.
    rows: Vec<String>,
    /// Runs only when `--only` names it.
    on_request: bool,
    run: fn() -> anyhow::Result<Vec<Row>>,
}

impl Phase {
    fn new(name: &'static str, run: fn() -> anyhow::Result<Vec<Row>>) -> Self {
        Self { name, rows: Vec::new(), on_request: false, run }
    }

    fn matches(&self, only: &str) -> bool {
        self.name.contains(only) || self.rows.iter().any(|r| r.contains(only))
    }
}

/// Every phase, in the order they run.
fn phases() -> Vec<Phase> {
    use memory::Source;
    vec![
        Phase::new("nftables sync", nftables::run),
        Phase::new("iptables sync and latency", iptables::run),
        Phase {
            rows: memory::rows_of(Source::Manifests),
            ..Phase::new("daemon memory (manifests)", memory::manifests)
        },
        Phase {
            rows: memory::rows_of(Source::ApiServer),
            ..Phase::new("daemon memory (apiserver)", memory::apiserver)
        },
        Phase { rows: scale::nftables::rows(), ..Phase::new("scale 50k (nftables)", scale::nftables::run) },
        Phase { rows: scale::iptables::rows(), ..Phase::new("scale 50k (iptables-legacy)", scale::iptables::run) },
        Phase { rows: scale::daemon::rows(), ..Phase::new("scale 50k (daemon)", scale::daemon::run) },
        #[cfg(feature = "ebpf")]
        Phase { rows: scale::ebpf::rows(), ..Phase::new("scale 50k (ebpf)", scale::ebpf::run) },
        Phase::new("connect latency", latency::run),
        Phase::new("userspace relay", userspace::run),
        #[cfg(feature = "ebpf")]
        Phase { rows: ebpf::row_names(), ..Phase::new("ebpf", ebpf::run) },
        // Not part of a full run: only `--only heap` (a slow, instrumented build).
        Phase { on_request: true, ..Phase::new("heap profile (manifests)", || memory::heap::run(Source::Manifests)) },
        Phase { on_request: true, ..Phase::new("heap profile (apiserver)", || memory::heap::run(Source::ApiServer)) },
    ]
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
