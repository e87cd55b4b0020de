//! From renders to restore texts: a full sync (everything, stale chains found in an
//! `iptables-save`, missing jumps added), a partial sync (shared chains and the changed
//! ports' chains, stale chains known from what was committed), and cleanup.

mod save;

use std::collections::BTreeMap;
use std::iter::Peekable;

use kproxy_core::ServicePortName;

use crate::render::{Destinations, FamilyRender, PortRender, RestoreInput, SharedRule, Statics, restore_text};

pub(crate) use save::{cleanup_text, missing_jumps, service_chains};

/// What one service port holds in the tables, as far as later syncs need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CommittedPort {
    /// Its rules in the shared chains, rewritten on every sync.
    shared: Vec<SharedRule>,
    /// Its own nat chains.
    chains: Vec<String>,
    /// Where clients reached it (to clear flows once it is gone).
    destinations: Destinations,
    /// How many rules its own chains hold.
    own_rules: usize,
}

impl CommittedPort {
    fn of(render: &PortRender) -> Self {
        let chains = render.chains.iter().map(|c| c.name.clone()).collect();
        let own_rules = own_rules(render);
        Self { shared: render.shared.clone(), chains, destinations: render.destinations.clone(), own_rules }
    }
}

/// How many rules the own chains of `render` hold (all in the nat table).
fn own_rules(render: &PortRender) -> usize {
    render.chains.iter().map(|c| c.rules.len()).sum()
}

/// What the dataplane believes one family's tables hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Committed {
    ports: BTreeMap<ServicePortName, CommittedPort>,
    /// Rules owned in the filter and nat tables, as of the last write.
    totals: [usize; 2],
}

/// New renders of some ports (`None`: the port is gone), in name order.
pub(crate) type Updates = BTreeMap<ServicePortName, Option<PortRender>>;

impl Committed {
    /// The bookkeeping of a family loaded in full with `text`.
    pub(crate) fn of(render: &FamilyRender, text: &str) -> Self {
        let ports = render.ports.iter().map(|(name, port)| (name.clone(), CommittedPort::of(port))).collect();
        Self { ports, totals: owned(appended_per_table(text), &render.statics) }
    }

    /// Rules owned in the filter and nat tables.
    pub(crate) fn totals(&self) -> [usize; 2] {
        self.totals
    }

    /// Where clients reached port `name`, as committed.
    pub(crate) fn destinations(&self, name: &ServicePortName) -> Option<&Destinations> {
        self.ports.get(name).map(|p| &p.destinations)
    }

    /// Records `updates`, written with the partial `text`, as committed: every shared and
    /// static rule is in `text`, the ports' own chains only for the updated ports.
    pub(crate) fn apply(&mut self, updates: &Updates, statics: &Statics, text: &str) {
        let [filter, nat] = appended_per_table(text);
        let updated_own: usize = updates.values().flatten().map(own_rules).sum();
        self.record(updates);
        let own: usize = self.ports.values().map(|p| p.own_rules).sum();
        self.totals = owned([filter, nat - updated_own + own], statics);
    }

    fn record(&mut self, updates: &Updates) {
        for (name, render) in updates {
            match render {
                Some(render) => self.ports.insert(name.clone(), CommittedPort::of(render)),
                None => self.ports.remove(name),
            };
        }
    }

    /// The restore text of a partial sync: every shared chain (from the committed rules,
    /// `updates` replacing theirs), the updated ports' chains, and deletion of the chains
    /// they no longer use.
    pub(crate) fn partial_text(&self, statics: &Statics, updates: &Updates) -> String {
        let shared = merged(self.ports.iter().peekable(), updates.iter().peekable());
        let chains = updates.values().flatten().flat_map(|p| &p.chains).collect::<Vec<_>>();
        let mut stale = Vec::new();
        for (name, render) in updates {
            let Some(old) = self.ports.get(name) else { continue };
            let kept = |chain: &String| render.iter().flat_map(|r| &r.chains).any(|c| c.name == *chain);
            stale.extend(old.chains.iter().filter(|c| !kept(c)).cloned());
        }
        restore_text(&RestoreInput { statics, shared, chains, stale, jumps: Vec::new(), canary: false })
    }
}

/// Every port's shared rules in name order: committed ones, with `updates` applied.
fn merged<'a>(
    mut committed: Peekable<impl Iterator<Item = (&'a ServicePortName, &'a CommittedPort)>>,
    mut updates: Peekable<impl Iterator<Item = (&'a ServicePortName, &'a Option<PortRender>)>>,
) -> Vec<&'a [SharedRule]> {
    let mut out = Vec::new();
    loop {
        let next = match (committed.peek(), updates.peek()) {
            (None, None) => break,
            (Some(_), None) => committed.next().map(|(_, c)| Some(c.shared.as_slice())),
            (None, Some(_)) => updates.next().map(|(_, u)| u.as_ref().map(|r| r.shared.as_slice())),
            (Some((c, _)), Some((u, _))) if c < u => committed.next().map(|(_, c)| Some(c.shared.as_slice())),
            (Some((c, _)), Some((u, _))) => {
                if c == u {
                    committed.next();
                }
                updates.next().map(|(_, u)| u.as_ref().map(|r| r.shared.as_slice()))
            }
        };
        out.extend(next.flatten());
    }
    out
}

/// The restore text of a full sync: every chain, the jumps `filter_save`/`nat_save` lack,
/// canaries, and deletion of the service chains `nat_save` holds that are not wanted.
pub(crate) fn full_text(render: &FamilyRender, filter_save: &str, nat_save: &str) -> String {
    let mut stale = service_chains(nat_save);
    if !stale.is_empty() {
        let wanted: std::collections::HashSet<&str> =
            render.ports.values().flat_map(|p| &p.chains).map(|c| c.name.as_str()).collect();
        stale.retain(|c| !wanted.contains(c.as_str()));
    }
    let input = RestoreInput {
        statics: &render.statics,
        shared: render.ports.values().map(|p| p.shared.as_slice()).collect(),
        chains: render.ports.values().flat_map(|p| &p.chains).collect(),
        stale: stale.into_iter().collect(),
        jumps: missing_jumps(&render.statics.jumps, filter_save, nat_save),
        canary: true,
    };
    restore_text(&input)
}

/// How many rules a restore text appends or inserts.
pub(crate) fn rule_count(text: &str) -> usize {
    text.lines().filter(|l| is_rule(l)).count()
}

/// How many rules a restore text appends or inserts in the filter and nat tables
/// ([`kproxy_core::RULE_TABLES`] order).
pub(crate) fn written_per_table(text: &str) -> [usize; 2] {
    count_per_table(text, is_rule)
}

/// How many rules a restore text appends to chains (ours) in the filter and nat tables.
fn appended_per_table(text: &str) -> [usize; 2] {
    count_per_table(text, |line| line.starts_with("-A "))
}

/// `chain_rules` plus our jumps from the built-in chains: every rule we own, per table.
fn owned(chain_rules: [usize; 2], statics: &Statics) -> [usize; 2] {
    let jumps = |table: &str| statics.jumps.iter().filter(|j| j.table == table).count();
    let [filter, nat] = chain_rules;
    [filter + jumps("filter"), nat + jumps("nat")]
}

fn count_per_table(text: &str, counted: impl Fn(&str) -> bool) -> [usize; 2] {
    let mut counts = [0; 2];
    let mut table = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = kproxy_core::RULE_TABLES.iter().position(|t| *t == name);
        } else if let Some(i) = table
            && counted(line)
        {
            counts[i] += 1;
        }
    }
    counts
}

fn is_rule(line: &str) -> bool {
    line.starts_with("-A ") || line.starts_with("-I ")
}
