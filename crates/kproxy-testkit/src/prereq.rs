//! What the packet tests need from the machine: root (they create network namespaces) and
//! the system tools the dataplanes run. One check for the whole workspace.
//!
//! Packet tests are marked `#[ignore = "packet test: …"]`, so a plain `cargo test` reports
//! them as ignored, never as passed; `cargo xtask test` runs them as root after installing
//! what [`missing`] names. Inside a packet test, [`require`] fails the test when something
//! is missing:
//!
//! ```no_run
//! use kproxy_testkit::prereq::{Tool, require};
//! require(&[Tool::Ip, Tool::Nft]);
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A system tool the packet tests (or the dataplane they drive) run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tool {
    /// `ip` (network namespaces, links, routes).
    Ip,
    /// `nft` (the nftables and userspace dataplanes).
    Nft,
    /// The `iptables-legacy` restore and save tools, both families.
    IptablesLegacy,
    /// The `iptables-nft` restore and save tools, both families.
    IptablesNft,
    /// `sysctl` (the iptables dataplane sets `route_localnet`).
    Sysctl,
    /// `clang-19`: kproxy-ebpf compiles its BPF programs with it (build time).
    Clang,
    /// LLVM 19's tools, which come with the BPF toolchain.
    Llvm,
    /// libbpf's headers (`bpf/bpf_helpers.h`), which the BPF programs include.
    Libbpf,
}

impl Tool {
    /// Every tool some packet test needs: what `cargo xtask test` makes sure of.
    pub const ALL: [Tool; 8] = [
        Tool::Ip,
        Tool::Nft,
        Tool::IptablesLegacy,
        Tool::IptablesNft,
        Tool::Sysctl,
        Tool::Clang,
        Tool::Llvm,
        Tool::Libbpf,
    ];

    /// The commands that must be on `PATH`; an absolute path is a file that must exist.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Tool::Ip => &["ip"],
            Tool::Nft => &["nft"],
            Tool::IptablesLegacy => &[
                "iptables-legacy",
                "iptables-legacy-restore",
                "iptables-legacy-save",
                "ip6tables-legacy-restore",
                "ip6tables-legacy-save",
            ],
            Tool::IptablesNft => &[
                "iptables-nft",
                "iptables-nft-restore",
                "iptables-nft-save",
                "ip6tables-nft-restore",
                "ip6tables-nft-save",
            ],
            Tool::Sysctl => &["sysctl"],
            Tool::Clang => &["clang-19"],
            Tool::Llvm => &["llvm-objdump-19"],
            Tool::Libbpf => &["/usr/include/bpf/bpf_helpers.h"],
        }
    }

    /// The Debian package that installs the commands.
    pub fn package(self) -> &'static str {
        match self {
            Tool::Ip => "iproute2",
            Tool::Nft => "nftables",
            Tool::IptablesLegacy | Tool::IptablesNft => "iptables",
            Tool::Sysctl => "procps",
            Tool::Clang => "clang-19",
            Tool::Llvm => "llvm-19",
            Tool::Libbpf => "libbpf-dev",
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (package {})", self.commands().join(", "), self.package())
    }
}

/// Whether this process runs with effective user id 0.
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    effective_uid(&status) == Some(0)
}

/// The effective user id in a `/proc/<pid>/status` text (the second `Uid:` field).
fn effective_uid(status: &str) -> Option<u32> {
    status.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// The tools of `tools` with a command that is not on this process's `PATH`.
pub fn missing(tools: &[Tool]) -> Vec<Tool> {
    missing_in(tools, &std::env::var_os("PATH").unwrap_or_default())
}

/// The tools of `tools` with a command that is not an executable file in a directory of
/// `path` (a `PATH` value).
pub fn missing_in(tools: &[Tool], path: &OsStr) -> Vec<Tool> {
    let dirs: Vec<_> = std::env::split_paths(path).filter(|d| !d.as_os_str().is_empty()).collect();
    let found = |command: &str| match command.strip_prefix('/') {
        Some(_) => Path::new(command).is_file(),
        None => dirs.iter().any(|dir| is_executable(&dir.join(command))),
    };
    let mut missing: Vec<Tool> = tools.iter().copied().filter(|t| !t.commands().iter().all(|c| found(c))).collect();
    missing.dedup();
    missing
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Debian packages that install `tools`, each once, in order.
pub fn packages(tools: &[Tool]) -> Vec<&'static str> {
    let mut packages: Vec<&'static str> = Vec::new();
    for package in tools.iter().map(|t| t.package()) {
        if !packages.contains(&package) {
            packages.push(package);
        }
    }
    packages
}

/// What keeps a packet test from running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// Whether the process is not root.
    pub not_root: bool,
    /// The tools that are missing.
    pub missing: Vec<Tool>,
}

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut needs = Vec::new();
        if self.not_root {
            needs.push("root (it creates network namespaces)".to_owned());
        }
        needs.extend(self.missing.iter().map(|t| format!("{t}, which is missing")));
        write!(f, "this packet test needs {}", needs.join("; "))?;
        if !self.missing.is_empty() {
            write!(f, ". Install with `apt-get install {}`", packages(&self.missing).join(" "))?;
        }
        write!(f, ". `sudo cargo xtask test` installs what is missing and runs every packet test")
    }
}

impl std::error::Error for Unmet {}

/// Checks that this process is root and has every command of `tools`.
pub fn check(tools: &[Tool]) -> Result<(), Unmet> {
    let unmet = Unmet { not_root: !is_root(), missing: missing(tools) };
    if unmet.not_root || !unmet.missing.is_empty() { Err(unmet) } else { Ok(()) }
}

/// Fails the calling test, saying what is missing and how to get it, unless this process
/// is root and has every command of `tools`.
#[track_caller]
pub fn require(tools: &[Tool]) {
    if let Err(unmet) = check(tools) {
        panic!("{unmet}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A directory of fake commands, removed on drop.
    struct FakeBin(PathBuf);

    impl FakeBin {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("kproxy-prereq-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temporary directory");
            Self(dir)
        }

        fn add(&self, command: &str, mode: u32) -> &Self {
            let path = self.0.join(command);
            std::fs::write(&path, "#!/bin/sh\n").expect("fake command");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("mode");
            self
        }
    }

    impl Drop for FakeBin {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
        std::env::join_paths(dirs).expect("PATH")
    }

    #[test]
    fn a_tool_is_there_when_all_its_commands_are_executable_on_the_path() {
        let sbin = FakeBin::new("sbin");
        sbin.add("ip", 0o755).add("nft", 0o644);
        let xtables = FakeBin::new("xtables");
        for command in Tool::IptablesLegacy.commands() {
            xtables.add(command, 0o700);
        }
        std::fs::create_dir_all(xtables.0.join("sysctl")).expect("a directory named like a command");
        let path = path_of(&[&sbin.0, Path::new(""), &xtables.0]);

        // nft is not executable, sysctl is a directory, iptables-nft and clang are absent.
        let commands = &Tool::ALL[..7];
        assert_eq!(missing_in(commands, &path), [Tool::Nft, Tool::IptablesNft, Tool::Sysctl, Tool::Clang, Tool::Llvm]);
        assert_eq!(missing_in(&[Tool::Ip, Tool::IptablesLegacy], &path), []);
        assert_eq!(missing_in(commands, OsStr::new("")), commands);

        // One command of a tool missing is the tool missing.
        let partial = FakeBin::new("partial");
        partial.add("iptables-nft-restore", 0o755);
        assert_eq!(missing_in(&[Tool::IptablesNft], &path_of(&[&partial.0])), [Tool::IptablesNft]);
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() {
        assert_eq!(effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\n"), Some(0));
        assert_eq!(effective_uid("Uid:\t0\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(effective_uid("Name:\tx\n"), None);
    }

    #[test]
    fn packages_are_named_once() {
        assert_eq!(
            packages(&Tool::ALL),
            ["iproute2", "nftables", "iptables", "procps", "clang-19", "llvm-19", "libbpf-dev"]
        );
    }

    #[test]
    fn the_message_names_what_is_missing_and_how_to_install_it() {
        let unmet = Unmet { not_root: true, missing: vec![Tool::Sysctl, Tool::IptablesNft] };
        let text = unmet.to_string();
        assert!(text.contains("needs root"), "{text}");
        assert!(text.contains("sysctl (package procps), which is missing"), "{text}");
        assert!(text.contains("iptables-nft-restore"), "{text}");
        assert!(text.contains("`apt-get install procps iptables`"), "{text}");
        assert!(text.contains("sudo cargo xtask test"), "{text}");
        let root_only = Unmet { not_root: true, missing: Vec::new() }.to_string();
        assert!(!root_only.contains("apt-get"), "{root_only}");
    }
}
