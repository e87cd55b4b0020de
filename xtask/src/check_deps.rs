//! `cargo xtask check-deps`: the dependency rules of the architecture, checked with `cargo tree`.

use std::process::Command;

/// Crates a pure crate must never pull in, even transitively.
const IO_CRATES: &[&str] = &["tokio", "kube", "kube-client", "kube-runtime", "hyper", "mio"];

/// `(crate, crates it must not depend on)`.
const RULES: &[(&str, &[&str])] = &[("kproxy-core", IO_CRATES), ("kproxy-testkit", &["kproxy-core"])];

/// Checks every rule; reports all violations at once.
pub(crate) fn run() -> anyhow::Result<()> {
    let mut violations = Vec::new();
    for (krate, forbidden) in RULES {
        let deps = normal_dependencies(krate)?;
        violations.extend(
            forbidden.iter().filter(|f| deps.iter().any(|d| d == *f)).map(|f| format!("{krate} depends on {f}")),
        );
    }
    anyhow::ensure!(violations.is_empty(), "dependency rules broken:\n  {}", violations.join("\n  "));
    println!("check-deps: {} rules hold", RULES.len());
    Ok(())
}

/// Names of every crate `krate` depends on through normal (non-dev, non-build) edges.
fn normal_dependencies(krate: &str) -> anyhow::Result<Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .env("K8S_OPENAPI_ENABLED_VERSION", "1.37")
        .current_dir(crate::workspace_root())
        .output()?;
    anyhow::ensure!(output.status.success(), "cargo tree -p {krate}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout)?;
    Ok(text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect())
}
