//! Taking over maps a previous kproxy filled (the pinned maps of the same version, see
//! [`crate::pins`]): the first full sync over them reuses a set's id where every address
//! that used it is one this port now writes for that set (its slots are rewritten in
//! place, so the maps never hold both copies), allocates other ids above all of theirs,
//! and once everything is written removes what the state no longer has, addresses before
//! the slots they expose. The maps are read once, when they are opened.

use std::collections::{BTreeMap, BTreeSet};

use super::{Committed, Written};
use crate::layout::{KpAddr, KpEndpointKey, KpServiceKey};
use crate::maps::{Contents, MapError, Maps};
use crate::plan::{PortPlan, Role};

/// What the maps held when they were opened and no port has made its own yet.
#[derive(Debug, Default)]
pub(super) struct Leftovers {
    contents: Contents,
    /// The service addresses using each set id (`true`: of `kp_external`).
    users: BTreeMap<u32, BTreeSet<(bool, KpServiceKey)>>,
    /// Ids a port has taken over.
    taken: BTreeSet<u32>,
}

impl Leftovers {
    fn new(contents: Contents) -> Self {
        let mut users: BTreeMap<u32, BTreeSet<(bool, KpServiceKey)>> = BTreeMap::new();
        for (key, value) in &contents.services {
            users.entry(value.id).or_default().insert((false, *key));
        }
        for (key, value) in &contents.external {
            users.entry(value.service.id).or_default().insert((true, *key));
        }
        Self { contents, users, taken: BTreeSet::new() }
    }

    /// The highest set id in use.
    fn max_id(&self) -> u32 {
        let in_endpoints = self.contents.endpoints.keys().map(|k| k.service_id);
        self.users.keys().copied().chain(in_endpoints).max().unwrap_or(0)
    }

    /// The id the set of `role` in `plan` can take over: the one its addresses used, when
    /// no other address used it and no other port took it.
    pub(super) fn take_id(&mut self, plan: &PortPlan, role: Role) -> Option<u32> {
        let mine: BTreeSet<(bool, KpServiceKey)> = plan
            .entries
            .iter()
            .filter(|(_, e)| e.role == role)
            .map(|(k, _)| (false, *k))
            .chain(plan.external.iter().filter(|(_, e)| e.entry.role == role).map(|(k, _)| (true, *k)))
            .collect();
        let id = mine.iter().find_map(|(external, key)| match external {
            false => self.contents.services.get(key).map(|v| v.id),
            true => self.contents.external.get(key).map(|v| v.service.id),
        })?;
        let safe = id != 0 && !self.taken.contains(&id) && self.users.get(&id).is_some_and(|u| u.is_subset(&mine));
        safe.then(|| {
            self.taken.insert(id);
            id
        })
    }
}

impl Committed {
    /// Takes over `contents`, what the maps held when they were opened: the next full
    /// write reuses what it safely can and [`Committed::sweep`] removes the rest.
    pub fn adopt(&mut self, contents: Contents) {
        if contents.is_empty() {
            return;
        }
        let leftovers = Leftovers::new(contents);
        self.next_id = self.next_id.max(leftovers.max_id());
        self.leftovers = Some(leftovers);
    }

    /// Whether taken-over entries still wait for [`Committed::sweep`].
    pub fn has_leftovers(&self) -> bool {
        self.leftovers.is_some()
    }

    /// After a full write over taken-over maps: removes their entries the state does not
    /// have, service addresses first, then source ranges, then endpoint slots; what is gone
    /// is noted for [`Committed::take_stale`].
    pub fn sweep(&mut self, maps: &mut dyn Maps, written: &mut Written) -> Result<(), MapError> {
        let Some(leftovers) = self.leftovers.take() else { return Ok(()) };
        let result = self.sweep_leftovers(maps, &leftovers, written);
        if result.is_err() {
            self.leftovers = Some(leftovers);
        }
        result
    }

    fn sweep_leftovers(
        &mut self,
        maps: &mut dyn Maps,
        leftovers: &Leftovers,
        written: &mut Written,
    ) -> Result<(), MapError> {
        let contents = &leftovers.contents;
        for key in contents.services.keys().filter(|k| !self.owners.contains_key(*k)) {
            maps.delete_service(key)?;
            written.writes += 1;
        }
        for key in contents.external.keys().filter(|k| !self.external_owners.contains_key(*k)) {
            maps.delete_external(key)?;
            written.writes += 1;
        }
        let ranges: BTreeSet<_> = self.ports.values().flat_map(|p| p.ranges.iter().copied()).collect();
        for range in contents.ranges.iter().filter(|r| !ranges.contains(*r)) {
            maps.delete_range(range)?;
            written.writes += 1;
        }
        let sets: BTreeMap<u32, &[KpAddr]> =
            self.ports.values().flat_map(|p| p.sets.values()).map(|s| (s.id, s.endpoints.as_slice())).collect();
        for (key, endpoint) in &contents.endpoints {
            let KpEndpointKey { service_id, slot } = *key;
            if sets.get(&service_id).and_then(|e| e.get(slot as usize)).is_none() {
                maps.delete_endpoint(key)?;
                written.writes += 1;
            }
            // What a previous kproxy's programs may still point at.
            match sets.get(&service_id) {
                None => {
                    self.stale.sets.insert(service_id);
                }
                Some(kept) if !kept.contains(endpoint) => {
                    self.stale.members.insert((service_id, *endpoint));
                }
                Some(_) => {}
            }
            self.stale.endpoints.insert(*endpoint);
        }
        Ok(())
    }
}
