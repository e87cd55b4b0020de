//! nft text of a whole table: what `kproxy render` prints, what golden files hold, and the
//! body of a from-scratch load.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use kproxy_netfilter::nft_text::{self, Family, write_chain};

use super::{Chain, Element, OwnedSet, TableRender};

/// The whole table as one `table FAMILY NAME { … }` block, elements inline, in a canonical
/// order (static declarations first, then chains and sets of service ports by name).
pub fn render_text(table: &TableRender, name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table {} {name} {{", Family(table.family).keyword());
    let elements = group_elements(table.statics.elements.iter().chain(table.ports.values().flat_map(|p| &p.elements)));
    for set in &table.statics.sets {
        let _ = writeln!(out, "\t{} {} {{\n\t\t{}", set.kind, set.name, set.spec);
        if let Some(items) = elements.get(set.name).filter(|i| !i.is_empty()) {
            let _ = writeln!(
                out,
                "\t\telements = {{\n\t\t\t{}\n\t\t}}",
                items.iter().map(String::as_str).collect::<Vec<_>>().join(",\n\t\t\t")
            );
        }
        let _ = writeln!(out, "\t}}");
    }
    for set in port_sets(table) {
        let _ = writeln!(out, "\tset {} {{\n\t\t{}\n\t}}", set.name, set.spec);
    }
    for counter in &table.statics.counters {
        let _ = writeln!(out, "\tcounter {counter} {{\n\t}}");
    }
    for chain in &table.statics.chains {
        write_chain(&mut out, &chain.chain.name, chain.hook, &chain.chain.rules);
    }
    for chain in port_chains(table) {
        write_chain(&mut out, &chain.name, None, &chain.rules);
    }
    out.push_str("}\n");
    out
}

/// Elements by set, each `key` or `key : value`, sorted and without duplicates.
pub(crate) fn group_elements<'a>(
    elements: impl Iterator<Item = &'a Element>,
) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut grouped: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    for element in elements {
        grouped.entry(element.set).or_default().insert(element_text(element));
    }
    grouped
}

/// `key` or `key : value`.
pub(crate) fn element_text(element: &Element) -> String {
    nft_text::element_text(&element.key, element.value.as_deref())
}

/// The chains of every port, each once, by name.
pub(crate) fn port_chains(table: &TableRender) -> Vec<&Chain> {
    let chains: BTreeMap<&str, &Chain> =
        table.ports.values().flat_map(|p| &p.chains).map(|c| (c.name.as_str(), c)).collect();
    chains.into_values().collect()
}

fn port_sets(table: &TableRender) -> Vec<&OwnedSet> {
    let sets: BTreeMap<&str, &OwnedSet> =
        table.ports.values().flat_map(|p| &p.sets).map(|s| (s.name.as_str(), s)).collect();
    sets.into_values().collect()
}
