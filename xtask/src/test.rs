//! `cargo xtask test`: the README's test command.

/// Runs the workspace's tests, then the dependency rules.
pub(crate) fn run() -> anyhow::Result<()> {
    crate::cargo(&["test", "--workspace", "--all-targets"])?;
    crate::cargo(&["test", "--workspace", "--doc"])?;
    crate::check_deps::run()
}
