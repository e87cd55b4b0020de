//! Installing the Debian packages a workflow needs, when they are missing. The tools and
//! their packages are the testkit's ([`kproxy_testkit::prereq`]): one list for the tests
//! and the workflows.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use kproxy_testkit::prereq::{self, Tool};

/// Where Debian puts `ip`, `nft`, the iptables tools and `sysctl`.
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Installs, with apt-get, the packages of the `tools` that are not on this process's
/// `PATH`. Needs root.
pub(crate) fn ensure(tools: &[Tool]) -> anyhow::Result<()> {
    ensure_on(tools, &std::env::var_os("PATH").unwrap_or_default())
}

/// Installs, with apt-get, the packages of the `tools` that are not on `path` (a `PATH`
/// value); fails, naming what is missing and how to install it, when it cannot (no
/// apt-get) or when the tools are still missing after installing.
pub(crate) fn ensure_on(tools: &[Tool], path: &OsStr) -> anyhow::Result<()> {
    let missing = prereq::missing_in(tools, path);
    if missing.is_empty() {
        return Ok(());
    }
    let packages = prereq::packages(&missing);
    if !is_debian(path) {
        bail!(
            "missing: {}. Install the packages that provide them (on Debian: `apt-get install {}`)",
            list(&missing),
            packages.join(" ")
        );
    }
    println!("== installing {}", packages.join(" "));
    apt_get(&["update", "-qq"], path)?;
    let mut args = vec!["install", "-y", "-qq"];
    args.extend(&packages);
    apt_get(&args, path)?;
    let still = prereq::missing_in(tools, path);
    anyhow::ensure!(still.is_empty(), "still missing after installing {}: {}", packages.join(" "), list(&still));
    Ok(())
}

/// `PATH` with the sbin directories added at the end when absent: a user's `PATH` kept
/// through `sudo` lacks them on Debian, and the tools live there.
pub(crate) fn with_sbin(path: &OsStr) -> OsString {
    let mut dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    for sbin in SBIN_DIRS.map(PathBuf::from) {
        if !dirs.contains(&sbin) {
            dirs.push(sbin);
        }
    }
    std::env::join_paths(dirs).unwrap_or_else(|_| path.to_owned())
}

/// `tool (package …), …`.
pub(crate) fn list(tools: &[Tool]) -> String {
    tools.iter().map(Tool::to_string).collect::<Vec<_>>().join("; ")
}

fn is_debian(path: &OsStr) -> bool {
    Path::new("/etc/debian_version").exists() && std::env::split_paths(path).any(|d| d.join("apt-get").is_file())
}

fn apt_get(args: &[&str], path: &OsStr) -> anyhow::Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("PATH", path)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| anyhow::anyhow!("running apt-get: {e}"))?;
    anyhow::ensure!(status.success(), "apt-get {} failed: {status}", args.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbin_directories_are_added_once_at_the_end() {
        let path = with_sbin(OsStr::new("/home/dev/.cargo/bin:/usr/sbin:/usr/bin"));
        assert_eq!(path, "/home/dev/.cargo/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/sbin");
        assert_eq!(with_sbin(&path), path);
    }
}
