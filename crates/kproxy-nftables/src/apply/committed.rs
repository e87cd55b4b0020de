//! `Committed`: what the dataplane believes one family's table holds, with reference
//! counts for chains, elements and sets that several service ports share.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use kproxy_core::ServicePortName;
use kproxy_core::stale_flows::Destinations;

use super::packed::{SetNames, pack};
use crate::render::names::{CLUSTER_IPS, HAIRPIN};
use crate::render::{Chain, Element, OwnedSet, PortRender};

/// What each service port holds, and how many ports use each chain, set and shared
/// element. Elements other than hairpin pairs and cluster IPs belong to exactly one port
/// (their keys hold the port's address and number), so only the shared ones are counted:
/// the rest live once, in the port's entry. Kept compact (a sync reads back only the ports it touches):
/// a port names its chains (their rules live once, in the chain count) and packs its
/// elements into one text.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) ports: BTreeMap<ServicePortName, CommittedPort>,
    chains: BTreeMap<String, (Vec<String>, usize)>,
    /// Shared elements, each as its packed record.
    shared_elements: BTreeMap<Box<str>, ((), usize)>,
    sets: BTreeMap<String, (String, usize)>,
    set_names: SetNames,
}

/// What one service port holds in the table.
#[derive(Debug)]
pub(crate) struct CommittedPort {
    /// The names of the chains it uses.
    chains: Box<[String]>,
    /// Its own sets.
    sets: Box<[OwnedSet]>,
    /// Its elements, packed.
    elements: Box<str>,
    /// Where clients reach it.
    pub(crate) destinations: Destinations,
}

/// Whether several ports may hold the same element of this set.
fn is_shared(element: &Element) -> bool {
    element.set == HAIRPIN || element.set == CLUSTER_IPS
}

/// What a partial sync changes in the kernel.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub(crate) added_sets: Vec<OwnedSet>,
    pub(crate) added_chains: Vec<Chain>,
    pub(crate) replaced_chains: Vec<Chain>,
    pub(crate) removed_elements: Vec<Element>,
    pub(crate) added_elements: Vec<Element>,
    pub(crate) removed_chains: Vec<String>,
    pub(crate) removed_sets: Vec<String>,
}

impl Delta {
    /// Nothing to send.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Committed {
    /// The bookkeeping of a table loaded with `renders` (each port once), taken one by one:
    /// no render of the whole table is ever held.
    pub(crate) fn from_renders(renders: impl IntoIterator<Item = (ServicePortName, PortRender)>) -> Self {
        let mut committed = Self::default();
        for (name, render) in renders {
            committed.add(name, render);
        }
        committed
    }

    /// Takes port `name` (not held yet) with `render`.
    pub(crate) fn add(&mut self, name: ServicePortName, render: PortRender) {
        self.count(&render, 1);
        let port = self.port(render);
        self.ports.insert(name, port);
    }

    /// Whether some port uses chain `name`.
    pub(crate) fn has_chain(&self, name: &str) -> bool {
        self.chains.contains_key(name)
    }

    /// Whether some port owns set `name`.
    pub(crate) fn has_set(&self, name: &str) -> bool {
        self.sets.contains_key(name)
    }

    /// Whether `element` is not held yet: always for a port's own elements, only the
    /// first time for shared ones.
    pub(crate) fn is_new(&self, element: &Element) -> bool {
        !is_shared(element)
            || !self.set_names.known_record(element).is_some_and(|record| self.shared_elements.contains_key(&record))
    }

    /// Replaces the renders of some ports (`None`: the port is gone) and says what that
    /// changes in the kernel.
    pub(crate) fn update(&mut self, changes: Vec<(ServicePortName, Option<PortRender>)>) -> Delta {
        let old: Vec<Option<PortRender>> = changes.iter().map(|(name, _)| self.render_of(name)).collect();
        let touched = touched_names(old.iter().flatten().chain(changes.iter().filter_map(|(_, new)| new.as_ref())));
        let old_own = own_elements(old.iter().flatten());
        let new_own = own_elements(changes.iter().filter_map(|(_, new)| new.as_ref()));
        let before = self.snapshot(&touched);
        for ((name, render), old) in changes.into_iter().zip(old) {
            if let Some(old) = old {
                self.count(&old, -1);
                self.ports.remove(&name);
            }
            if let Some(new) = render {
                self.count(&new, 1);
                let port = self.port(new);
                self.ports.insert(name, port);
            }
        }
        let after = self.snapshot(&touched);
        let mut delta = delta(before, after);
        delta.removed_elements.extend(old_own.difference(&new_own).cloned());
        delta.added_elements.extend(new_own.difference(&old_own).cloned());
        delta.removed_elements.sort();
        delta.added_elements.sort();
        delta
    }

    /// A port's entry: its render without what is kept elsewhere or can be read back.
    fn port(&mut self, render: PortRender) -> CommittedPort {
        CommittedPort {
            chains: render.chains.into_iter().map(|c| c.name).collect(),
            sets: render.sets.into_boxed_slice(),
            elements: pack(&mut self.set_names, &render.elements),
            destinations: render.destinations,
        }
    }

    /// The render port `name` was committed with, read back from its entry.
    fn render_of(&self, name: &ServicePortName) -> Option<PortRender> {
        let port = self.ports.get(name)?;
        let chain = |name: &String| Chain {
            name: name.clone(),
            rules: self.chains.get(name).map(|(rules, _)| rules.clone()).unwrap_or_default(),
        };
        Some(PortRender {
            chains: port.chains.iter().map(chain).collect(),
            elements: self.set_names.read(&port.elements).collect(),
            sets: port.sets.to_vec(),
            destinations: port.destinations.clone(),
        })
    }

    fn count(&mut self, render: &PortRender, sign: i64) {
        let shared: BTreeSet<&Element> = render.elements.iter().filter(|e| is_shared(e)).collect();
        for element in shared {
            let record = self.set_names.record(element);
            adjust(&mut self.shared_elements, record, (), sign);
        }
        for chain in &render.chains {
            adjust(&mut self.chains, chain.name.clone(), chain.rules.clone(), sign);
        }
        for set in &render.sets {
            adjust(&mut self.sets, set.name.clone(), set.spec.clone(), sign);
        }
    }

    fn snapshot(&mut self, touched: &Touched) -> Snapshot {
        let shared: Vec<(&Element, Box<str>)> =
            touched.elements.iter().map(|e| (e, self.set_names.record(e))).collect();
        Snapshot {
            chains: touched
                .chains
                .iter()
                .filter_map(|n| self.chains.get(n).map(|(r, _)| (n.clone(), r.clone())))
                .collect(),
            elements: shared
                .into_iter()
                .filter(|(_, record)| self.shared_elements.contains_key(record))
                .map(|(e, _)| e.clone())
                .collect(),
            sets: touched.sets.iter().filter_map(|n| self.sets.get(n).map(|(s, _)| (n.clone(), s.clone()))).collect(),
        }
    }
}

/// Counts one more (`sign > 0`, taking `value` as the current content) or one fewer user
/// of `key`, forgetting it when none is left. Touches only that key.
fn adjust<K: Ord, V>(map: &mut BTreeMap<K, (V, usize)>, key: K, value: V, sign: i64) {
    match map.entry(key) {
        Entry::Vacant(entry) => {
            if sign > 0 {
                entry.insert((value, 1));
            }
        }
        Entry::Occupied(mut entry) => {
            if sign > 0 {
                let slot = entry.get_mut();
                slot.0 = value;
                slot.1 += 1;
            } else if entry.get().1 <= 1 {
                entry.remove();
            } else {
                entry.get_mut().1 -= 1;
            }
        }
    }
}

#[derive(Default)]
struct Touched {
    chains: BTreeSet<String>,
    elements: BTreeSet<Element>,
    sets: BTreeSet<String>,
}

fn touched_names<'a>(renders: impl Iterator<Item = &'a PortRender>) -> Touched {
    let mut touched = Touched::default();
    for render in renders {
        touched.chains.extend(render.chains.iter().map(|c| c.name.clone()));
        touched.elements.extend(render.elements.iter().filter(|e| is_shared(e)).cloned());
        touched.sets.extend(render.sets.iter().map(|s| s.name.clone()));
    }
    touched
}

/// The elements of `renders` that belong to one port only.
fn own_elements<'a>(renders: impl Iterator<Item = &'a PortRender>) -> BTreeSet<Element> {
    renders.flat_map(|r| &r.elements).filter(|e| !is_shared(e)).cloned().collect()
}

struct Snapshot {
    chains: BTreeMap<String, Vec<String>>,
    elements: BTreeSet<Element>,
    sets: BTreeMap<String, String>,
}

fn delta(before: Snapshot, after: Snapshot) -> Delta {
    let mut delta = Delta::default();
    for (name, spec) in &after.sets {
        if before.sets.get(name) != Some(spec) {
            delta.added_sets.push(OwnedSet { name: name.clone(), spec: spec.clone() });
        }
    }
    for (name, rules) in &after.chains {
        match before.chains.get(name) {
            None => delta.added_chains.push(Chain { name: name.clone(), rules: rules.clone() }),
            Some(old) if old != rules => delta.replaced_chains.push(Chain { name: name.clone(), rules: rules.clone() }),
            Some(_) => {}
        }
    }
    delta.removed_elements = before.elements.difference(&after.elements).cloned().collect();
    delta.added_elements = after.elements.difference(&before.elements).cloned().collect();
    delta.removed_chains = before.chains.keys().filter(|n| !after.chains.contains_key(*n)).cloned().collect();
    delta.removed_sets = before.sets.keys().filter(|n| !after.sets.contains_key(*n)).cloned().collect();
    delta
}
