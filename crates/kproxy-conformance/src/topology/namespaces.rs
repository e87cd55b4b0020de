//! The set of namespaces of one cluster: unique names, creation, and removal on drop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Error, netns};

/// Prefix of every namespace this crate creates: `kpc<pid>x<seq>-<host>`.
pub(crate) const NAME_PREFIX: &str = "kpc";

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// Namespaces created for one cluster, keyed by host name; all are deleted on drop.
#[derive(Debug)]
pub(crate) struct Namespaces {
    prefix: String,
    by_host: BTreeMap<&'static str, String>,
}

impl Namespaces {
    /// Creates one namespace per host. On failure, those already made are deleted.
    pub(crate) fn create(hosts: &[&'static str]) -> Result<Self, Error> {
        sweep_stale();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{NAME_PREFIX}{}x{seq}-", std::process::id());
        let mut set = Self { prefix, by_host: BTreeMap::new() };
        for host in hosts {
            let name = format!("{}{host}", set.prefix);
            netns::ip_batch(None, &format!("netns add {name}\n"))?;
            set.by_host.insert(host, name);
        }
        Ok(set)
    }

    /// The prefix shared by every namespace of this set.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace of `host`.
    pub(crate) fn of(&self, host: &str) -> Result<&str, Error> {
        self.by_host.get(host).map(String::as_str).ok_or_else(|| Error::new(format!("no host named {host:?}")))
    }

    /// Every (host, namespace) pair.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.by_host.iter().map(|(h, n)| (*h, n.as_str()))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.by_host.values() {
            delete(name);
        }
    }
}

/// Deletes namespace `name`, reporting (not failing) when that does not work.
fn delete(name: &str) {
    if let Err(e) = netns::ip_batch(None, &format!("netns del {name}\n")) {
        eprintln!("kproxy-conformance: could not delete namespace {name}: {e}");
    }
}

/// Deletes namespaces left by runs of this crate whose process is gone (killed mid-run).
fn sweep_stale() {
    for name in netns::list() {
        let Some(pid) = name.strip_prefix(NAME_PREFIX).and_then(|rest| rest.split_once('x')).map(|(pid, _)| pid) else {
            continue;
        };
        let alive = std::path::Path::new("/proc").join(pid).exists();
        if pid.parse::<u32>().is_ok() && !alive {
            delete(&name);
        }
    }
}
