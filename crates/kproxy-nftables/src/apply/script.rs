//! nft scripts: full load (keeping affinity state, streamed), from-scratch replace, partial
//! update, cleanup.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use kproxy_core::IpFamily;
use kproxy_netfilter::WriteInput;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::committed::{Committed, Delta};
use crate::Family;
use crate::render::text::element_text;
use crate::render::{Chain, Element, StaticTable, TableRender, render_text};

/// How many elements one `add element` command carries.
const ELEMENTS_PER_COMMAND: usize = 1000;

/// A streamed script is handed over in pieces of at least this many bytes.
const PIECE: usize = 64 * 1024;

struct Script<'a> {
    out: String,
    table: &'a str,
}

impl<'a> Script<'a> {
    fn new(table: &'a str) -> Self {
        Self { out: String::new(), table }
    }

    fn line(&mut self, text: std::fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(text);
        self.out.push('\n');
    }

    fn chain_rules(&mut self, chain: &Chain) {
        self.rules(&chain.name, &chain.rules);
    }

    fn rules(&mut self, chain: &str, rules: &[String]) {
        for rule in rules {
            let table = self.table;
            self.line(format_args!("add rule {table} {chain} {rule}"));
        }
    }

    /// `VERB element` commands for `elements`, by set (sets and elements in text order,
    /// each element once), written straight from the elements.
    fn elements<'e>(&mut self, verb: &str, elements: impl IntoIterator<Item = ElementRef<'e>>) {
        let mut by_set: BTreeMap<&'static str, Vec<ElementRef<'e>>> = BTreeMap::new();
        for element in elements {
            by_set.entry(element.set).or_default().push(element);
        }
        for (set, mut group) in by_set {
            sort_unique(&mut group);
            for chunk in group.chunks(ELEMENTS_PER_COMMAND) {
                self.element_command(verb, set, chunk);
            }
        }
    }

    /// One `VERB element` command for `chunk` of set `set`.
    fn element_command(&mut self, verb: &str, set: &str, chunk: &[ElementRef<'_>]) {
        let _ = write!(self.out, "{verb} element {} {set} {{ ", self.table);
        for (i, element) in chunk.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.out.push_str(element.key);
            if let Some(value) = element.value {
                self.out.push_str(" : ");
                self.out.push_str(value);
            }
        }
        self.out.push_str(" }\n");
    }

    /// Hands what was written so far to `sink` once it is at least a piece long.
    async fn spill(&mut self, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        if self.out.len() >= PIECE {
            self.flush(sink).await?;
        }
        Ok(())
    }

    /// Hands all that was written so far to `sink`.
    async fn flush(&mut self, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        sink.write_all(self.out.as_bytes()).await?;
        self.out.clear();
        Ok(())
    }
}

/// Elements in text order, each once. Unstable: elements that compare equal write the
/// same text (and are deduplicated).
fn sort_unique(group: &mut Vec<ElementRef<'_>>) {
    group.sort_unstable_by(text_order);
    group.dedup_by(|a, b| text_order(a, b).is_eq());
}

/// Loads the table over whatever it holds, in one transaction: the static part `statics`
/// and every port of `ports` (what will be committed); every chain and static set is
/// emptied and refilled, objects no longer wanted (`existing` minus wanted) are deleted,
/// and the dynamic affinity sets that are still wanted keep their entries.
///
/// Written in pieces while `nft` reads them: a full load at 50k Services is tens of MB,
/// and its elements are gathered and sorted one set at a time.
pub(crate) struct FullScript<'a> {
    pub(crate) family: IpFamily,
    pub(crate) statics: &'a StaticTable,
    pub(crate) ports: &'a Committed,
    pub(crate) name: &'a str,
    pub(crate) existing: &'a (BTreeSet<String>, BTreeSet<String>),
}

#[async_trait::async_trait]
impl WriteInput for FullScript<'_> {
    async fn write_to(&mut self, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        let table = format!("{} {}", Family(self.family).keyword(), self.name);
        let mut s = Script::new(&table);
        self.declarations(&mut s, sink).await?;
        s.line(format_args!("flush table {table}"));
        for set in &self.statics.sets {
            s.line(format_args!("flush {} {table} {}", set.kind, set.name));
        }
        self.delete_stale(&mut s);
        for chain in &self.statics.chains {
            s.chain_rules(&chain.chain);
        }
        for (chain, rules) in self.ports.chains() {
            s.rules(chain, rules);
            s.spill(sink).await?;
        }
        self.elements(&mut s, sink).await?;
        s.flush(sink).await
    }
}

impl FullScript<'_> {
    /// The table, its sets, counters and chains (each created if missing).
    async fn declarations(
        &self,
        s: &mut Script<'_>,
        sink: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> std::io::Result<()> {
        let (statics, ports, table) = (self.statics, self.ports, s.table);
        s.line(format_args!("add table {table}"));
        for set in &statics.sets {
            s.line(format_args!("add {} {table} {} {{ {} }}", set.kind, set.name, set.spec));
        }
        for (set, spec) in ports.sets() {
            s.line(format_args!("add set {table} {set} {{ {spec} }}"));
            s.spill(sink).await?;
        }
        // Kept with their counts: `flush table` leaves counters alone.
        for counter in &statics.counters {
            s.line(format_args!("add counter {table} {counter}"));
        }
        for chain in &statics.chains {
            match chain.hook {
                Some(hook) => s.line(format_args!("add chain {table} {} {{ {hook} }}", chain.chain.name)),
                None => s.line(format_args!("add chain {table} {}", chain.chain.name)),
            }
        }
        for (chain, _) in ports.chains() {
            s.line(format_args!("add chain {table} {chain}"));
            s.spill(sink).await?;
        }
        Ok(())
    }

    /// Deletes the chains and sets of `existing` that are no longer wanted.
    fn delete_stale(&self, s: &mut Script<'_>) {
        let (statics, ports, table) = (self.statics, self.ports, s.table);
        let wanted_chains: BTreeSet<&str> =
            statics.chains.iter().map(|c| c.chain.name.as_str()).chain(ports.chains().map(|(n, _)| n)).collect();
        for stale in self.existing.0.iter().filter(|c| !wanted_chains.contains(c.as_str())) {
            s.line(format_args!("delete chain {table} {stale}"));
        }
        let wanted_sets: BTreeSet<&str> =
            statics.sets.iter().map(|x| x.name).chain(ports.sets().map(|(n, _)| n)).collect();
        for stale in self.existing.1.iter().filter(|x| !wanted_sets.contains(x.as_str())) {
            s.line(format_args!("delete set {table} {stale}"));
        }
    }

    /// Every element, a set at a time (sets and elements in text order, each once).
    async fn elements(&self, s: &mut Script<'_>, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        let (statics, ports) = (self.statics, self.ports);
        let sets: BTreeSet<&'static str> = statics.elements.iter().map(|e| e.set).chain(ports.element_sets()).collect();
        for set in sets {
            let of_static = statics.elements.iter().filter(|e| e.set == set).map(ElementRef::from);
            let mut group: Vec<ElementRef<'_>> = of_static.chain(ports.elements_of(set)).collect();
            sort_unique(&mut group);
            for chunk in group.chunks(ELEMENTS_PER_COMMAND) {
                s.element_command("add", set, chunk);
                s.spill(sink).await?;
            }
        }
        Ok(())
    }
}

/// An element, borrowed (from a render, or from what was committed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElementRef<'a> {
    pub(crate) set: &'static str,
    pub(crate) key: &'a str,
    pub(crate) value: Option<&'a str>,
}

impl<'a> From<&'a Element> for ElementRef<'a> {
    fn from(element: &'a Element) -> Self {
        Self { set: element.set, key: &element.key, value: element.value.as_deref() }
    }
}

/// How the texts of two elements (`key` or `key : value`) order, without writing them.
/// Keys that differ within their common length decide at once (one slice comparison: a
/// full load sorts a million elements); otherwise the texts are compared byte by byte.
fn text_order(a: &ElementRef<'_>, b: &ElementRef<'_>) -> std::cmp::Ordering {
    let (ka, kb) = (a.key.as_bytes(), b.key.as_bytes());
    let common = ka.len().min(kb.len());
    match ka[..common].cmp(&kb[..common]) {
        std::cmp::Ordering::Equal => text_bytes(a).cmp(text_bytes(b)),
        decided => decided,
    }
}

/// The bytes of an element's text.
fn text_bytes<'a>(element: &ElementRef<'a>) -> impl Iterator<Item = &'a u8> {
    let value = element.value.map(|v| b" : ".iter().chain(v.as_bytes()));
    element.key.as_bytes().iter().chain(value.into_iter().flatten())
}

/// Deletes the table and loads `desired` from scratch, in one transaction (affinity state
/// is lost): the fallback when the table holds something `full_script` cannot reuse.
pub(crate) fn replace_script(desired: &TableRender, name: &str) -> String {
    let table = format!("{} {name}", Family(desired.family).keyword());
    format!("add table {table}\ndelete table {table}\n{}", render_text(desired, name))
}

/// Applies `delta` to table `family name`.
pub(crate) fn partial_script(family: &str, name: &str, delta: &Delta) -> String {
    let table = format!("{family} {name}");
    let mut s = Script::new(&table);
    for set in &delta.added_sets {
        s.line(format_args!("add set {table} {} {{ {} }}", set.name, set.spec));
    }
    for chain in &delta.added_chains {
        s.line(format_args!("add chain {table} {}", chain.name));
    }
    for chain in &delta.added_chains {
        s.chain_rules(chain);
    }
    for chain in &delta.replaced_chains {
        s.line(format_args!("flush chain {table} {}", chain.name));
        s.chain_rules(chain);
    }
    for element in &delta.removed_elements {
        let key = Element { value: None, ..element.clone() };
        s.line(format_args!("delete element {table} {} {{ {} }}", element.set, element_text(&key)));
    }
    s.elements("add", delta.added_elements.iter().map(ElementRef::from));
    for chain in &delta.removed_chains {
        s.line(format_args!("flush chain {table} {chain}"));
    }
    for chain in &delta.removed_chains {
        s.line(format_args!("delete chain {table} {chain}"));
    }
    for set in &delta.removed_sets {
        s.line(format_args!("delete set {table} {set}"));
    }
    s.out
}

/// Removes table `family name` if it exists (creating it first makes the delete succeed
/// when it does not).
pub(crate) fn cleanup_script(family: &str, name: &str) -> String {
    format!("add table {family} {name}\ndelete table {family} {name}\n")
}

#[cfg(test)]
mod tests {
    use kproxy_netfilter::nft_text::write_elements;

    use super::*;
    use crate::render::text::group_elements;

    fn element(set: &'static str, key: &str, value: Option<&str>) -> Element {
        Element { set, key: key.to_owned(), value: value.map(str::to_owned) }
    }

    /// What the element texts, grouped, sorted and unique, give as commands.
    fn by_texts(elements: &[&Element]) -> String {
        let mut out = String::new();
        for (set, items) in group_elements(elements.iter().copied()) {
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            write_elements(&mut out, "add", "ip t", set, &items, ELEMENTS_PER_COMMAND);
        }
        out
    }

    #[test]
    fn elements_are_written_by_set_in_text_order_each_once_in_bounded_commands() {
        let mut elements = vec![
            element("svc", "10.0.0.1 . 80", Some("goto x")),
            element("hairpin", "k", None),
            element("svc", "10.0.0.1 . 8080", None),
            element("svc", "10.0.0.1 . 80", Some("goto x")),
            element("svc", "10.0.0.1 . 80", Some("drop")),
            element("svc", "10.0.0.1 . 80", None),
            element("hairpin", "j", None),
        ];
        elements.extend((0..2500).map(|i| element("many", &format!("{} . {i}", i % 7), Some(&format!("{}", i % 3)))));
        let refs: Vec<&Element> = elements.iter().collect();
        let mut script = Script::new("ip t");
        script.elements("add", elements.iter().map(ElementRef::from));
        assert_eq!(script.out, by_texts(&refs));
        assert_eq!(script.out.lines().filter(|l| l.contains(" many ")).count(), 3, "at most 1000 per command");
    }

    #[test]
    fn elements_order_as_their_texts() {
        let elements = [
            element("s", "10.0.0.1 . 80", None),
            element("s", "10.0.0.1 . 80", Some("goto x")),
            element("s", "10.0.0.1 . 80", Some("drop")),
            element("s", "10.0.0.1 . 8080", None),
            element("s", "10.0.0.1 . 8", Some("a")),
            element("s", "10.0.0.1 . 8 ", None),
            element("s", "10.0.0.1 . 8 :", None),
            element("s", "10.0.0.1 . 8 : a", None),
            element("s", "10.0.0.10 . 80", None),
            element("s", "", Some("x")),
            element("s", "", None),
        ];
        let text = |e: &Element| match &e.value {
            Some(value) => format!("{} : {value}", e.key),
            None => e.key.clone(),
        };
        for a in &elements {
            for b in &elements {
                let order = text_order(&ElementRef::from(a), &ElementRef::from(b));
                assert_eq!(order, text(a).cmp(&text(b)), "{:?} vs {:?}", text(a), text(b));
            }
        }
    }
}
