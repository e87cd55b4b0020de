//! The `kproxy` daemon as a child process inside node1's namespace (`ip netns exec`), its
//! output in a log file; killed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Error, netns};

/// How much of the log an error quotes.
const LOG_TAIL: usize = 3_000;
/// How long a killed daemon may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running daemon; see the module docs.
#[derive(Debug)]
pub(super) struct DaemonProcess {
    child: Child,
    log: PathBuf,
}

impl DaemonProcess {
    /// Starts `binary args…` inside namespace `netns` (see [`in_netns`]), its output going
    /// to `log`.
    pub(super) fn spawn(binary: &Path, netns: &str, args: &[String], log: PathBuf) -> Result<Self, Error> {
        let io = |e: std::io::Error| Error::new(format!("start {} in {netns}: {e}", binary.display()));
        let out = File::create(&log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        let child = in_netns(binary, netns, args).stdin(Stdio::null()).stdout(out).stderr(err).spawn().map_err(io)?;
        Ok(Self { child, log })
    }

    /// Why the daemon is not running any more (its status and log), if it is not.
    pub(super) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(format!("the daemon exited ({status}); {}", self.log_tail())),
            Err(e) => Some(format!("cannot wait for the daemon: {e}")),
        }
    }

    /// The end of the daemon's log, for error messages.
    pub(super) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL);
        let start = (start..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        format!("log {} ends:\n{}", self.log.display(), &text[start..])
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        // `ip netns exec` execs the daemon: this pid is the daemon's.
        let _ = self.child.kill();
        let deadline = Instant::now() + REAP_TIMEOUT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        eprintln!("kproxy-conformance: daemon pid {} did not exit after SIGKILL", self.child.id());
    }
}

/// `kproxy --cleanup args…` inside namespace `netns` (never anywhere else: `ip netns exec`
/// fails when the namespace is gone).
pub(super) fn cleanup(binary: &Path, netns: &str, args: &[String]) -> Result<(), Error> {
    if netns.is_empty() || !netns::netns_path(netns).exists() {
        return Err(Error::new(format!("no namespace {netns:?} to clean up in")));
    }
    let mut args: Vec<String> = std::iter::once("--cleanup".to_owned()).chain(args.iter().cloned()).collect();
    // `--cleanup` cleans every compiled-in mode, the eBPF one's pins included; bpffs is not
    // per namespace, so without this the host's pins would go too.
    if !args.iter().any(|a| a.starts_with("--ebpf-pin-path")) {
        args.push("--ebpf-pin-path=".to_owned());
    }
    netns::run(&mut in_netns(binary, netns, &args), "").map(drop)
}

/// `ip netns exec <netns> <binary> args…` with a clean environment: `PATH` and `RUST_LOG`
/// are kept, no `KPROXY_*` variable reaches the daemon's configuration, logs are uncoloured.
fn in_netns(binary: &Path, netns: &str, args: &[String]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns]).arg(binary).args(args).env_clear().env("NO_COLOR", "1");
    for key in ["PATH", "RUST_LOG"] {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command
}
