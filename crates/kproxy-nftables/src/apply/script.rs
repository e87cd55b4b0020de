//! nft scripts: from-scratch replace, partial update, cleanup; the pieces the full load
//! (`full_load`) writes with.

use std::collections::BTreeMap;
use std::fmt::Write;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::committed::Delta;
use crate::Family;
use crate::render::text::element_text;
use crate::render::{Chain, Element, TableRender, render_text};

/// How many elements one `add element` command carries.
pub(super) const ELEMENTS_PER_COMMAND: usize = 1000;

/// A streamed script is handed over in pieces of at least this many bytes.
const PIECE: usize = 64 * 1024;

pub(super) struct Script<'a> {
    out: String,
    pub(super) table: &'a str,
}

impl<'a> Script<'a> {
    pub(super) fn new(table: &'a str) -> Self {
        Self { out: String::new(), table }
    }

    pub(super) fn line(&mut self, text: std::fmt::Arguments<'_>) {
        let _ = self.out.write_fmt(text);
        self.out.push('\n');
    }

    pub(super) fn chain_rules(&mut self, chain: &Chain) {
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

    /// One `VERB element` command for the elements written in `text` (`a, b : c`).
    pub(super) fn element_text_command(&mut self, verb: &str, set: &str, text: &str) {
        let _ = writeln!(self.out, "{verb} element {} {set} {{ {text} }}", self.table);
    }

    /// Hands what was written so far to `sink` once it is at least a piece long.
    pub(super) async fn spill(&mut self, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        if self.out.len() >= PIECE {
            self.flush(sink).await?;
        }
        Ok(())
    }

    /// Hands all that was written so far to `sink`.
    pub(super) async fn flush(&mut self, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        sink.write_all(self.out.as_bytes()).await?;
        self.out.clear();
        Ok(())
    }
}

/// Elements by set, then in text order, each once. Unstable: elements that compare equal
/// write the same text in the same set (and are deduplicated).
pub(super) fn sort_unique(group: &mut Vec<ElementRef<'_>>) {
    let order = |a: &ElementRef<'_>, b: &ElementRef<'_>| a.set.cmp(b.set).then_with(|| text_order(a, b));
    group.sort_unstable_by(order);
    group.dedup_by(|a, b| order(a, b).is_eq());
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
