//! Issue 13's rows at 50k service ports × 10 endpoints: the nftables and iptables-legacy
//! dataplanes' cold load and one change, each against its tool loading the same text, and
//! the daemon's RSS and network programming latency from the fake apiserver.
//!
//! Three phases (`--only 50k` runs them all): each builds the 50k state once and keeps its
//! counts bounded, so a full `cargo xtask bench` stays within its 20 minutes. Every
//! namespace is named `kpsc<pid>-…` and removed after (also on failure).

pub(crate) mod daemon;
pub(crate) mod iptables;
pub(crate) mod nftables;
mod programming;

use crate::netns::run as sh;

/// Service ports of the large cluster.
const SERVICES: usize = 50_000;
/// Endpoints per service port.
const ENDPOINTS: usize = 10;

/// The prefix of every namespace of these phases.
fn prefix() -> String {
    format!("kpsc{}", std::process::id() % 100_000)
}

/// `n` services as the rows name them (`50k`, `10k`, `10`).
fn count(n: usize) -> String {
    if n >= 1_000 && n % 1_000 == 0 { format!("{}k", n / 1_000) } else { n.to_string() }
}

/// A namespace of these phases, removed on drop.
struct Namespace(String);

impl Namespace {
    fn create(what: &str) -> anyhow::Result<Self> {
        let name = format!("{}-{what}", prefix());
        sh(&["ip", "netns", "add", &name])?;
        Ok(Self(name))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.0]);
    }
}
