//! `cargo xtask test`: the README's test command.

/// Runs the workspace's tests (as root these include the packet tests in network
/// namespaces: the conformance suite), then the dependency rules.
pub(crate) fn run() -> anyhow::Result<()> {
    crate::cargo(&["test", "--workspace", "--all-features", "--all-targets"])?;
    crate::cargo(&["test", "--workspace", "--all-features", "--doc"])?;
    crate::check_deps::run()
}
