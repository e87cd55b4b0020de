//! The seam between the sync engine and the kernel: the maps a sync writes.
//!
//! [`crate::kernel`] implements [`Maps`] on the real BPF maps; [`FakeMaps`] keeps them in
//! memory, logs every write and checks after each one that no exposed slot is a hole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use crate::layout::{
    KpAddr, KpAffinity, KpAffinityKey, KpClientKey, KpCt, KpCtKey, KpEndpointKey, KpExternal, KpRangeKey, KpService,
    KpServiceKey,
};

/// A map write that failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} on map {map}: {message}")]
pub struct MapError {
    /// `insert` or `remove`.
    pub op: &'static str,
    /// The map's name.
    pub map: &'static str,
    /// What the kernel said.
    pub message: String,
}

/// What the maps held when they were opened: empty for fresh maps, a previous kproxy's
/// entries for maps it pinned. Read once, at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// `kp_services`.
    pub services: BTreeMap<KpServiceKey, KpService>,
    /// `kp_external`.
    pub external: BTreeMap<KpServiceKey, KpExternal>,
    /// `kp_endpoints`.
    pub endpoints: BTreeMap<KpEndpointKey, KpAddr>,
    /// `kp_ranges`.
    pub ranges: BTreeSet<KpRangeKey>,
}

impl Contents {
    /// Whether every map was empty.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.external.is_empty() && self.endpoints.is_empty() && self.ranges.is_empty()
    }
}

/// Entries of the maps the programs fill (tc conntrack, affinity: LRU) that point at
/// endpoints a sync removed. Collected while a sync writes, deleted right after it by
/// [`Maps::forget`], the only time those maps are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stale {
    /// Endpoints gone from some set: the tracked flows to those no set has any more go
    /// (both directions).
    pub endpoints: BTreeSet<KpAddr>,
    /// Endpoints gone from a set (set id, endpoint): the set's affinity entries to them.
    pub members: BTreeSet<(u32, KpAddr)>,
    /// Sets gone altogether: every affinity entry of theirs.
    pub sets: BTreeSet<u32>,
}

/// Which of the endpoints given some set still has ([`crate::sync::Committed::in_use`]).
pub type InUse<'a> = &'a dyn Fn(&BTreeSet<KpAddr>) -> BTreeSet<KpAddr>;

impl Stale {
    /// Nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty() && self.members.is_empty() && self.sets.is_empty()
    }

    /// The removed endpoint `kp_conntrack`'s `key` → `value` belongs to a flow to, if any:
    /// the client's direction is rewritten to it, the reply's comes from it.
    pub fn conntrack(&self, key: &KpCtKey, value: &KpCt) -> Option<KpAddr> {
        let from = KpAddr { addr: key.saddr, port: key.sport, family: key.family, pad: 0 };
        let to = KpAddr { pad: 0, ..value.dst };
        [to, from].into_iter().find(|e| self.endpoints.contains(e))
    }

    /// Whether an affinity entry of set `set` (node clients' or outside clients') is stale.
    pub fn affinity(&self, set: u32, value: &KpAffinity) -> bool {
        self.sets.contains(&set) || self.members.contains(&(set, KpAddr { pad: 0, ..value.endpoint }))
    }
}

/// Of the conntrack entries `found` (key and the removed endpoint it points at), those to
/// delete: the ones whose endpoint no set has any more (asked of `in_use` only when some
/// entry points at a removed endpoint at all).
pub(crate) fn doomed_flows<K>(found: Vec<(K, KpAddr)>, in_use: InUse<'_>) -> Vec<K> {
    if found.is_empty() {
        return Vec::new();
    }
    let targets: BTreeSet<KpAddr> = found.iter().map(|(_, e)| *e).collect();
    let used = in_use(&targets);
    found.into_iter().filter(|(_, e)| !used.contains(e)).map(|(k, _)| k).collect()
}

/// What [`Maps::forget`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// `kp_conntrack` entries, per family (IPv4, IPv6).
    pub conntrack: [u64; 2],
    /// `kp_affinity` and `kp_client_affinity` entries.
    pub affinity: u64,
}

/// The index of a map family byte (4 or 6) in [`Forgotten::conntrack`].
pub(crate) fn family_index(family: u8) -> usize {
    usize::from(family == 6)
}

/// The writes a sync makes. Removing an absent key succeeds.
pub trait Maps: Send {
    /// Deletes the entries `stale` names from the maps the programs fill: `kp_conntrack`
    /// (read only when endpoints went) for flows to endpoints no set has any more, the
    /// affinity maps (read only when members or sets went).
    fn forget(&mut self, stale: &Stale, in_use: InUse<'_>) -> Result<Forgotten, MapError>;
    /// Everything the maps hold now (read when they are opened, never to sync).
    fn contents(&self) -> Result<Contents, MapError>;
    /// Sets a service address.
    fn put_service(&mut self, key: &KpServiceKey, value: &KpService) -> Result<(), MapError>;
    /// Removes a service address.
    fn delete_service(&mut self, key: &KpServiceKey) -> Result<(), MapError>;
    /// Sets an endpoint slot.
    fn put_endpoint(&mut self, key: &KpEndpointKey, value: &KpAddr) -> Result<(), MapError>;
    /// Removes an endpoint slot.
    fn delete_endpoint(&mut self, key: &KpEndpointKey) -> Result<(), MapError>;
    /// Sets a service address for traffic from outside (`kp_external`).
    fn put_external(&mut self, key: &KpServiceKey, value: &KpExternal) -> Result<(), MapError>;
    /// Removes a service address for traffic from outside.
    fn delete_external(&mut self, key: &KpServiceKey) -> Result<(), MapError>;
    /// Adds a source range (`kp_ranges`).
    fn put_range(&mut self, key: &KpRangeKey) -> Result<(), MapError>;
    /// Removes a source range.
    fn delete_range(&mut self, key: &KpRangeKey) -> Result<(), MapError>;
}

/// One write, as [`FakeMaps`] logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// `put_service`.
    PutService(KpServiceKey, KpService),
    /// `delete_service`.
    DeleteService(KpServiceKey),
    /// `put_endpoint`.
    PutEndpoint(KpEndpointKey, KpAddr),
    /// `delete_endpoint`.
    DeleteEndpoint(KpEndpointKey),
    /// `put_external`.
    PutExternal(KpServiceKey, KpExternal),
    /// `delete_external`.
    DeleteExternal(KpServiceKey),
    /// `put_range`.
    PutRange(KpRangeKey),
    /// `delete_range`.
    DeleteRange(KpRangeKey),
}

/// The contents of [`FakeMaps`].
#[derive(Debug, Clone, Default)]
pub struct FakeTables {
    /// `kp_services`.
    pub services: BTreeMap<KpServiceKey, KpService>,
    /// `kp_endpoints`.
    pub endpoints: BTreeMap<KpEndpointKey, KpAddr>,
    /// `kp_external`.
    pub external: BTreeMap<KpServiceKey, KpExternal>,
    /// `kp_ranges`.
    pub ranges: BTreeSet<KpRangeKey>,
    /// `kp_conntrack` (the tc programs fill it).
    pub conntrack: BTreeMap<KpCtKey, KpCt>,
    /// `kp_affinity` (the socket programs fill it).
    pub affinity: BTreeMap<KpAffinityKey, KpAffinity>,
    /// `kp_client_affinity` (the tc programs fill it).
    pub client_affinity: BTreeMap<KpClientKey, KpAffinity>,
    /// How many times one of those three was read through.
    pub scans: usize,
    /// Every write, in order.
    pub log: Vec<Write>,
    /// Service addresses that, after some write, exposed a slot that did not exist.
    pub holes: Vec<String>,
    /// Fail every write after this many more have succeeded.
    pub fail_after: Option<usize>,
}

impl FakeTables {
    /// The endpoints `key` balances over, in slot order, as a program would see them.
    pub fn endpoints_of(&self, key: &KpServiceKey) -> Option<Vec<std::net::SocketAddr>> {
        let service = self.services.get(key)?;
        (0..service.count)
            .map(|slot| self.endpoints.get(&KpEndpointKey { service_id: service.id, slot }).map(KpAddr::socket_addr))
            .collect()
    }

    /// The endpoints `key` balances traffic from outside over, in slot order.
    pub fn external_endpoints_of(&self, key: &KpServiceKey) -> Option<Vec<std::net::SocketAddr>> {
        let service = self.external.get(key)?.service;
        (0..service.count)
            .map(|slot| self.endpoints.get(&KpEndpointKey { service_id: service.id, slot }).map(KpAddr::socket_addr))
            .collect()
    }

    fn check_holes(&mut self) {
        let external = self.external.iter().map(|(k, v)| (k, &v.service));
        for (key, service) in self.services.iter().chain(external) {
            let hole = (0..service.count)
                .any(|slot| !self.endpoints.contains_key(&KpEndpointKey { service_id: service.id, slot }));
            if hole {
                self.holes.push(format!("{} after write {}", key.socket_addr(), self.log.len()));
            }
        }
    }
}

/// In-memory maps shared with the test that made them.
#[derive(Debug, Clone, Default)]
pub struct FakeMaps {
    tables: Arc<Mutex<FakeTables>>,
}

impl FakeMaps {
    /// Empty maps.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the contents now.
    pub fn snapshot(&self) -> FakeTables {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Adds entries as the programs would.
    pub fn seed(&self, seed: impl FnOnce(&mut FakeTables)) {
        seed(&mut self.tables.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Makes every write after the next `n` fail.
    pub fn fail_after(&self, n: Option<usize>) {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).fail_after = n;
    }

    fn write(&self, map: &'static str, write: Write) -> Result<(), MapError> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        match tables.fail_after {
            Some(0) => return Err(MapError { op: "write", map, message: "injected failure".to_owned() }),
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        match &write {
            Write::PutService(k, v) => {
                tables.services.insert(*k, *v);
            }
            Write::DeleteService(k) => {
                tables.services.remove(k);
            }
            Write::PutEndpoint(k, v) => {
                tables.endpoints.insert(*k, *v);
            }
            Write::DeleteEndpoint(k) => {
                tables.endpoints.remove(k);
            }
            Write::PutExternal(k, v) => {
                tables.external.insert(*k, *v);
            }
            Write::DeleteExternal(k) => {
                tables.external.remove(k);
            }
            Write::PutRange(k) => {
                tables.ranges.insert(*k);
            }
            Write::DeleteRange(k) => {
                tables.ranges.remove(k);
            }
        }
        tables.log.push(write);
        tables.check_holes();
        Ok(())
    }
}

impl Maps for FakeMaps {
    fn forget(&mut self, stale: &Stale, in_use: InUse<'_>) -> Result<Forgotten, MapError> {
        let mut tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        let mut forgotten = Forgotten::default();
        if !stale.endpoints.is_empty() {
            tables.scans += 1;
            let found = tables.conntrack.iter().filter_map(|(k, v)| stale.conntrack(k, v).map(|e| (*k, e))).collect();
            for key in doomed_flows(found, in_use) {
                tables.conntrack.remove(&key);
                forgotten.conntrack[family_index(key.family)] += 1;
            }
        }
        if !stale.members.is_empty() || !stale.sets.is_empty() {
            tables.scans += 2;
            let before = tables.affinity.len() + tables.client_affinity.len();
            tables.affinity.retain(|k, v| !stale.affinity(k.service_id, v));
            tables.client_affinity.retain(|k, v| !stale.affinity(k.service_id, v));
            forgotten.affinity = (before - tables.affinity.len() - tables.client_affinity.len()) as u64;
        }
        Ok(forgotten)
    }

    fn contents(&self) -> Result<Contents, MapError> {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Contents {
            services: tables.services.clone(),
            external: tables.external.clone(),
            endpoints: tables.endpoints.clone(),
            ranges: tables.ranges.clone(),
        })
    }

    fn put_service(&mut self, key: &KpServiceKey, value: &KpService) -> Result<(), MapError> {
        self.write("kp_services", Write::PutService(*key, *value))
    }

    fn delete_service(&mut self, key: &KpServiceKey) -> Result<(), MapError> {
        self.write("kp_services", Write::DeleteService(*key))
    }

    fn put_endpoint(&mut self, key: &KpEndpointKey, value: &KpAddr) -> Result<(), MapError> {
        self.write("kp_endpoints", Write::PutEndpoint(*key, *value))
    }

    fn delete_endpoint(&mut self, key: &KpEndpointKey) -> Result<(), MapError> {
        self.write("kp_endpoints", Write::DeleteEndpoint(*key))
    }

    fn put_external(&mut self, key: &KpServiceKey, value: &KpExternal) -> Result<(), MapError> {
        self.write("kp_external", Write::PutExternal(*key, *value))
    }

    fn delete_external(&mut self, key: &KpServiceKey) -> Result<(), MapError> {
        self.write("kp_external", Write::DeleteExternal(*key))
    }

    fn put_range(&mut self, key: &KpRangeKey) -> Result<(), MapError> {
        self.write("kp_ranges", Write::PutRange(*key))
    }

    fn delete_range(&mut self, key: &KpRangeKey) -> Result<(), MapError> {
        self.write("kp_ranges", Write::DeleteRange(*key))
    }
}
