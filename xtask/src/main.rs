//! `cargo xtask <command>`: every workflow that needs more than one cargo command.

mod check_deps;
mod demo;
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
    /// Run every test the README promises (unit, golden, and, as root, packet tests).
    Test,
    /// Fail if a crate depends on something the architecture forbids.
    CheckDeps,
    /// Build a small cluster from network namespaces and run kproxy on it.
    Demo,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test => test::run(),
        Command::CheckDeps => check_deps::run(),
        Command::Demo => demo::run(),
    }
}

/// Runs `cargo` with `args` in the workspace root, failing on a non-zero exit.
pub(crate) fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo).args(args).current_dir(workspace_root()).status()?;
    anyhow::ensure!(status.success(), "cargo {} failed: {status}", args.join(" "));
    Ok(())
}

/// The workspace root (the parent of this crate's directory).
pub(crate) fn workspace_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
