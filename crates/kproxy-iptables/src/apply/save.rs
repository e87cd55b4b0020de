//! Reading `iptables-save` output: which service chains exist, which jumps from the
//! built-in chains are missing, and what cleanup must remove.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::render::Jump;
use crate::render::names::{
    KUBE_EXTERNAL_SERVICES, KUBE_FIREWALL, KUBE_FORWARD, KUBE_MARK_MASQ, KUBE_NODEPORTS, KUBE_POSTROUTING,
    KUBE_PROXY_CANARY, KUBE_PROXY_FIREWALL, KUBE_SERVICES, is_service_chain,
};

/// Chains kproxy owns besides the per-service ones. `KUBE-FIREWALL` is not among them:
/// kubelet owns it too, and upstream's cleanup leaves it.
/// Chains kproxy creates, and removes on `--cleanup`. KUBE-FIREWALL is one of them: kproxy
/// writes it (the localnet DROP that localhost node ports need) and links it from INPUT and
/// OUTPUT, as upstream's cleanup unlinks `iptablesKubeletJumpChains` too.
const OWN_CHAINS: [&str; 9] = [
    KUBE_SERVICES,
    KUBE_FIREWALL,
    KUBE_EXTERNAL_SERVICES,
    KUBE_NODEPORTS,
    KUBE_POSTROUTING,
    KUBE_MARK_MASQ,
    KUBE_FORWARD,
    KUBE_PROXY_FIREWALL,
    KUBE_PROXY_CANARY,
];

const BUILTIN_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// Chains declared in a save (`:NAME POLICY [p:b]` lines).
fn declared(save: &str) -> impl Iterator<Item = &str> {
    save.lines().filter_map(|l| l.strip_prefix(':')).filter_map(|l| l.split_whitespace().next())
}

/// The per-service chains (`KUBE-SVC-`, `KUBE-SEP-`, …) a nat save declares.
pub(crate) fn service_chains(nat_save: &str) -> BTreeSet<String> {
    declared(nat_save).filter(|c| is_service_chain(c)).map(str::to_owned).collect()
}

/// The jump target of a saved rule.
fn target(rule: &str) -> Option<&str> {
    let mut words = rule.split_whitespace();
    words.by_ref().find(|w| *w == "-j")?;
    words.next()
}

/// Whether `save` has a rule in `from` jumping to `to`.
fn has_jump(save: &str, from: &str, to: &str) -> bool {
    let prefix = format!("-A {from} ");
    save.lines().any(|l| l.starts_with(&prefix) && target(l) == Some(to))
}

/// The jumps neither save holds, in order.
pub(crate) fn missing_jumps<'a>(jumps: &'a [Jump], filter_save: &str, nat_save: &str) -> Vec<&'a Jump> {
    jumps.iter().filter(|j| !has_jump(if j.table == "nat" { nat_save } else { filter_save }, j.from, j.to)).collect()
}

fn is_own(chain: &str) -> bool {
    OWN_CHAINS.contains(&chain) || is_service_chain(chain)
}

/// The restore text that removes, from a full `iptables-save`, every chain kproxy owns and
/// every built-in-chain rule jumping to one; `None` when there is nothing to remove.
pub(crate) fn cleanup_text(save: &str) -> Option<String> {
    let mut out = String::new();
    let mut table = String::new();
    let mut text = String::new();
    for line in save.lines().chain(std::iter::once("*")) {
        if let Some(name) = line.strip_prefix('*') {
            out.push_str(&cleanup_table(&table, &text));
            (table, text) = (name.to_owned(), String::new());
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The cleanup of one table's saved text (empty when nothing is ours).
fn cleanup_table(table: &str, save: &str) -> String {
    let own: Vec<&str> = declared(save).filter(|c| is_own(c)).collect();
    if own.is_empty() {
        return String::new();
    }
    let mut out = format!("*{table}\n");
    for chain in &own {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for line in save.lines() {
        let Some(rest) = line.strip_prefix("-A ") else { continue };
        let from = rest.split(' ').next().unwrap_or_default();
        if BUILTIN_CHAINS.contains(&from) && target(line).is_some_and(is_own) {
            let _ = writeln!(out, "-D {rest}");
        }
    }
    for chain in &own {
        let _ = writeln!(out, "-X {chain}");
    }
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAT: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n:OTHER - [0:0]\n\
        -A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
        -A OUTPUT -j OTHER\n-A KUBE-SERVICES -d 1.2.3.4/32 -j KUBE-SVC-AAAA\nCOMMIT\n";

    #[test]
    fn service_chains_are_found() {
        assert_eq!(service_chains(NAT).into_iter().collect::<Vec<_>>(), ["KUBE-SVC-AAAA"]);
    }

    #[test]
    fn jumps_are_found_by_chain_and_target() {
        assert!(has_jump(NAT, "PREROUTING", KUBE_SERVICES));
        assert!(!has_jump(NAT, "OUTPUT", KUBE_SERVICES));
    }

    #[test]
    fn cleanup_removes_only_what_is_ours() {
        let save = format!(
            "{NAT}*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n:FOREIGN - [0:0]\n-A INPUT -j KUBE-FIREWALL\n\
             -A INPUT -j FOREIGN\n-A KUBE-FIREWALL -d 127.0.0.0/8 -j DROP\nCOMMIT\n"
        );
        let text = cleanup_text(&save).expect("something to remove");
        assert_eq!(
            text,
            "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n\
             -D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
             -X KUBE-SERVICES\n-X KUBE-SVC-AAAA\nCOMMIT\n\
             *filter\n:KUBE-FIREWALL - [0:0]\n-D INPUT -j KUBE-FIREWALL\n-X KUBE-FIREWALL\nCOMMIT\n"
        );
        assert_eq!(cleanup_text("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"), None);
    }
}
