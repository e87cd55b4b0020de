//! `iptables-restore` / `iptables-save` runners for both iptables flavours (legacy and
//! nft), both families (`iptables`, `ip6tables`), and upstream's choice between them.

mod fake;

use std::fmt;

use crate::command::{CommandError, Netns};

pub use fake::FakeIptables;

/// Which kernel interface an iptables binary programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IptablesBackend {
    /// The x_tables kernel interface (`iptables-legacy`).
    Legacy,
    /// nf_tables through the iptables syntax (`iptables-nft`).
    Nft,
}

impl IptablesBackend {
    /// The binaries' infix: `legacy` or `nft`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Nft => "nft",
        }
    }

    /// Picks the flavour the node already uses, as upstream's `iptables-wrapper` does:
    /// kubelet's hint chains (`KUBE-IPTABLES-HINT`, `KUBE-KUBELET-CANARY`) in the nft
    /// mangle tables, then anywhere in the legacy ones; otherwise the flavour holding more
    /// rules, nft on a tie. Never fails: a tool that cannot run counts as empty.
    pub async fn detect(netns: &Netns) -> Self {
        let run = |args: &'static [&'static str]| async move { netns.run(args, "").await.unwrap_or_default() };
        let nft =
            [run(&["iptables-nft-save", "-t", "mangle"]).await, run(&["ip6tables-nft-save", "-t", "mangle"]).await];
        if nft.iter().any(|s| has_kubelet_chains(s)) {
            return Self::Nft;
        }
        // `-t mangle` would make the legacy kernel module create the table: save them all.
        let legacy = [run(&["iptables-legacy-save"]).await, run(&["ip6tables-legacy-save"]).await];
        if legacy.iter().any(|s| has_kubelet_chains(s)) {
            return Self::Legacy;
        }
        let nft_all = [run(&["iptables-nft-save"]).await, run(&["ip6tables-nft-save"]).await];
        Self::by_rule_counts(&legacy, &nft_all)
    }

    /// Legacy when the legacy savings hold more rules than the nft ones, else nft.
    pub fn by_rule_counts(legacy: &[String], nft: &[String]) -> Self {
        let count = |saves: &[String]| saves.iter().map(|s| s.lines().filter(|l| l.starts_with('-')).count()).sum();
        let (legacy, nft): (usize, usize) = (count(legacy), count(nft));
        if legacy > nft { Self::Legacy } else { Self::Nft }
    }
}

impl fmt::Display for IptablesBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an `iptables-save` text holds one of kubelet's chains.
fn has_kubelet_chains(save: &str) -> bool {
    save.lines().any(|l| l.starts_with(":KUBE-IPTABLES-HINT ") || l.starts_with(":KUBE-KUBELET-CANARY "))
}

/// Runs iptables tools for one family. Bulk programming goes through
/// [`restore`](IptablesRunner::restore) only: one exec per transaction, never one per rule.
#[async_trait::async_trait]
pub trait IptablesRunner: Send + Sync {
    /// `iptables-restore --noflush` of `text` (one or more `*table … COMMIT` sections):
    /// chains declared with `:CHAIN - [0:0]` are created or flushed, others are kept.
    async fn restore(&self, text: &str) -> Result<(), CommandError>;
    /// `iptables-save -t TABLE`; every table when `table` is empty.
    async fn save(&self, table: &str) -> Result<String, CommandError>;
    /// Whether `chain` exists in `table`: a cheap probe (`iptables -t TABLE -S CHAIN`).
    async fn chain_exists(&self, table: &str, chain: &str) -> Result<bool, CommandError>;
    /// Sets `net.ipv4.conf.all.route_localnet=1`, which NodePorts on 127.0.0.1 need
    /// (upstream's iptables proxier sets it too).
    async fn enable_route_localnet(&self) -> Result<(), CommandError>;
}

/// The real tools: `<prefix>-<backend>-restore`, e.g. `ip6tables-nft-restore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecIptables {
    /// `iptables` or `ip6tables`.
    pub binary_prefix: &'static str,
    /// Legacy or nft.
    pub backend: IptablesBackend,
    /// Where the tools run.
    pub netns: Netns,
}

/// Seconds `iptables-restore` waits for the xtables lock (legacy; nft ignores it).
const LOCK_WAIT_SECONDS: &str = "30";

impl ExecIptables {
    /// The tools of `binary_prefix` (`iptables` or `ip6tables`) and `backend`, in `netns`
    /// (`None`: this process's namespace).
    pub fn new(binary_prefix: &'static str, backend: IptablesBackend, netns: Option<String>) -> Self {
        Self { binary_prefix, backend, netns: Netns(netns) }
    }

    fn tool(&self, suffix: &str) -> String {
        format!("{}-{}{suffix}", self.binary_prefix, self.backend.as_str())
    }
}

#[async_trait::async_trait]
impl IptablesRunner for ExecIptables {
    async fn restore(&self, text: &str) -> Result<(), CommandError> {
        let tool = self.tool("-restore");
        self.netns.run(&[&tool, "--noflush", "-w", LOCK_WAIT_SECONDS], text).await.map(drop)
    }

    async fn save(&self, table: &str) -> Result<String, CommandError> {
        let tool = self.tool("-save");
        if table.is_empty() {
            return self.netns.run(&[&tool], "").await;
        }
        self.netns.run(&[&tool, "-t", table], "").await
    }

    async fn chain_exists(&self, table: &str, chain: &str) -> Result<bool, CommandError> {
        let tool = self.tool("");
        match self.netns.run(&[&tool, "-w", LOCK_WAIT_SECONDS, "-t", table, "-S", chain], "").await {
            Ok(_) => Ok(true),
            // Exit status 1 is "no such chain" (or table); others (lock, permission) are errors.
            Err(CommandError::Failed { status, .. }) if status.ends_with("status: 1") => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn enable_route_localnet(&self) -> Result<(), CommandError> {
        self.netns.run(&["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"], "").await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_chains_are_recognised() {
        assert!(has_kubelet_chains("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n"));
        assert!(!has_kubelet_chains("*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n"));
    }

    #[test]
    fn more_legacy_rules_pick_legacy_and_a_tie_picks_nft() {
        let some = vec!["*filter\n-A INPUT -j ACCEPT\n-A INPUT -j DROP\n".to_owned()];
        let one = vec!["*filter\n-A INPUT -j ACCEPT\n".to_owned()];
        assert_eq!(IptablesBackend::by_rule_counts(&some, &one), IptablesBackend::Legacy);
        assert_eq!(IptablesBackend::by_rule_counts(&one, &one), IptablesBackend::Nft);
        assert_eq!(IptablesBackend::by_rule_counts(&[], &[]), IptablesBackend::Nft);
    }

    #[test]
    fn tool_names_combine_family_and_backend() {
        let exec = ExecIptables::new("ip6tables", IptablesBackend::Nft, None);
        assert_eq!(exec.tool("-restore"), "ip6tables-nft-restore");
        assert_eq!(ExecIptables::new("iptables", IptablesBackend::Legacy, None).tool(""), "iptables-legacy");
    }
}
