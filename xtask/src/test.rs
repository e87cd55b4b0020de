//! `cargo xtask test`: the README's test command. It runs every test of the workspace,
//! the packet tests included: they create network namespaces, so they need root and a few
//! system tools, and carry `#[ignore = "packet test: …"]` so that a plain `cargo test`
//! reports them as ignored instead of passing them unrun. Before building anything it
//! checks root (stopping at once, saying how to run it, when not root) and installs the
//! missing tools with apt-get (stopping at once, naming them, when it cannot). Nothing is
//! reported as passed without having run, with or without `CI=true`.

use std::ffi::{OsStr, OsString};
use std::process::Command;

use kproxy_testkit::prereq::{self, Tool};

/// Checks the prerequisites, then runs the workspace's tests, the packet tests, the doc
/// tests and the dependency rules.
pub(crate) fn run() -> anyhow::Result<()> {
    let path = crate::packages::with_sbin(&std::env::var_os("PATH").unwrap_or_default());
    prerequisites(&path)?;
    cargo_test(&["--workspace", "--all-features", "--all-targets"], &[], &path)?;
    println!("== packet tests (as root, in network namespaces)");
    // Every ignored test outside xtask is a packet test (see the test below); xtask's own
    // ignored tests are benchmarks.
    cargo_test(&["--workspace", "--exclude", "xtask", "--all-features", "--all-targets"], &["--ignored"], &path)?;
    cargo_test(&["--workspace", "--all-features", "--doc"], &[], &path)?;
    crate::check_deps::run()
}

/// Root, and every tool the packet tests run (installed when missing).
fn prerequisites(path: &OsStr) -> anyhow::Result<()> {
    if !prereq::is_root() {
        anyhow::bail!(not_root(&prereq::missing_in(&Tool::ALL, path)));
    }
    crate::packages::ensure_on(&Tool::ALL, path)
}

/// Why a run that is not root stops, and how to run it.
fn not_root(missing: &[Tool]) -> String {
    let mut text = "cargo xtask test runs the packet tests, which create network namespaces: it needs root. \
         Run it as root, e.g. `sudo -E env \"PATH=$PATH\" cargo xtask test`; as root on Debian it installs \
         the tools the tests need with apt-get."
        .to_owned();
    if !missing.is_empty() {
        text.push_str(&format!(
            "\nMissing now: {} (`apt-get install {}`).",
            crate::packages::list(missing),
            prereq::packages(missing).join(" ")
        ));
    }
    text.push_str("\nWithout the packet tests: `cargo test --workspace --all-features` (it reports them as ignored).");
    text
}

/// `cargo test ARGS -- TEST_ARGS` in the workspace root with `path` as `PATH`, comparing
/// golden files (never rewriting them).
fn cargo_test(args: &[&str], test_args: &[&str], path: &OsStr) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.arg("test").args(args);
    if !test_args.is_empty() {
        command.arg("--").args(test_args);
    }
    let status = command.env("PATH", path).env_remove("KPROXY_BLESS").current_dir(crate::workspace_root()).status()?;
    anyhow::ensure!(status.success(), "cargo test {} failed: {status}", args.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// How every packet test's `#[ignore]` reason starts: the tests `run` runs with
    /// `--ignored`.
    const PACKET_TEST: &str = "packet test: ";

    /// The `#[ignore` attributes of the `.rs` files under `dir`, as `(file, attribute)`.
    fn ignores(dir: &Path, out: &mut Vec<(String, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for path in entries.filter_map(|e| Some(e.ok()?.path())) {
            if path.is_dir() {
                ignores(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| l.starts_with("#[ignore"))
                        .map(|l| (path.display().to_string(), l.to_owned())),
                );
            }
        }
    }

    /// `cargo xtask test` runs every ignored test of the crates: each must be a packet test
    /// that says what it needs, never a test switched off.
    #[test]
    fn every_ignored_test_outside_xtask_is_a_packet_test() {
        let root = crate::workspace_root();
        let mut found = Vec::new();
        ignores(&root.join("crates"), &mut found);
        ignores(&root.join("bins"), &mut found);
        ignores(&root.join("examples"), &mut found);
        assert!(found.len() >= 10, "the packet tests are marked #[ignore]: {found:?}");
        let prefix = format!("#[ignore = \"{PACKET_TEST}needs root");
        let others: Vec<_> = found.iter().filter(|(_, attr)| !attr.starts_with(&prefix)).collect();
        assert!(others.is_empty(), "ignored tests that are not packet tests (reason `{prefix}…`): {others:?}");
    }

    #[test]
    fn a_run_without_root_says_how_to_run_it_and_what_is_missing() {
        let text = not_root(&[Tool::Nft, Tool::IptablesLegacy, Tool::IptablesNft]);
        assert!(text.contains("needs root"), "{text}");
        assert!(text.contains("sudo -E env \"PATH=$PATH\" cargo xtask test"), "{text}");
        assert!(text.contains("nft (package nftables)"), "{text}");
        assert!(text.contains("`apt-get install nftables iptables`"), "{text}");
        assert!(!not_root(&[]).contains("Missing now"));
    }
}
