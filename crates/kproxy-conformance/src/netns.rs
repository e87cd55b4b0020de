//! Running closures and commands inside a named network namespace.
//!
//! A closure runs on a thread of its own that joins the namespace with `setns(2)` and ends
//! with the closure, so no other thread ever changes namespace; sockets it creates keep
//! that namespace for their whole life, wherever they are used afterwards. Commands run
//! through `ip netns exec`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

use crate::Error;

/// Where `ip netns` keeps its namespace files.
pub const NETNS_DIR: &str = "/run/netns";

/// How long a command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The file of namespace `name`, as `ip netns add` made it.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Moves the calling thread into namespace `name`. Only for threads spawned here.
pub(crate) fn enter(name: &str) -> Result<(), Error> {
    let file = File::open(netns_path(name)).map_err(|e| Error::new(format!("open netns {name}: {e}")))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::new(format!("setns {name}: {e}")))
}

/// Runs `f` on a new thread inside namespace `name` and waits for it; a panic in `f` is
/// resumed on the caller.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
    thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn_scoped(scope, || enter(name).map(|()| f()))
            .map_err(|e| Error::new(format!("spawn thread for {name}: {e}")))?;
        worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `f` on a new thread inside namespace `name` without blocking the async caller.
pub async fn in_netns_async<T, F>(name: &str, f: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = name.to_owned();
    thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            // The receiver may be gone (the caller timed out); nothing to report then.
            let _ = tx.send(enter(&owned).map(|()| f()));
        })
        .map_err(|e| Error::new(format!("spawn thread for {name}: {e}")))?;
    rx.await.map_err(|_| Error::new(format!("thread in {name} panicked")))?
}

/// Runs `program args…` inside namespace `name` (`ip netns exec`), with `stdin` as input;
/// returns its standard output, or an error carrying its standard error.
pub fn exec(name: &str, program: &str, args: &[&str], stdin: &str) -> Result<String, Error> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", name, program]).args(args);
    run(&mut command, stdin)
}

/// Runs `ip -n <name> -batch -` with `script` (one `ip` command per line), or plain
/// `ip -batch -` when `name` is None (only for `netns add`/`netns del` lines).
pub fn ip_batch(name: Option<&str>, script: &str) -> Result<String, Error> {
    let mut command = Command::new("ip");
    if let Some(name) = name {
        command.args(["-n", name]);
    }
    command.args(["-batch", "-"]);
    run(&mut command, script)
}

/// Runs `command` to completion within [`COMMAND_TIMEOUT`], feeding it `stdin`.
pub fn run(command: &mut Command, stdin: &str) -> Result<String, Error> {
    let line = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(format!("{line}: {e}")))?;
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    if let Some(mut input) = child.stdin.take() {
        // A command that exits early closes its stdin; its status tells what went wrong.
        let _ = input.write_all(stdin.as_bytes());
    }
    let status = wait_bounded(&mut child, &line)?;
    let out = stdout.map(join_text).unwrap_or_default();
    let err = stderr.map(join_text).unwrap_or_default();
    if status.success() { Ok(out) } else { Err(Error::new(format!("{line}: {status}: {}", err.trim()))) }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        // A read error leaves what was read; the exit status reports failures.
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn join_text(handle: thread::JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

fn wait_bounded(child: &mut std::process::Child, line: &str) -> Result<std::process::ExitStatus, Error> {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::new(format!("{line}: killed after {COMMAND_TIMEOUT:?}")));
            }
            Err(e) => return Err(Error::new(format!("{line}: wait: {e}"))),
        }
    }
}

/// The names of every namespace `ip netns` knows.
pub fn list() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect()
}
