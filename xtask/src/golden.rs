//! `cargo xtask golden [--bless]`: the golden tests of every dataplane that renders text
//! (`crates/kproxy-nftables/tests/golden/*.nft`, `crates/kproxy-iptables/tests/golden/*.iptables`,
//! `crates/kproxy-userspace/tests/golden/*.nft`).
//! With `--bless` the files are rewritten from the current rendering (`KPROXY_BLESS=1`);
//! review `git diff` before committing. As root, the comparing run also loads every file
//! into a kernel (the packet tests `golden_files_load_into_the_kernel`, installing the
//! tools they need); otherwise those are reported as ignored.

use kproxy_testkit::prereq::{self, Tool};

/// The packages with a `golden` test target.
const PACKAGES: [&str; 3] = ["kproxy-nftables", "kproxy-iptables", "kproxy-userspace"];

/// Runs the golden tests; `bless` rewrites the golden files instead of comparing.
pub(crate) fn run(bless: bool) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = std::process::Command::new(cargo);
    command.arg("test");
    for package in PACKAGES {
        command.args(["--package", package]);
    }
    command.args(["--test", "golden"]).current_dir(crate::workspace_root());
    if bless {
        command.env("KPROXY_BLESS", "1");
    } else {
        command.env_remove("KPROXY_BLESS");
        if prereq::is_root() {
            crate::packages::ensure(&[Tool::Ip, Tool::Nft, Tool::IptablesLegacy, Tool::IptablesNft])?;
            command.args(["--", "--include-ignored"]);
        }
    }
    let status = command.status()?;
    anyhow::ensure!(status.success(), "the golden tests failed: {status}");
    if bless {
        println!("golden files rewritten in crates/*/tests/golden; review `git diff` before committing");
        // A blessed run loads the files it has just written: check them again, comparing.
        return run(false);
    }
    Ok(())
}
