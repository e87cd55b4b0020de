//! Map capacity: a service port whose write would take a map past its size is not written
//! at all (the maps keep what they had for it) and reported; everything else is written.
//! The counts are of what the dataplane committed, kept as it writes: the maps are not read.

use std::collections::BTreeMap;

use super::{Committed, CommittedPort, PortKey};
use crate::config::MapSizes;
use crate::layout::KpServiceKey;

/// The entries each written map may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    services: usize,
    endpoints: usize,
    ranges: usize,
}

impl Limits {
    /// No limit (unit tests of other things).
    pub(super) const NONE: Self = Self { services: usize::MAX, endpoints: usize::MAX, ranges: usize::MAX };

    /// The limits of maps of `sizes` (`kp_services` and `kp_external` have the same size).
    pub(super) fn of(sizes: &MapSizes) -> Self {
        let size = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Self { services: size(sizes.services), endpoints: size(sizes.endpoints), ranges: size(sizes.source_ranges) }
    }
}

/// The entries the dataplane has written to each map it fills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `kp_services`.
    pub services: usize,
    /// `kp_external`.
    pub external: usize,
    /// `kp_endpoints`.
    pub endpoints: usize,
    /// `kp_ranges`.
    pub ranges: usize,
}

/// A service port left out because a map would exceed its capacity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{map} holds at most {max_entries} entries: service port {port} needs {needed} more than are free")]
pub struct MapFull {
    /// The map.
    pub map: &'static str,
    /// Its size.
    pub max_entries: usize,
    /// The entries beyond it the port would have taken.
    pub needed: usize,
    /// The service port (`namespace/name:port`, family).
    pub port: String,
}

/// The entries of an address map (`kp_services`, `kp_external`) once port `key` went from
/// `old` to `next` (an address another port owns is overwritten, not added).
fn addresses_after<V>(
    owners: &BTreeMap<KpServiceKey, PortKey>,
    key: &PortKey,
    old: &BTreeMap<KpServiceKey, V>,
    next: &BTreeMap<KpServiceKey, V>,
) -> usize {
    let new = next.keys().filter(|a| !owners.contains_key(*a)).count();
    let gone = old.keys().filter(|a| !next.contains_key(*a) && owners.get(*a) == Some(key)).count();
    (owners.len() + new).saturating_sub(gone)
}

/// Endpoint slots and source ranges of `port`.
pub(super) fn counts(port: &CommittedPort) -> (usize, usize) {
    (port.sets.values().map(|s| s.endpoints.len()).sum(), port.ranges.len())
}

impl Committed {
    /// The entries written to each map.
    pub fn usage(&self) -> Usage {
        Usage {
            services: self.owners.len(),
            external: self.external_owners.len(),
            endpoints: self.slots,
            ranges: self.ranges,
        }
    }

    /// Whether replacing `old` by `next` for port `key` keeps every map within its limit
    /// (a port that does not grow a map always does).
    pub(super) fn check_capacity(
        &self,
        key: &PortKey,
        old: &CommittedPort,
        next: &CommittedPort,
    ) -> Result<(), MapFull> {
        let services = addresses_after(&self.owners, key, &old.entries, &next.entries);
        let external = addresses_after(&self.external_owners, key, &old.external, &next.external);
        let ((old_slots, old_ranges), (next_slots, next_ranges)) = (counts(old), counts(next));
        let endpoints = (self.slots + next_slots).saturating_sub(old_slots);
        let ranges = (self.ranges + next_ranges).saturating_sub(old_ranges);
        let usage = self.usage();
        let checks = [
            ("kp_services", services, usage.services, self.limits.services),
            ("kp_external", external, usage.external, self.limits.services),
            ("kp_endpoints", endpoints, usage.endpoints, self.limits.endpoints),
            ("kp_ranges", ranges, usage.ranges, self.limits.ranges),
        ];
        for (map, after, now, limit) in checks {
            if after > limit && after > now {
                let (family, name) = key;
                let port = format!("{name} ({})", family.as_str());
                return Err(MapFull { map, max_entries: limit, needed: after - limit, port });
            }
        }
        Ok(())
    }
}
