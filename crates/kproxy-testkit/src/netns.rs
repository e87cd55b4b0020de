//! Throwaway network namespaces for packet tests: created with a name no other test uses,
//! deleted on drop (also when the test panics). Every command a test runs in one goes
//! through `ip netns exec`, so nothing touches the machine's own namespace.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace this test created, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name: `<prefix>-<pid>-<n>-<what>`.
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Creates a namespace named `<prefix>-<pid>-<n>-<what>` (each test binary has its own
    /// prefix, so tests running side by side never share a name), or says why it cannot.
    pub fn create(prefix: &str, what: &str) -> Result<Self, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}-{what}", std::process::id());
        let output = Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Self { name })
    }

    /// Runs `program ARGS` in the namespace, with `input` on standard input.
    ///
    /// # Panics
    ///
    /// When `ip netns exec` cannot be started or waited for.
    pub fn run(&self, program: &str, args: &[&str], input: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("the tool reads its input");
        }
        child.wait_with_output().expect("the tool finishes")
    }

    /// `program ARGS` that must succeed; returns its standard output.
    ///
    /// # Panics
    ///
    /// When the program fails, with its error output.
    pub fn run_ok(&self, program: &str, args: &[&str], input: &str) -> String {
        let output = self.run(program, args, input);
        assert!(
            output.status.success(),
            "{program} {} failed in {}: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs `nft ARGS` in the namespace, with `input` on standard input.
    pub fn nft(&self, args: &[&str], input: &str) -> Output {
        self.run("nft", args, input)
    }

    /// `nft ARGS` that must succeed; returns its standard output.
    pub fn nft_ok(&self, args: &[&str], input: &str) -> String {
        self.run_ok("nft", args, input)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}
