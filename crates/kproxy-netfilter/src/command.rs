//! Running a tool, optionally inside a named network namespace, feeding it standard input.

use std::process::Stdio;

use kproxy_core::SyncError;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Where a tool runs: this process's network namespace, or a named one (`ip netns exec`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netns(pub Option<String>);

/// A tool that could not be run or reported failure.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The tool could not be started (missing binary, no permission).
    #[error("cannot run {tool}: {source}")]
    Spawn {
        /// The tool.
        tool: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Talking to the running tool failed (e.g. its standard input closed early); trying
    /// again may succeed.
    #[error("{tool}: {source}")]
    Io {
        /// The tool.
        tool: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The tool ran and failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Failed {
        /// The tool.
        tool: String,
        /// Its exit status.
        status: String,
        /// What it printed on standard error.
        stderr: String,
    },
}

impl CommandError {
    /// The tool is missing or cannot be executed: retrying will not help.
    pub fn is_spawn_failure(&self) -> bool {
        matches!(self, Self::Spawn { .. })
    }

    /// This failure of `step` as a dataplane's [`SyncError`]: a tool that cannot run is
    /// fatal; a tool that ran and refused its input rejected the state (the sync's loop
    /// then finds the service ports that cause it); a busy lock or a broken pipe is
    /// transient.
    pub fn into_sync_error(self, dataplane: &'static str, step: &'static str) -> SyncError {
        match &self {
            Self::Spawn { .. } => SyncError::fatal(dataplane, step, self),
            Self::Failed { stderr, .. } if !is_contention(stderr) => SyncError::rejected(dataplane, step, self),
            Self::Failed { .. } | Self::Io { .. } => SyncError::retryable(dataplane, step, self),
        }
    }
}

/// Whether a tool failed because another held a lock it needs (the xtables lock, nft's
/// netlink "Device or resource busy"), not because of its input.
fn is_contention(stderr: &str) -> bool {
    ["xtables lock", "Resource temporarily unavailable", "Device or resource busy"].iter().any(|m| stderr.contains(m))
}

impl Netns {
    /// The command line for `args`, prefixed with `ip netns exec NAME` when in a namespace.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = match &self.0 {
            Some(name) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", name]);
                c.args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        command
    }

    /// Runs `args` with `input` on standard input; returns standard output.
    pub async fn run(&self, args: &[&str], input: &str) -> Result<String, CommandError> {
        let tool = args.join(" ");
        let spawn_error = |source| CommandError::Spawn { tool: tool.clone(), source };
        let mut child = self.command(args).spawn().map_err(spawn_error)?;
        // A tool that rejects its input may exit before reading all of it: the write then
        // fails (broken pipe) and the tool's own verdict, read below, is what counts.
        let written = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(input.as_bytes()).await,
            None => Ok(()),
        };
        let output =
            child.wait_with_output().await.map_err(|source| CommandError::Io { tool: tool.clone(), source })?;
        if !output.status.success() {
            return Err(CommandError::Failed {
                tool,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        written.map_err(|source| CommandError::Io { tool, source })?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
