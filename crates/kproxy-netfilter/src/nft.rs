//! `nft -f -` transactions.

use std::sync::{Arc, Mutex, PoisonError};

use kproxy_core::IpFamily;

use crate::command::{CommandError, Netns, WriteInput, input_text};

/// Runs nft scripts. A script is one transaction: it applies whole or not at all.
#[async_trait::async_trait]
pub trait NftRunner: Send + Sync {
    /// Applies `script` (`nft -f -`).
    async fn apply(&self, script: &str) -> Result<(), CommandError>;

    /// Applies the script `script` writes, fed to `nft` while it is written (a full load
    /// at 50k Services is tens of MB of text). By default it is written whole, then applied.
    async fn apply_streamed(&self, script: &mut dyn WriteInput) -> Result<(), CommandError> {
        let text =
            input_text(script).await.map_err(|source| CommandError::Io { tool: "nft -f -".to_owned(), source })?;
        self.apply(&text).await
    }

    /// Runs a listing command (e.g. `list chains ip kproxy`) and returns its text.
    async fn list(&self, what: &str) -> Result<String, CommandError>;

    /// The packets counted by the named counter `name` of table `table` in `family`
    /// (`None`: no such counter), without listing the ruleset.
    async fn counter_packets(&self, family: IpFamily, table: &str, name: &str) -> Result<Option<u64>, CommandError>;
}

/// The real `nft`, in this namespace or a named one.
#[derive(Debug, Clone, Default)]
pub struct ExecNft {
    netns: Netns,
}

impl ExecNft {
    /// `nft` in `netns` (`None`: this process's namespace).
    pub fn new(netns: Option<String>) -> Self {
        Self { netns: Netns(netns) }
    }
}

#[async_trait::async_trait]
impl NftRunner for ExecNft {
    async fn apply(&self, script: &str) -> Result<(), CommandError> {
        self.netns.run(&["nft", "-f", "-"], script).await.map(drop)
    }

    async fn apply_streamed(&self, script: &mut dyn WriteInput) -> Result<(), CommandError> {
        self.netns.run_streamed(&["nft", "-f", "-"], script).await.map(drop)
    }

    async fn list(&self, what: &str) -> Result<String, CommandError> {
        let mut args = vec!["nft"];
        args.extend(what.split_whitespace());
        self.netns.run(&args, "").await
    }

    async fn counter_packets(&self, family: IpFamily, table: &str, name: &str) -> Result<Option<u64>, CommandError> {
        crate::named_counter_packets(self.netns.0.clone(), family, table, name).await
    }
}

/// A fake `nft`: records every script, answers listings from a canned text, knows the
/// named counters the scripts declared, and can be told to fail.
#[derive(Debug, Clone, Default)]
pub struct FakeNft {
    inner: Arc<Mutex<FakeNftState>>,
}

#[derive(Debug, Default)]
struct FakeNftState {
    scripts: Vec<String>,
    listing: String,
    fail_next: usize,
    counters: std::collections::BTreeMap<(IpFamily, String), u64>,
    /// The tables the scripts made and did not delete: family keyword and name.
    tables: std::collections::BTreeSet<(String, String)>,
}

impl FakeNftState {
    /// Tables and counters the script makes exist from now on (counters counting nothing
    /// yet); a deleted table takes its family's counters with it.
    fn track_objects(&mut self, script: &str) {
        // The family of the `table FAMILY NAME { … }` block being read, if any.
        let mut block = None;
        for line in script.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["add", "counter", family, _table, name, ..] => {
                    if let Some(family) = family_of(family) {
                        self.counters.entry((family, (*name).to_owned())).or_insert(0);
                    }
                }
                ["add", "table", family, table] | ["table", family, table, "{}"] => {
                    self.tables.insert(((*family).to_owned(), (*table).to_owned()));
                }
                ["table", family, table, "{"] => {
                    self.tables.insert(((*family).to_owned(), (*table).to_owned()));
                    block = family_of(family);
                }
                ["counter", name, "{", ..] => {
                    if let Some(family) = block {
                        self.counters.entry((family, (*name).to_owned())).or_insert(0);
                    }
                }
                ["delete", "table", family, table] => {
                    self.tables.remove(&((*family).to_owned(), (*table).to_owned()));
                    if let Some(family) = family_of(family) {
                        self.counters.retain(|(f, _), _| *f != family);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The family of an nft family keyword.
fn family_of(keyword: &str) -> Option<IpFamily> {
    match keyword {
        "ip" => Some(IpFamily::V4),
        "ip6" => Some(IpFamily::V6),
        _ => None,
    }
}

impl FakeNft {
    /// Forgets the tables of `family`, as if someone deleted them (their counters go).
    pub fn drop_tables(&self, family: IpFamily) {
        let mut state = self.lock();
        state.counters.retain(|(f, _), _| *f != family);
        state.tables.retain(|(f, _)| family_of(f) != Some(family));
    }

    /// Every script applied so far (failed ones included).
    pub fn scripts(&self) -> Vec<String> {
        self.lock().scripts.clone()
    }

    /// Makes the next `n` applies fail.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    /// Sets what counter `name` of `family`'s table has counted.
    pub fn set_counter(&self, family: IpFamily, name: &str, packets: u64) {
        self.lock().counters.insert((family, name.to_owned()), packets);
    }

    /// Sets what `list` answers.
    pub fn set_listing(&self, text: &str) {
        text.clone_into(&mut self.lock().listing);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeNftState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl NftRunner for FakeNft {
    async fn apply(&self, script: &str) -> Result<(), CommandError> {
        let mut state = self.lock();
        state.scripts.push(script.to_owned());
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(CommandError::Failed {
                tool: "nft -f -".to_owned(),
                status: "exit status: 1".to_owned(),
                stderr: "fake failure".to_owned(),
            });
        }
        state.track_objects(script);
        Ok(())
    }

    async fn list(&self, what: &str) -> Result<String, CommandError> {
        let state = self.lock();
        let words: Vec<&str> = what.split_whitespace().collect();
        // Listing one table or chain fails, as the real one does, when its table is gone.
        if let ["list", "table" | "chain", family, table, ..] = words.as_slice()
            && !state.tables.contains(&((*family).to_owned(), (*table).to_owned()))
        {
            return Err(CommandError::Failed {
                tool: format!("nft {what}"),
                status: "exit status: 1".to_owned(),
                stderr: "Error: No such file or directory".to_owned(),
            });
        }
        Ok(state.listing.clone())
    }

    async fn counter_packets(&self, family: IpFamily, _table: &str, name: &str) -> Result<Option<u64>, CommandError> {
        Ok(self.lock().counters.get(&(family, name.to_owned())).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_knows_the_counters_scripts_declare_until_their_table_goes() {
        let nft = FakeNft::default();
        let count = |nft: FakeNft, family| async move { nft.counter_packets(family, "t", "c").await.unwrap() };
        assert_eq!(count(nft.clone(), IpFamily::V4).await, None);
        nft.apply("add table ip t\nadd counter ip t c\n").await.unwrap();
        assert_eq!(count(nft.clone(), IpFamily::V4).await, Some(0));
        assert_eq!(count(nft.clone(), IpFamily::V6).await, None, "the other family has none");
        nft.set_counter(IpFamily::V4, "c", 7);
        nft.apply("add counter ip t c\n").await.unwrap();
        assert_eq!(count(nft.clone(), IpFamily::V4).await, Some(7), "declaring again keeps the count");
        nft.apply("add table ip t\ndelete table ip t\n").await.unwrap();
        assert_eq!(count(nft.clone(), IpFamily::V4).await, None);
        nft.apply("table ip6 t {\n\tcounter c {\n\t}\n}\n").await.unwrap();
        assert_eq!(count(nft.clone(), IpFamily::V6).await, Some(0), "declared inside a table block");
        nft.drop_tables(IpFamily::V6);
        assert_eq!(count(nft.clone(), IpFamily::V6).await, None);
    }

    #[tokio::test]
    async fn the_fake_lists_a_table_or_chain_only_while_the_table_exists() {
        let nft = FakeNft::default();
        nft.set_listing("canned");
        assert!(nft.list("list chain ip t output").await.is_err(), "no table yet");
        assert_eq!(nft.list("list chains").await.unwrap(), "canned", "whole listings answer as set");
        nft.apply("table ip t {}\ndelete table ip t\ntable ip t {\n}\n").await.unwrap();
        assert_eq!(nft.list("list chain ip t output").await.unwrap(), "canned");
        assert!(nft.list("list table ip6 t").await.is_err(), "the other family has none");
        nft.drop_tables(IpFamily::V4);
        assert!(nft.list("list table ip t").await.is_err());
        nft.apply("add table ip t\n").await.unwrap();
        nft.apply("table ip t {}\ndelete table ip t\n").await.unwrap();
        assert!(nft.list("list table ip t").await.is_err(), "deleted");
    }
}
