//! A child cgroup that a test creates, moves itself into, and removes (also on panic).

#![allow(dead_code, reason = "each test binary uses part of the support module")]

use std::path::{Path, PathBuf};

/// A cgroup v2 directory `kproxy-test-<pid>-<tag>` under the cgroup2 mount. While
/// [`TestCgroup::enter`]ed, this whole process belongs to it; dropping it moves the process
/// back where it was and removes the directory.
#[derive(Debug)]
pub struct TestCgroup {
    path: PathBuf,
    home: Option<PathBuf>,
}

/// This process's cgroup v2 directory (from `/proc/self/cgroup`, line `0::<path>`).
fn own_cgroup(root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(root.join(relative.trim_start_matches('/')))
}

impl TestCgroup {
    /// Creates the cgroup (needs root and a cgroup2 mount).
    pub fn create(tag: &str) -> Self {
        Self::named(&format!("kproxy-test-{}-{tag}", std::process::id()))
    }

    /// Creates the cgroup `name` under the cgroup2 mount.
    pub fn named(name: &str) -> Self {
        let root = kproxy_ebpf::cgroup2_root().expect("no cgroup2 mount in /proc/mounts");
        let path = root.join(name);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path, home: None }
    }

    /// The cgroup's directory (what the dataplane attaches to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves this whole process into the cgroup; sockets made afterwards belong to it.
    pub fn enter(&mut self) {
        let root = kproxy_ebpf::cgroup2_root().expect("no cgroup2 mount");
        self.home = own_cgroup(&root);
        std::fs::write(self.path.join("cgroup.procs"), std::process::id().to_string())
            .unwrap_or_else(|e| panic!("join {}: {e}", self.path.display()));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Some(home) = &self.home
            && let Err(e) = std::fs::write(home.join("cgroup.procs"), std::process::id().to_string())
        {
            eprintln!("kproxy-ebpf test: cannot move back to {}: {e}", home.display());
        }
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("kproxy-ebpf test: cannot remove {}: {e}", self.path.display());
        }
    }
}
pub mod bpffs;
pub mod netns;
