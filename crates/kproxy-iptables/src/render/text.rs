//! `iptables-restore --noflush` text: per table, the chain declarations (which create or
//! flush), the rules, jumps from built-in chains and deletions of stale chains.
//!
//! Chains are listed as upstream's tests list them (`sortIPTablesRules`): `KUBE-NODEPORTS`,
//! `KUBE-SERVICES`, then by name; rules keep their order within a chain.

use std::collections::BTreeMap;

use super::names::{KUBE_MARK_MASQ, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_PROXY_CANARY, KUBE_SERVICES};
use super::{Chain, Jump, SharedRule, Statics};

/// What one restore writes.
#[derive(Debug, Clone)]
pub struct RestoreInput<'a> {
    /// The static rules (always written, as are all shared chains).
    pub statics: &'a Statics,
    /// Every service port's shared-chain rules, in port order.
    pub shared: Vec<&'a [SharedRule]>,
    /// The per-port nat chains to (re)write.
    pub chains: Vec<&'a Chain>,
    /// Per-port nat chains to flush and delete.
    pub stale: Vec<String>,
    /// Jumps from built-in chains to insert (those found missing).
    pub jumps: Vec<&'a Jump>,
    /// Declare `KUBE-PROXY-CANARY` in mangle, nat and filter.
    pub canary: bool,
}

/// One table's part of the text.
#[derive(Default)]
struct Section<'a> {
    /// The static and shared chains (and stale ones), with the rules given one by one.
    chains: BTreeMap<ChainKey<'a>, Vec<&'a str>>,
    /// The service ports' own chains with their rules, as given: hundreds of thousands at
    /// 50k services, so sorted once when written rather than kept in the map.
    own: Vec<(&'a str, &'a [String])>,
    tail: Vec<String>,
}

/// Where a chain is listed: `KUBE-NODEPORTS`, `KUBE-SERVICES`, then by name.
type ChainKey<'a> = (u8, &'a str);

fn key(chain: &str) -> ChainKey<'_> {
    let rank = match chain {
        KUBE_NODEPORTS => 0,
        KUBE_SERVICES => 1,
        _ => 2,
    };
    (rank, chain)
}

/// The rules of one chain in the text: given one by one, or a port's chain.
enum Rules<'s, 'a> {
    Given(&'s [&'a str]),
    Own(&'a [String]),
}

impl<'a> Section<'a> {
    fn declare(&mut self, chain: &'a str) -> &mut Vec<&'a str> {
        self.chains.entry(key(chain)).or_default()
    }

    fn rule(&mut self, chain: &'a str, line: &'a str) {
        self.declare(chain).push(line);
    }

    /// Every chain in text order, a chain given both ways with its given rules first.
    fn ordered(&self) -> Vec<(ChainKey<'a>, Rules<'_, 'a>)> {
        // With the position given: a chain given twice keeps its rules in the order given
        // (and the faster unstable sort orders as a stable one).
        let mut own: Vec<(ChainKey<'a>, usize, &'a [String])> =
            self.own.iter().enumerate().map(|(i, (n, r))| (key(n), i, *r)).collect();
        own.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut own = own.into_iter().map(|(k, _, r)| (k, r)).peekable();
        let mut out = Vec::with_capacity(self.chains.len() + own.len());
        let mut given = self.chains.iter().peekable();
        loop {
            let given_first = match (given.peek(), own.peek()) {
                (Some((g, _)), Some((o, _))) => *g <= o,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if given_first {
                if let Some((k, rules)) = given.next() {
                    out.push((*k, Rules::Given(rules)));
                }
            } else if let Some((k, rules)) = own.next() {
                out.push((k, Rules::Own(rules)));
            }
        }
        out
    }

    fn write(&self, table: &str, out: &mut String) {
        out.push('*');
        out.push_str(table);
        out.push('\n');
        let ordered = self.ordered();
        let mut last = None;
        for (key, _) in &ordered {
            if last != Some(key) {
                out.push(':');
                out.push_str(key.1);
                out.push_str(" - [0:0]\n");
            }
            last = Some(key);
        }
        let mut line = |text: &str| {
            out.push_str(text);
            out.push('\n');
        };
        for (_, rules) in &ordered {
            match rules {
                Rules::Given(rules) => rules.iter().for_each(|r| line(r)),
                Rules::Own(rules) => rules.iter().for_each(|r| line(r)),
            }
        }
        self.tail.iter().for_each(|t| line(t));
        out.push_str("COMMIT\n");
    }
}

/// The chain an `-A CHAIN …` line appends to.
fn chain_of(line: &str) -> &str {
    line.strip_prefix("-A ").and_then(|rest| rest.split(' ').next()).unwrap_or_default()
}

/// The restore text of `input`: mangle (canary only), filter, nat.
pub fn restore_text(input: &RestoreInput<'_>) -> String {
    let (mut filter, mut nat) = (Section::default(), Section::default());
    for chain in &input.statics.filter_chains {
        filter.declare(chain);
    }
    for line in &input.statics.filter_rules {
        filter.rule(chain_of(line), line);
    }
    for chain in [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ] {
        nat.declare(chain);
    }
    for line in &input.statics.nat_rules {
        nat.rule(chain_of(line), line);
    }
    for (shared, line) in input.shared.iter().flat_map(|rules| rules.iter()) {
        let section = if shared.table() == "nat" { &mut nat } else { &mut filter };
        section.rule(shared.chain(), line);
    }
    for line in &input.statics.nat_services_tail {
        nat.rule(KUBE_SERVICES, line);
    }
    nat.own.extend(input.chains.iter().map(|chain| (chain.name.as_str(), chain.rules.as_slice())));
    // Inserted at the top one after the other, in upstream's order of prepending.
    for jump in &input.jumps {
        let section = if jump.table == "nat" { &mut nat } else { &mut filter };
        section.tail.push(format!("-I {} 1 {}", jump.from, jump.spec));
    }
    for name in &input.stale {
        nat.declare(name);
        nat.tail.push(format!("-X {name}"));
    }
    let mut out = String::with_capacity(estimate(&nat) + estimate(&filter) + 256);
    if input.canary {
        filter.declare(KUBE_PROXY_CANARY);
        nat.declare(KUBE_PROXY_CANARY);
        out.push_str(&format!("*mangle\n:{KUBE_PROXY_CANARY} - [0:0]\nCOMMIT\n"));
    }
    filter.write("filter", &mut out);
    nat.write("nat", &mut out);
    out
}

/// A guess of a section's length, to allocate once.
fn estimate(section: &Section<'_>) -> usize {
    let chain = |name: &str, lines: usize, bytes: usize| name.len() + 10 + lines + bytes;
    let given = section.chains.iter().map(|((_, n), r)| chain(n, r.len(), r.iter().map(|l| l.len()).sum()));
    let own = section.own.iter().map(|(n, r)| chain(n, r.len(), r.iter().map(String::len).sum()));
    given.chain(own).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IptablesConfig;
    use crate::render::{Shared, render_statics};
    use kproxy_core::IpFamily;

    fn chain(name: &str, rules: &[&str]) -> Chain {
        Chain { name: name.to_owned(), rules: rules.iter().map(|r| format!("-A {name} {r}")).collect() }
    }

    /// The nat section as one map of every chain (declared in key order, rules in the
    /// order given) would write it.
    fn nat_by_map(input: &RestoreInput<'_>) -> String {
        let mut chains: BTreeMap<ChainKey<'_>, Vec<&str>> = BTreeMap::new();
        for name in [KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ] {
            chains.entry(key(name)).or_default();
        }
        for line in &input.statics.nat_rules {
            chains.entry(key(chain_of(line))).or_default().push(line);
        }
        for (shared, line) in input.shared.iter().flat_map(|rules| rules.iter()) {
            if shared.table() == "nat" {
                chains.entry(key(shared.chain())).or_default().push(line);
            }
        }
        for line in &input.statics.nat_services_tail {
            chains.entry(key(KUBE_SERVICES)).or_default().push(line);
        }
        for c in &input.chains {
            chains.entry(key(&c.name)).or_default().extend(c.rules.iter().map(String::as_str));
        }
        for name in &input.stale {
            chains.entry(key(name)).or_default();
        }
        let mut out = String::from("*nat\n");
        chains.keys().for_each(|(_, name)| out.push_str(&format!(":{name} - [0:0]\n")));
        chains.values().flatten().for_each(|line| out.push_str(&format!("{line}\n")));
        input.stale.iter().for_each(|name| out.push_str(&format!("-X {name}\n")));
        out + "COMMIT\n"
    }

    #[test]
    fn port_chains_are_listed_by_name_once_with_their_rules_in_the_order_given() {
        let statics = render_statics(&IptablesConfig::default(), IpFamily::V4);
        let shared = [(Shared::NatServices, "-A KUBE-SERVICES -d 172.30.0.1 -j KUBE-SVC-B".to_owned())];
        let chains = [
            chain("KUBE-SVC-B", &["one"]),
            chain("KUBE-SEP-Z", &["z"]),
            chain("KUBE-SEP-A", &["a"]),
            chain("KUBE-SVC-B", &["two"]),
            chain("KUBE-SERVICES", &["own"]),
            chain("KUBE-MARK-MASQ", &["own"]),
        ];
        let input = RestoreInput {
            statics: &statics,
            shared: vec![&shared],
            chains: chains.iter().collect(),
            stale: vec!["KUBE-SEP-A".to_owned(), "KUBE-SVC-OLD".to_owned()],
            jumps: Vec::new(),
            canary: false,
        };
        let text = restore_text(&input);
        let nat = text.split_once("*nat\n").map(|(_, nat)| format!("*nat\n{nat}")).unwrap_or_default();
        assert_eq!(nat, nat_by_map(&input));
        assert!(nat.contains("-A KUBE-SVC-B one\n-A KUBE-SVC-B two\n"), "{nat}");
        assert_eq!(nat.matches(":KUBE-SVC-B ").count(), 1, "{nat}");
    }
}
