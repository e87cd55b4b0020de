//! `FakeIptables`: an in-memory iptables that applies restore text the way
//! `iptables-restore --noflush` does, so tests can check what a sequence of syncs leaves.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::IptablesRunner;
use crate::command::CommandError;

/// Targets that are not chains.
const TARGETS: &[&str] =
    &["ACCEPT", "DROP", "RETURN", "REJECT", "MARK", "MASQUERADE", "DNAT", "SNAT", "LOG", "CONNMARK", "NOTRACK"];

/// One table: chains and their rules (each the text after `-A CHAIN `).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    builtin: Vec<&'static str>,
    chains: BTreeMap<String, Vec<String>>,
}

impl Table {
    fn new(name: &str) -> Self {
        let builtin: Vec<&'static str> = match name {
            "filter" => vec!["INPUT", "FORWARD", "OUTPUT"],
            "nat" => vec!["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            _ => vec!["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        };
        let chains = builtin.iter().map(|c| ((*c).to_owned(), Vec::new())).collect();
        Self { builtin, chains }
    }

    fn save(&self, name: &str) -> String {
        let mut out = format!("*{name}\n");
        let user = self.chains.keys().filter(|c| !self.builtin.contains(&c.as_str()));
        for chain in &self.builtin {
            out.push_str(&format!(":{chain} ACCEPT [0:0]\n"));
        }
        for chain in user.clone() {
            out.push_str(&format!(":{chain} - [0:0]\n"));
        }
        for chain in self.builtin.iter().map(|c| (*c).to_owned()).chain(user.cloned()) {
            for rule in &self.chains[&chain] {
                out.push_str(&format!("-A {chain} {rule}\n"));
            }
        }
        out.push_str("COMMIT\n");
        out
    }

    fn rules(&mut self, chain: &str) -> Result<&mut Vec<String>, String> {
        self.chains.get_mut(chain).ok_or_else(|| format!("no chain {chain}"))
    }

    fn check_target(&self, rule: &str) -> Result<(), String> {
        match target_of(rule) {
            Some(t) if !TARGETS.contains(&t) && !self.chains.contains_key(t) => Err(format!("no chain/target {t}")),
            _ => Ok(()),
        }
    }

    fn references(&self, chain: &str) -> bool {
        self.chains.values().flatten().any(|rule| target_of(rule) == Some(chain))
    }

    /// Applies one line of a table section.
    fn apply(&mut self, line: &str) -> Result<(), String> {
        let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
        match command {
            _ if line.starts_with(':') => {
                let name = line[1..].split_whitespace().next().unwrap_or_default();
                if !self.builtin.contains(&name) {
                    self.chains.insert(name.to_owned(), Vec::new());
                }
                Ok(())
            }
            "-A" => {
                self.check_target(spec)?;
                self.rules(chain)?.push(spec.to_owned());
                Ok(())
            }
            "-I" => self.insert(chain, spec),
            "-D" => {
                let rules = self.rules(chain)?;
                let at = rules.iter().position(|r| r == spec).ok_or_else(|| format!("no such rule in {chain}"))?;
                rules.remove(at);
                Ok(())
            }
            "-X" => self.delete_chain(chain),
            other => Err(format!("unsupported command {other}")),
        }
    }

    fn insert(&mut self, chain: &str, spec: &str) -> Result<(), String> {
        let (position, spec) = match spec.split_once(' ') {
            Some((n, rest)) if n.parse::<usize>().is_ok() => (n.parse::<usize>().unwrap_or(1), rest),
            _ => (1, spec),
        };
        self.check_target(spec)?;
        let rules = self.rules(chain)?;
        let at = position.saturating_sub(1).min(rules.len());
        rules.insert(at, spec.to_owned());
        Ok(())
    }

    fn delete_chain(&mut self, chain: &str) -> Result<(), String> {
        if self.builtin.contains(&chain) {
            return Err(format!("cannot delete built-in chain {chain}"));
        }
        match self.chains.get(chain) {
            None => Err(format!("no chain {chain}")),
            Some(rules) if !rules.is_empty() => Err(format!("chain {chain} is not empty")),
            Some(_) if self.references(chain) => Err(format!("chain {chain} is still referenced")),
            Some(_) => {
                self.chains.remove(chain);
                Ok(())
            }
        }
    }
}

/// The `-j` target of a rule.
fn target_of(rule: &str) -> Option<&str> {
    let mut words = rule.split_whitespace();
    words.by_ref().find(|w| *w == "-j")?;
    words.next()
}

#[derive(Debug, Default)]
struct State {
    tables: BTreeMap<String, Table>,
    restores: Vec<String>,
    calls: Vec<String>,
    fail_next: usize,
    route_localnet: bool,
}

impl State {
    /// Applies restore text; each `COMMIT` commits its table, an error abandons the
    /// table being parsed (earlier committed tables stay, as with the real tool).
    fn restore(&mut self, text: &str) -> Result<(), String> {
        let mut open: Option<(String, Table)> = None;
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('*') {
                let table = self.tables.get(name).cloned().unwrap_or_else(|| Table::new(name));
                open = Some((name.to_owned(), table));
            } else if line == "COMMIT" {
                let (name, table) = open.take().ok_or_else(|| format!("line {n}: COMMIT outside a table"))?;
                self.tables.insert(name, table);
            } else {
                let (_, table) = open.as_mut().ok_or_else(|| format!("line {n}: rule outside a table"))?;
                table.apply(line).map_err(|e| format!("line {n} ({line}): {e}"))?;
            }
        }
        match open {
            Some((name, _)) => Err(format!("table {name} has no COMMIT")),
            None => Ok(()),
        }
    }
}

/// A fake iptables for one family: restore text is parsed and applied to in-memory
/// tables (chains must exist before rules jump to them, `-X` needs an empty, unreferenced
/// chain), `save` prints them back, and every call is recorded.
#[derive(Debug, Clone, Default)]
pub struct FakeIptables {
    inner: Arc<Mutex<State>>,
}

impl FakeIptables {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every restore text received (failed ones included).
    pub fn restores(&self) -> Vec<String> {
        self.lock().restores.clone()
    }

    /// Every call, in order: `restore`, `save nat`, `chain_exists mangle KUBE-PROXY-CANARY`…
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Makes the next `n` restores fail without applying anything.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    /// The chains of `table` (built-in ones included) with their rules.
    pub fn chains(&self, table: &str) -> BTreeMap<String, Vec<String>> {
        self.lock().tables.get(table).map(|t| t.chains.clone()).unwrap_or_default()
    }

    /// Removes every table, as a firewall restart would.
    pub fn wipe(&self) {
        self.lock().tables.clear();
    }

    /// Whether `enable_route_localnet` was called.
    pub fn route_localnet(&self) -> bool {
        self.lock().route_localnet
    }
}

fn failed(tool: &str, stderr: String) -> CommandError {
    CommandError::Failed { tool: tool.to_owned(), status: "exit status: 1".to_owned(), stderr }
}

#[async_trait::async_trait]
impl IptablesRunner for FakeIptables {
    async fn restore(&self, text: &str) -> Result<(), CommandError> {
        let mut state = self.lock();
        state.restores.push(text.to_owned());
        state.calls.push("restore".to_owned());
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return Err(failed("iptables-restore", "fake failure".to_owned()));
        }
        state.restore(text).map_err(|e| failed("iptables-restore", e))
    }

    async fn save(&self, table: &str) -> Result<String, CommandError> {
        let mut state = self.lock();
        state.calls.push(format!("save {table}").trim_end().to_owned());
        if table.is_empty() {
            return Ok(state.tables.iter().map(|(name, t)| t.save(name)).collect());
        }
        Ok(state.tables.get(table).map(|t| t.save(table)).unwrap_or_default())
    }

    async fn chain_exists(&self, table: &str, chain: &str) -> Result<bool, CommandError> {
        let mut state = self.lock();
        state.calls.push(format!("chain_exists {table} {chain}"));
        Ok(state.tables.get(table).is_some_and(|t| t.chains.contains_key(chain)))
    }

    async fn enable_route_localnet(&self) -> Result<(), CommandError> {
        let mut state = self.lock();
        state.calls.push("route_localnet".to_owned());
        state.route_localnet = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_follows_noflush_semantics() {
        let mut state = State::default();
        let load = "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-A -j KUBE-B\n-I PREROUTING 1 -j KUBE-A\nCOMMIT\n";
        state.restore(load).expect("loads");
        assert_eq!(state.tables["nat"].chains["KUBE-A"], ["-j KUBE-B"]);
        // KUBE-B is still referenced by KUBE-A: deleting it fails and leaves the table.
        assert!(state.restore("*nat\n-X KUBE-B\nCOMMIT\n").is_err());
        assert!(state.restore("*nat\n-A KUBE-A -j KUBE-MISSING\nCOMMIT\n").is_err());
        state.restore("*nat\n:KUBE-A - [0:0]\n-X KUBE-B\nCOMMIT\n").expect("flush then delete");
        assert!(state.tables["nat"].chains["KUBE-A"].is_empty());
        assert!(!state.tables["nat"].chains.contains_key("KUBE-B"));
        assert!(state.tables["nat"].save("nat").contains("-A PREROUTING -j KUBE-A\n"));
    }
}
