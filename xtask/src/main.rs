//! `cargo xtask <command>`: every workflow that needs more than one cargo command.

mod bench;
mod check_deps;
mod demo;
mod golden;
mod netns;
mod packages;
mod pod_tools;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "kproxy's developer workflows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every test the README promises: unit, golden, doc and packet tests (as root; installs missing tools).
    Test,
    /// Fail if a crate depends on something the architecture forbids.
    CheckDeps,
    /// Compare rendered rulesets (nftables, iptables, userspace) with their golden files (`--bless`: rewrite them).
    Golden {
        /// Rewrite the golden files from the current rendering.
        #[arg(long)]
        bless: bool,
    },
    /// Build a small cluster from network namespaces and run kproxy on it (as root).
    Demo,
    /// Benchmarks in network namespaces, as ratios to baselines measured in the same run (as root).
    Bench {
        /// Run only the phases (or rows) whose name contains this (e.g. `memory`, `steady RSS`, `nftables`;
        /// `heap` runs the daemon under a heap profiler, only when asked).
        #[arg(long)]
        only: Option<String>,
    },
    /// (inside a namespace) HTTP GET; print the body.
    #[command(hide = true)]
    HttpGet {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        path: String,
    },
    /// (inside a namespace) Connect repeatedly; print each latency in microseconds.
    #[command(hide = true)]
    Latency {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        count: usize,
    },
    /// (inside a demo pod) Answer TCP connections with this pod's name.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        name: String,
        #[arg(long)]
        port: u16,
    },
    /// (inside a demo namespace) Connect several times and count answers per pod.
    #[command(hide = true)]
    Request {
        #[arg(long)]
        addr: String,
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// (inside a demo namespace) One request; print the answer.
    #[command(hide = true)]
    Ask {
        #[arg(long)]
        addr: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test => test::run(),
        Command::CheckDeps => check_deps::run(),
        Command::Golden { bless } => golden::run(bless),
        Command::Demo => demo::run_demo(),
        Command::Bench { only } => bench::run(only.as_deref()),
        Command::HttpGet { addr, path } => pod_tools::http_get(&addr, &path).map(|body| print!("{body}")),
        Command::Latency { addr, count } => pod_tools::latency(&addr, count),
        Command::Serve { name, port } => pod_tools::serve(&name, port),
        Command::Request { addr, count } => pod_tools::request(&addr, count),
        Command::Ask { addr } => pod_tools::ask(&addr).map(|answer| println!("{answer}")),
    }
}

/// Runs `cargo` with `args` in the workspace root, failing on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo).args(args).current_dir(workspace_root()).status()?;
    anyhow::ensure!(status.success(), "cargo {} failed: {status}", args.join(" "));
    Ok(())
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace).
pub(crate) fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(Into::into).unwrap_or_else(|| workspace_root().join("target"))
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
