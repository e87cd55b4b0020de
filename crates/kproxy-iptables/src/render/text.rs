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
    chains: BTreeMap<(u8, &'a str), Vec<&'a str>>,
    tail: Vec<String>,
}

impl<'a> Section<'a> {
    fn declare(&mut self, chain: &'a str) -> &mut Vec<&'a str> {
        let rank = match chain {
            KUBE_NODEPORTS => 0,
            KUBE_SERVICES => 1,
            _ => 2,
        };
        self.chains.entry((rank, chain)).or_default()
    }

    fn rule(&mut self, chain: &'a str, line: &'a str) {
        self.declare(chain).push(line);
    }

    fn write(&self, table: &str, out: &mut String) {
        out.push('*');
        out.push_str(table);
        out.push('\n');
        for (_, chain) in self.chains.keys() {
            out.push(':');
            out.push_str(chain);
            out.push_str(" - [0:0]\n");
        }
        for line in self.chains.values().flatten().copied().chain(self.tail.iter().map(String::as_str)) {
            out.push_str(line);
            out.push('\n');
        }
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
    for chain in &input.chains {
        nat.declare(&chain.name).extend(chain.rules.iter().map(String::as_str));
    }
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
    section
        .chains
        .iter()
        .map(|((_, name), rules)| name.len() + 10 + rules.iter().map(|r| r.len() + 1).sum::<usize>())
        .sum()
}
