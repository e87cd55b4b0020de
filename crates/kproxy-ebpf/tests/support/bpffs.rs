//! A bpf filesystem of a test's own, mounted in a private mount namespace so the machine's
//! mount table never changes: the test runs itself again under `unshare --mount` (a
//! multi-threaded process cannot leave its mount namespace), and the child mounts the
//! filesystem on a temporary directory and unmounts it after, also on panic; whatever
//! happens, the mount goes with the child's namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set in the child's environment.
const CHILD: &str = "KPROXY_EBPF_TEST_PRIVATE_MOUNTS";

/// In the test process: runs test `name` of this binary again in a private mount namespace,
/// fails if it fails, and returns `false`. In that child: returns `true` (run the body).
pub fn in_private_mount_namespace(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .status()
        .expect("run unshare (util-linux)");
    assert!(status.success(), "{name} in a private mount namespace: {status}");
    false
}

/// A bpf filesystem on a temporary directory; unmounted and removed on drop.
#[derive(Debug)]
pub struct BpfMount {
    path: PathBuf,
}

impl BpfMount {
    /// Mounts one (only in the child of [`in_private_mount_namespace`]).
    pub fn create(tag: &str) -> Self {
        assert!(std::env::var_os(CHILD).is_some(), "a bpf filesystem is mounted in a private mount namespace only");
        let path = std::env::temp_dir().join(format!("kpeb-{}-{tag}-bpffs", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let mount = Self { path };
        let status = Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&mount.path).status().expect("run mount");
        assert!(status.success(), "mount -t bpf bpf {}: {status}", mount.path.display());
        mount
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BpfMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("kproxy-ebpf test: cannot remove {}: {e}", self.path.display());
        }
    }
}
