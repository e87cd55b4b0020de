//! The sync engine: writes the difference between what was committed and a new plan,
//! port by port, in an order that never exposes a hole.
//!
//! For one service port: (1) endpoint slots that are new or changed, and new source
//! ranges, (2) service addresses whose value changed, for node clients and for traffic
//! from outside (a count grows only after its slots exist, and shrinks before its slots
//! go), (3) service addresses it no longer has, (4) source ranges it no longer has, slots
//! past the new counts and sets it no longer uses. What was committed is kept in memory; the maps are
//! never read back to sync (only once, when maps a previous kproxy pinned are opened: see
//! [`Committed::adopt`]).

use std::collections::{BTreeMap, BTreeSet};

use kproxy_core::{IpFamily, ServicePortName};

use crate::config::MapSizes;
use crate::layout::{KpAddr, KpEndpointKey, KpExternal, KpRangeKey, KpService, KpServiceKey};
use crate::maps::{MapError, Maps, Stale};
use crate::plan::{PortPlan, Role};

/// Up to how many endpoints [`Committed::in_use`] looks for one by one.
const FEW: usize = 8;

/// A service port of one family: the unit of a sync.
pub type PortKey = (IpFamily, ServicePortName);

/// One endpoint set as written: its id and slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CommittedSet {
    id: u32,
    endpoints: Vec<KpAddr>,
}

/// One service port as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CommittedPort {
    sets: BTreeMap<Role, CommittedSet>,
    entries: BTreeMap<KpServiceKey, KpService>,
    external: BTreeMap<KpServiceKey, KpExternal>,
    ranges: BTreeSet<KpRangeKey>,
}

impl CommittedPort {
    /// Everything either may have written (after a failure half-way between them).
    fn union(mut self, other: CommittedPort) -> CommittedPort {
        for (role, set) in other.sets {
            let mine = self.sets.entry(role).or_insert_with(|| CommittedSet { id: set.id, endpoints: Vec::new() });
            if set.endpoints.len() > mine.endpoints.len() {
                mine.endpoints = set.endpoints;
            }
        }
        self.entries.extend(other.entries);
        self.external.extend(other.external);
        self.ranges.extend(other.ranges);
        self
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.external.is_empty() && self.sets.is_empty() && self.ranges.is_empty()
    }
}

/// What the dataplane has written to the maps.
#[derive(Debug)]
pub struct Committed {
    ports: BTreeMap<PortKey, CommittedPort>,
    /// Which port wrote each service address (a claim may move between ports in one sync).
    owners: BTreeMap<KpServiceKey, PortKey>,
    /// The same for the addresses of traffic from outside.
    external_owners: BTreeMap<KpServiceKey, PortKey>,
    next_id: u32,
    /// What maps a previous kproxy filled held at load, until the first full write is swept.
    leftovers: Option<adopt::Leftovers>,
    /// Endpoints and sets removed since [`Committed::take_stale`] was last called.
    stale: Stale,
    /// The maps' sizes.
    limits: capacity::Limits,
    /// Endpoint slots written (over all sets).
    slots: usize,
    /// Source ranges written.
    ranges: usize,
}

impl Default for Committed {
    fn default() -> Self {
        Self {
            ports: BTreeMap::new(),
            owners: BTreeMap::new(),
            external_owners: BTreeMap::new(),
            next_id: 0,
            leftovers: None,
            stale: Stale::default(),
            limits: capacity::Limits::NONE,
            slots: 0,
            ranges: 0,
        }
    }
}

/// Why a service port was not (fully) written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A map write failed (the port may be half written, never with a hole).
    #[error(transparent)]
    Map(#[from] MapError),
    /// It would take a map past its size: nothing of it was written.
    #[error(transparent)]
    Full(#[from] MapFull),
}

/// Counts of one sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Map writes made.
    pub writes: usize,
}

impl Committed {
    /// Nothing written yet, maps of any size.
    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing written yet, to maps of `sizes`.
    pub fn with_sizes(sizes: &MapSizes) -> Self {
        Self { limits: capacity::Limits::of(sizes), ..Self::default() }
    }

    /// The ports written.
    pub fn ports(&self) -> impl Iterator<Item = &PortKey> {
        self.ports.keys()
    }

    /// How many service addresses are written.
    pub fn service_addresses(&self) -> usize {
        self.owners.len()
    }

    fn allocate_id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    /// Makes port `key` match `plan` (`None`: remove it). With `rewrite`, every entry of the
    /// plan is written even where memory says it is in place (a full sync).
    pub fn apply(
        &mut self,
        maps: &mut dyn Maps,
        key: &PortKey,
        plan: Option<&PortPlan>,
        rewrite: bool,
        written: &mut Written,
    ) -> Result<(), WriteError> {
        let old = self.ports.remove(key).unwrap_or_default();
        let next = self.next_port(&old, plan);
        let (old_slots, old_ranges) = capacity::counts(&old);
        let (stored, result) = match self.check_capacity(key, &old, &next) {
            Err(full) => (old, Err(full.into())),
            Ok(()) => match self.write(maps, key, &old, &next, rewrite, written) {
                Ok(()) => {
                    self.note_removed(&old, &next);
                    (next, Ok(()))
                }
                Err(e) => (old.union(next), Err(e.into())),
            },
        };
        let (slots, ranges) = capacity::counts(&stored);
        self.slots = (self.slots + slots).saturating_sub(old_slots);
        self.ranges = (self.ranges + ranges).saturating_sub(old_ranges);
        if !stored.is_empty() {
            self.ports.insert(key.clone(), stored);
        }
        result
    }

    /// Notes the endpoints and sets `old` had and `next` has not (written: no program
    /// picks them any more).
    fn note_removed(&mut self, old: &CommittedPort, next: &CommittedPort) {
        if old.sets == next.sets {
            return;
        }
        for (role, set) in &old.sets {
            match next.sets.get(role).filter(|n| n.id == set.id) {
                Some(kept) => {
                    let kept: BTreeSet<&KpAddr> = kept.endpoints.iter().collect();
                    for endpoint in set.endpoints.iter().filter(|e| !kept.contains(e)) {
                        self.stale.members.insert((set.id, *endpoint));
                        self.stale.endpoints.insert(*endpoint);
                    }
                }
                None => {
                    self.stale.sets.insert(set.id);
                    self.stale.endpoints.extend(set.endpoints.iter().copied());
                }
            }
        }
    }

    /// What the syncs since the last call removed: the entries of the programs' own maps
    /// (conntrack, affinity) that point at it go (see [`Maps::forget`]).
    pub fn take_stale(&mut self) -> Stale {
        std::mem::take(&mut self.stale)
    }

    /// Which of `endpoints` some set still has (an endpoint of several services keeps its
    /// flows). Reads every set: called only for endpoints that flows point at.
    pub fn in_use(&self, endpoints: &BTreeSet<KpAddr>) -> BTreeSet<KpAddr> {
        let mut sets = self.ports.values().flat_map(|p| p.sets.values());
        let mut missing = endpoints.clone();
        if missing.len() <= FEW {
            // The usual case, one endpoint replaced: a plain comparison per slot.
            let mut candidates: Vec<KpAddr> = missing.iter().copied().collect();
            'few: for set in sets {
                for endpoint in &set.endpoints {
                    if let Some(i) = candidates.iter().position(|c| c == endpoint) {
                        candidates.swap_remove(i);
                        if candidates.is_empty() {
                            break 'few;
                        }
                    }
                }
            }
            missing = candidates.into_iter().collect();
        } else {
            'many: for set in &mut sets {
                for endpoint in &set.endpoints {
                    if missing.remove(endpoint) && missing.is_empty() {
                        break 'many;
                    }
                }
            }
        }
        endpoints.difference(&missing).copied().collect()
    }

    /// The committed form of `plan`, keeping the ids of sets `old` had.
    fn next_port(&mut self, old: &CommittedPort, plan: Option<&PortPlan>) -> CommittedPort {
        let mut next = CommittedPort::default();
        let Some(plan) = plan else { return next };
        for (role, endpoints) in &plan.sets {
            let id = match old.sets.get(role) {
                Some(set) => set.id,
                None => match self.leftovers.as_mut().and_then(|l| l.take_id(plan, *role)) {
                    Some(id) => id,
                    None => self.allocate_id(),
                },
            };
            next.sets.insert(*role, CommittedSet { id, endpoints: endpoints.clone() });
        }
        for (address, entry) in &plan.entries {
            let set = next.sets.get(&entry.role);
            let value = KpService {
                id: set.map_or(0, |s| s.id),
                count: set.map_or(0, |s| u32::try_from(s.endpoints.len()).unwrap_or(u32::MAX)),
                flags: entry.flags,
                affinity_secs: entry.affinity_secs,
            };
            next.entries.insert(*address, value);
        }
        for (address, external) in &plan.external {
            let set = next.sets.get(&external.entry.role);
            let id = set.map_or(0, |s| s.id);
            let service = KpService {
                id,
                count: set.map_or(0, |s| u32::try_from(s.endpoints.len()).unwrap_or(u32::MAX)),
                flags: external.entry.flags,
                affinity_secs: external.entry.affinity_secs,
            };
            let ranges_id = if external.source_ranges { id } else { 0 };
            next.external.insert(*address, KpExternal::new(service, ranges_id, external.snat));
            if ranges_id != 0 {
                next.ranges.extend(plan.source_ranges.iter().map(|r| KpRangeKey::new(ranges_id, *r)));
            }
        }
        next
    }

    fn write(
        &mut self,
        maps: &mut dyn Maps,
        key: &PortKey,
        old: &CommittedPort,
        next: &CommittedPort,
        rewrite: bool,
        written: &mut Written,
    ) -> Result<(), MapError> {
        for (role, set) in &next.sets {
            let before = old.sets.get(role).map(|s| s.endpoints.as_slice()).unwrap_or_default();
            for (slot, endpoint) in (0u32..).zip(&set.endpoints) {
                if rewrite || before.get(slot as usize) != Some(endpoint) {
                    maps.put_endpoint(&KpEndpointKey { service_id: set.id, slot }, endpoint)?;
                    written.writes += 1;
                }
            }
        }
        for range in next.ranges.iter().filter(|r| rewrite || !old.ranges.contains(*r)) {
            maps.put_range(range)?;
            written.writes += 1;
        }
        let mut put = |address: &KpServiceKey, value: &KpService| maps.put_service(address, value);
        put_owned(&mut self.owners, key, &old.entries, &next.entries, rewrite, &mut put, written)?;
        let mut put = |address: &KpServiceKey, value: &KpExternal| maps.put_external(address, value);
        put_owned(&mut self.external_owners, key, &old.external, &next.external, rewrite, &mut put, written)?;
        let mut delete = |address: &KpServiceKey| maps.delete_service(address);
        delete_owned(&mut self.owners, key, &old.entries, &next.entries, &mut delete, written)?;
        let mut delete = |address: &KpServiceKey| maps.delete_external(address);
        delete_owned(&mut self.external_owners, key, &old.external, &next.external, &mut delete, written)?;
        for range in old.ranges.difference(&next.ranges) {
            maps.delete_range(range)?;
            written.writes += 1;
        }
        for (role, set) in &old.sets {
            let keep = next.sets.get(role).map_or(0, |s| s.endpoints.len());
            for slot in (0u32..).zip(&set.endpoints).skip(keep).map(|(slot, _)| slot) {
                maps.delete_endpoint(&KpEndpointKey { service_id: set.id, slot })?;
                written.writes += 1;
            }
        }
        Ok(())
    }
}

/// Writes the addresses of `next` that changed (all with `rewrite`) or that another port
/// owned, and records `key` as their owner.
fn put_owned<V: PartialEq>(
    owners: &mut BTreeMap<KpServiceKey, PortKey>,
    key: &PortKey,
    old: &BTreeMap<KpServiceKey, V>,
    next: &BTreeMap<KpServiceKey, V>,
    rewrite: bool,
    put: &mut dyn FnMut(&KpServiceKey, &V) -> Result<(), MapError>,
    written: &mut Written,
) -> Result<(), MapError> {
    for (address, value) in next {
        let owned = owners.get(address) == Some(key);
        if rewrite || !owned || old.get(address) != Some(value) {
            put(address, value)?;
            owners.insert(*address, key.clone());
            written.writes += 1;
        }
    }
    Ok(())
}

/// Removes the addresses `old` had and `next` has not, where `key` still owns them.
fn delete_owned<V>(
    owners: &mut BTreeMap<KpServiceKey, PortKey>,
    key: &PortKey,
    old: &BTreeMap<KpServiceKey, V>,
    next: &BTreeMap<KpServiceKey, V>,
    delete: &mut dyn FnMut(&KpServiceKey) -> Result<(), MapError>,
    written: &mut Written,
) -> Result<(), MapError> {
    for address in old.keys().filter(|a| !next.contains_key(*a)) {
        if owners.get(address) == Some(key) {
            delete(address)?;
            owners.remove(address);
            written.writes += 1;
        }
    }
    Ok(())
}

#[path = "sync_adopt.rs"]
mod adopt;
#[path = "sync_capacity.rs"]
mod capacity;

pub use capacity::{MapFull, Usage};

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
