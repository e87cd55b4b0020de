//! `EndpointsChangeTracker`: pending EndpointSlice changes of one IP family, with the
//! trigger times that feed `network_programming_duration_seconds`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::convert::EndpointSliceInfo;
use crate::endpoint_slice_cache::{EndpointSliceCache, EndpointsChange};
use crate::names::{IpFamily, NamespacedName};

/// Endpoint changes taken out of the tracker at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointsChanges {
    /// The Services whose endpoints changed, with before and after.
    pub changes: Vec<EndpointsChange>,
    /// Per Service, the `last-change-trigger-time`s of the slice updates checked out.
    pub trigger_times: BTreeMap<NamespacedName, Vec<SystemTime>>,
}

/// Accumulates EndpointSlice changes of one family between syncs.
#[derive(Debug)]
pub struct EndpointsChangeTracker {
    family: IpFamily,
    cache: EndpointSliceCache,
    start_time: SystemTime,
    trigger_times: BTreeMap<NamespacedName, Vec<SystemTime>>,
    changes_total: u64,
}

impl EndpointsChangeTracker {
    /// A tracker for `family` on node `node_name`. Trigger times not after `start_time`
    /// (the proxy's start) are ignored: they describe changes made before this proxy ran.
    pub fn new(family: IpFamily, node_name: impl Into<String>, start_time: SystemTime) -> Self {
        Self {
            family,
            cache: EndpointSliceCache::new(node_name),
            start_time,
            trigger_times: BTreeMap::new(),
            changes_total: 0,
        }
    }

    /// Records a new or updated slice. A slice of the other family is ignored. Returns
    /// whether any change is pending.
    pub fn update(&mut self, slice: &EndpointSliceInfo) -> bool {
        if slice.family == self.family && self.cache.update(slice) {
            self.changes_total += 1;
            if let Some(t) = slice.trigger_time.filter(|t| *t > self.start_time) {
                self.trigger_times.entry(slice.service.clone()).or_default().push(t);
            }
        }
        self.pending() > 0
    }

    /// Records the removal of a slice. Deletions carry no trigger time: their annotation
    /// is stale by definition. As upstream does, a deletion also drops the trigger times
    /// already recorded for the Service, so they are not reported for a state that will never
    /// be programmed. Returns whether any change is pending.
    pub fn delete(&mut self, service: &NamespacedName, slice_name: &str) -> bool {
        if self.cache.delete(service, slice_name) {
            self.changes_total += 1;
            self.trigger_times.remove(service);
        }
        self.pending() > 0
    }

    /// Every slice known, for a relist.
    pub fn known_slices(&self) -> Vec<(NamespacedName, String)> {
        self.cache.known_slices()
    }

    /// How many Services have pending changes (`sync_proxy_rules_endpoint_changes_pending`).
    pub fn pending(&self) -> usize {
        self.cache.pending()
    }

    /// How many slice changes were recorded (`sync_proxy_rules_endpoint_changes_total`).
    #[cfg_attr(not(test), expect(dead_code, reason = "the daemon counts source events for the metric"))]
    pub fn changes_total(&self) -> u64 {
        self.changes_total
    }

    /// Takes every pending change, leaving none.
    pub fn checkout(&mut self) -> EndpointsChanges {
        EndpointsChanges { changes: self.cache.checkout(), trigger_times: std::mem::take(&mut self.trigger_times) }
    }
}

#[cfg(test)]
#[path = "endpoints_change_tracker_tests.rs"]
mod tests;
