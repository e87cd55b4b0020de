//! Issue 13's rows at 50k service ports × 10 endpoints: the nftables and iptables-legacy
//! dataplanes' cold load and one change, each against its tool loading the same text, the
//! daemon's RSS and network programming latency from the fake apiserver, and (with the
//! `ebpf` feature) the eBPF dataplane's cold load and one change.
//!
//! Four phases (`--only 50k` runs them all): each builds the 50k state once and keeps its
//! counts bounded, so a full `cargo xtask bench` stays within its 20 minutes. Every
//! namespace is named `kpsc<pid>-…` (the eBPF phase's `kpe5…`) and removed after (also on
//! failure).

pub(crate) mod daemon;
#[cfg(feature = "ebpf")]
pub(crate) mod ebpf;
pub(crate) mod iptables;
pub(crate) mod nftables;
mod programming;

use crate::netns::run as sh;

/// Service ports of the large cluster.
const SERVICES: usize = 50_000;
/// Endpoints per service port.
const ENDPOINTS: usize = 10;
/// The table size of the one-endpoint changes' baselines.
const CHANGE_BASELINE_SERVICES: usize = 10_000;

/// The prefix of every namespace of these phases.
fn prefix() -> String {
    format!("kpsc{}", std::process::id() % 100_000)
}

/// `n` services as the rows name them (`50k`, `10k`, `10`).
fn count(n: usize) -> String {
    if n >= 1_000 && n.is_multiple_of(1_000) { format!("{}k", n / 1_000) } else { n.to_string() }
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

/// CPU time used so far: by this process (rendering, diffing), and by its waited-for
/// children (`nft`, `iptables-restore`). On a shared machine wall times include waiting
/// for a core; these do not.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cpu {
    pub(super) own: std::time::Duration,
    pub(super) children: std::time::Duration,
}

impl Cpu {
    /// The CPU time used so far.
    pub(super) fn now() -> anyhow::Result<Self> {
        use nix::sys::resource::{UsageWho, getrusage};
        let total = |who| -> anyhow::Result<std::time::Duration> {
            let usage = getrusage(who)?;
            let micros = |t: nix::sys::time::TimeVal| {
                std::time::Duration::from_secs(t.tv_sec().max(0) as u64)
                    + std::time::Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            Ok(micros(usage.user_time()) + micros(usage.system_time()))
        };
        Ok(Self { own: total(UsageWho::RUSAGE_SELF)?, children: total(UsageWho::RUSAGE_CHILDREN)? })
    }

    /// The CPU time used since `self`.
    pub(super) fn since(self) -> anyhow::Result<Self> {
        let now = Self::now()?;
        Ok(Self { own: now.own.saturating_sub(self.own), children: now.children.saturating_sub(self.children) })
    }
}

/// Seconds with one decimal.
fn secs(d: std::time::Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
