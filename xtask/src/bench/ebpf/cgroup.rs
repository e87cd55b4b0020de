//! The child cgroup the eBPF rows attach their programs to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// A cgroup v2 directory `<prefix>-<pid>` under the cgroup2 mount, removed on drop (also
/// after a failure). Only the benchmark's clients join it; nothing attaches above it.
pub(in crate::bench) struct BenchCgroup {
    path: PathBuf,
}

impl BenchCgroup {
    /// Creates the cgroup `<prefix>-<pid>`.
    pub(in crate::bench) fn create(prefix: &str) -> anyhow::Result<Self> {
        let root = kproxy_ebpf::cgroup2_root().context("no cgroup2 mount in /proc/mounts")?;
        let path = root.join(format!("{prefix}-{}", std::process::id()));
        std::fs::create_dir(&path).with_context(|| format!("mkdir {}", path.display()))?;
        Ok(Self { path })
    }

    /// Its directory, where the programs attach.
    pub(in crate::bench) fn path(&self) -> &Path {
        &self.path
    }

    /// The directory as a daemon started by `ip netns exec` sees it: that mounts a fresh
    /// `/sys` without the cgroup2 mount, so the path goes through this process's root.
    pub(super) fn path_for_daemon(&self) -> PathBuf {
        let relative = self.path.strip_prefix("/").unwrap_or(&self.path);
        Path::new(&format!("/proc/{}/root", std::process::id())).join(relative)
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        // A client that just exited may still be leaving it: try for a few seconds.
        for _ in 0..50 {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("ebpf bench: cannot remove {}: {e}", self.path.display());
        }
    }
}
