//! Running a tool, optionally inside a named network namespace, feeding it standard input.

use std::process::Stdio;

use kproxy_core::SyncError;
use tokio::io::{AsyncWrite, AsyncWriteExt};
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
        self.run_streamed(args, &mut Text(input)).await
    }

    /// Runs `args` with what `input` writes on standard input, while the tool reads it (a
    /// script need not be held whole); returns standard output.
    pub async fn run_streamed(&self, args: &[&str], input: &mut dyn WriteInput) -> Result<String, CommandError> {
        let tool = args.join(" ");
        let spawn_error = |source| CommandError::Spawn { tool: tool.clone(), source };
        let mut child = self.command(args).spawn().map_err(spawn_error)?;
        let stdin = child.stdin.take();
        // A tool that rejects its input may exit before reading all of it: the write then
        // fails (broken pipe) and the tool's own verdict, read beside it, is what counts.
        let write = async move {
            if let Some(mut stdin) = stdin {
                input.write_to(&mut stdin).await?;
                stdin.shutdown().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let (written, output) = tokio::join!(write, child.wait_with_output());
        let output = output.map_err(|source| CommandError::Io { tool: tool.clone(), source })?;
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

/// Standard input written while the tool runs.
#[async_trait::async_trait]
pub trait WriteInput: Send {
    /// Writes all of it to `out`.
    async fn write_to(&mut self, out: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()>;
}

/// Standard input that is one text.
pub struct Text<'a>(pub &'a str);

#[async_trait::async_trait]
impl WriteInput for Text<'_> {
    async fn write_to(&mut self, out: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        out.write_all(self.0.as_bytes()).await
    }
}

/// All that `input` writes, as text.
pub async fn input_text(input: &mut dyn WriteInput) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    input.write_to(&mut bytes).await?;
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `pieces` lines of 1 KiB, one piece at a time.
    struct Lines(usize);

    #[async_trait::async_trait]
    impl WriteInput for Lines {
        async fn write_to(&mut self, out: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
            let line = format!("{}\n", "x".repeat(1023));
            for _ in 0..self.0 {
                out.write_all(line.as_bytes()).await?;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn input_is_written_while_the_tool_runs_and_its_output_is_read_beside_it() {
        // 4 MiB through `cat`: more than a pipe holds in either direction, so writing all
        // of the input before reading any output would never finish.
        let output = Netns(None).run_streamed(&["cat"], &mut Lines(4096)).await.unwrap();
        assert_eq!(output.len(), 4096 * 1024);
        assert!(output.lines().all(|l| l.len() == 1023));
    }

    #[tokio::test]
    async fn a_tool_that_stops_reading_reports_its_own_failure() {
        let error = Netns(None)
            .run_streamed(&["sh", "-c", "head -c 10 >/dev/null; echo refused >&2; exit 3"], &mut Lines(4096))
            .await;
        match error {
            Err(CommandError::Failed { stderr, .. }) => assert_eq!(stderr, "refused"),
            other => panic!("expected the tool's failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn input_text_collects_what_is_written() {
        assert_eq!(input_text(&mut Text("a\nb\n")).await.unwrap(), "a\nb\n");
        assert_eq!(input_text(&mut Lines(2)).await.unwrap().len(), 2048);
    }
}
