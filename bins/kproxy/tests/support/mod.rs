//! What the tests that run the `kproxy` binary inside a namespace share: the daemon as a
//! child killed on drop, a scratch directory, and `ip netns exec kproxy …`.

#![allow(dead_code, reason = "each test binary uses what it needs")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kproxy_testkit::netns::Netns;

/// The daemon, killed on drop (before the namespace goes).
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory under the target's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `<target tmp>/<name>-<pid>`, created empty.
    pub fn new(name: &str) -> Self {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ip netns exec <netns> kproxy ARGS` with a clean environment (only `PATH` kept).
pub fn in_netns(netns: &Netns, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", &netns.name, env!("CARGO_BIN_EXE_kproxy")]).args(args).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Waits up to 30 s for `ready` to hold, every 100 ms.
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
