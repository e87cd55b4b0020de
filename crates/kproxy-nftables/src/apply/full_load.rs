//! The full load, written while it is rendered: each service port is rendered, its new
//! chains, sets and elements written, and the port taken into what will be committed,
//! one port at a time, while `nft` already reads what came before. Neither the whole
//! render nor the whole script is ever held, and rendering overlaps `nft`'s own work.

use std::collections::{BTreeMap, BTreeSet};

use kproxy_core::render::entries;
use kproxy_core::{FamilyState, ServicePortName};
use kproxy_netfilter::WriteInput;
use tokio::io::AsyncWrite;

use super::committed::Committed;
use super::script::{ELEMENTS_PER_COMMAND, ElementRef, Script, sort_unique};
use crate::render::{PortRender, RenderContext, StaticTable, render_port};

/// Chains and sets an existing table holds (from its listing).
pub(crate) type Existing = (BTreeSet<String>, BTreeSet<String>);

/// Loads the table over whatever it holds, in one transaction: the static part and every
/// port of `ports`; every chain and static set is emptied and refilled, objects no longer
/// wanted (`existing` minus wanted) are deleted, and the dynamic affinity sets still
/// wanted keep their entries. What was written is in [`FullLoad::committed`] afterwards.
pub(crate) struct FullLoad<'a> {
    pub(crate) ctx: &'a RenderContext<'a>,
    pub(crate) statics: &'a StaticTable,
    pub(crate) ports: &'a FamilyState,
    /// The table's name.
    pub(crate) name: &'a str,
    pub(crate) existing: &'a Existing,
    /// What the table holds once the script is applied.
    pub(crate) committed: Committed,
}

#[async_trait::async_trait]
impl WriteInput for FullLoad<'_> {
    async fn write_to(&mut self, sink: &mut (dyn AsyncWrite + Unpin + Send)) -> std::io::Result<()> {
        self.committed = Committed::default();
        let table = format!("{} {}", self.ctx.family.keyword(), self.name);
        let mut s = Script::new(&table);
        let mut batches = Batches::default();
        self.statics(&mut s, &mut batches);
        for entry in entries(self.ports) {
            let render = render_port(self.ctx, entry);
            self.port(&mut s, &mut batches, entry.name, render);
            s.spill(sink).await?;
        }
        batches.finish(&mut s);
        self.delete_stale(&mut s);
        s.flush(sink).await
    }
}

impl FullLoad<'_> {
    /// The table and its static sets, counters and chains (each created if missing), the
    /// flush of every chain and static set, the static rules and elements.
    fn statics(&self, s: &mut Script<'_>, batches: &mut Batches) {
        let (statics, table) = (self.statics, s.table);
        s.line(format_args!("add table {table}"));
        for set in &statics.sets {
            s.line(format_args!("add {} {table} {} {{ {} }}", set.kind, set.name, set.spec));
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
        s.line(format_args!("flush table {table}"));
        for set in &statics.sets {
            s.line(format_args!("flush {} {table} {}", set.kind, set.name));
        }
        for chain in &statics.chains {
            s.chain_rules(&chain.chain);
        }
        let mut elements: Vec<ElementRef<'_>> = statics.elements.iter().map(ElementRef::from).collect();
        sort_unique(&mut elements);
        batches.add(s, &elements);
    }

    /// One port: the sets and chains no port before it declared (chains with their
    /// rules), its elements (shared ones only if new), then its bookkeeping.
    fn port(&mut self, s: &mut Script<'_>, batches: &mut Batches, name: &ServicePortName, render: PortRender) {
        let table = s.table;
        for set in render.sets.iter().filter(|set| !self.committed.has_set(&set.name)) {
            s.line(format_args!("add set {table} {} {{ {} }}", set.name, set.spec));
        }
        for chain in render.chains.iter().filter(|chain| !self.committed.has_chain(&chain.name)) {
            s.line(format_args!("add chain {table} {}", chain.name));
            s.chain_rules(chain);
        }
        let mut elements: Vec<ElementRef<'_>> =
            render.elements.iter().filter(|e| self.committed.is_new(e)).map(ElementRef::from).collect();
        sort_unique(&mut elements);
        batches.add(s, &elements);
        self.committed.add(name.clone(), render);
    }

    /// Deletes the chains and sets of `existing` that are no longer wanted (emptied by
    /// the flush above, and no longer referenced by anything refilled).
    fn delete_stale(&self, s: &mut Script<'_>) {
        let (statics, table) = (self.statics, s.table);
        let static_chains: BTreeSet<&str> = statics.chains.iter().map(|c| c.chain.name.as_str()).collect();
        let stale_chains = self.existing.0.iter().filter(|c| !static_chains.contains(c.as_str()));
        for stale in stale_chains.filter(|c| !self.committed.has_chain(c)) {
            s.line(format_args!("delete chain {table} {stale}"));
        }
        let static_sets: BTreeSet<&str> = statics.sets.iter().map(|x| x.name).collect();
        let stale_sets = self.existing.1.iter().filter(|x| !static_sets.contains(x.as_str()));
        for stale in stale_sets.filter(|x| !self.committed.has_set(x)) {
            s.line(format_args!("delete set {table} {stale}"));
        }
    }
}

/// Element texts waiting for their `add element` command, by set: a command carries up to
/// [`ELEMENTS_PER_COMMAND`] (one command per element costs `nft` a quarter more).
#[derive(Default)]
struct Batches {
    by_set: BTreeMap<&'static str, (String, usize)>,
}

impl Batches {
    /// Adds `elements`, writing every batch that fills up.
    fn add(&mut self, s: &mut Script<'_>, elements: &[ElementRef<'_>]) {
        for element in elements {
            let (text, count) = self.by_set.entry(element.set).or_default();
            if *count > 0 {
                text.push_str(", ");
            }
            text.push_str(element.key);
            if let Some(value) = element.value {
                text.push_str(" : ");
                text.push_str(value);
            }
            *count += 1;
            if *count == ELEMENTS_PER_COMMAND {
                s.element_text_command("add", element.set, text);
                text.clear();
                *count = 0;
            }
        }
    }

    /// Writes what is left, by set.
    fn finish(self, s: &mut Script<'_>) {
        for (set, (text, count)) in self.by_set {
            if count > 0 {
                s.element_text_command("add", set, &text);
            }
        }
    }
}

#[cfg(test)]
#[path = "full_load_tests.rs"]
mod tests;
