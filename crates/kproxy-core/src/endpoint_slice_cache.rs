//! `EndpointSliceCache`: applied and pending slices per Service, and the merge of a Service's
//! slices into endpoints per service port (upstream's `endpointslicecache.go`).

use std::collections::HashMap;
use std::collections::btree_map::{BTreeMap, Entry};
use std::sync::Arc;

use crate::convert::EndpointSliceInfo;
use crate::endpoint::Endpoint;
use crate::names::{NamespacedName, ServicePortName};

/// The endpoints of every port of one Service.
pub type PortEndpoints = BTreeMap<ServicePortName, Vec<Endpoint>>;

#[derive(Debug, Default)]
struct ServiceSlices {
    applied: BTreeMap<String, Arc<EndpointSliceInfo>>,
    /// `None` marks a slice to remove.
    pending: BTreeMap<String, Option<Arc<EndpointSliceInfo>>>,
}

/// The change of one Service's endpoints since the last checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsChange {
    /// The Service.
    pub service: NamespacedName,
    /// Endpoints per port as last checked out.
    pub previous: PortEndpoints,
    /// Endpoints per port now.
    pub current: PortEndpoints,
}

/// Slices of one IP family, by Service.
#[derive(Debug)]
pub struct EndpointSliceCache {
    node_name: String,
    services: HashMap<NamespacedName, ServiceSlices>,
    /// How many Services have pending slices: kept as they change, since every event asks
    /// (counting them took a pass over every Service, quadratic over an initial list).
    pending_services: usize,
}

impl EndpointSliceCache {
    /// An empty cache; endpoints on `node_name` are local.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self { node_name: node_name.into(), services: HashMap::new(), pending_services: 0 }
    }

    /// Records a new or updated slice; returns whether it differs from what is pending or
    /// applied. The trigger time is not part of the comparison. A slice that comes back to
    /// its applied state drops out of the pending set.
    pub fn update(&mut self, slice: &EndpointSliceInfo) -> bool {
        let data = Arc::new(EndpointSliceInfo { trigger_time: None, ..slice.clone() });
        self.set_pending(&slice.service, &slice.slice_name, Some(data))
    }

    /// Records the removal of a slice; returns whether that changes anything.
    pub fn delete(&mut self, service: &NamespacedName, slice_name: &str) -> bool {
        self.set_pending(service, slice_name, None)
    }

    fn set_pending(
        &mut self,
        service: &NamespacedName,
        slice_name: &str,
        data: Option<Arc<EndpointSliceInfo>>,
    ) -> bool {
        let slices = self.services.entry(service.clone()).or_default();
        let known = match slices.pending.get(slice_name) {
            Some(pending) => pending.as_ref(),
            None => slices.applied.get(slice_name),
        };
        if known == data.as_ref() {
            return false;
        }
        let was_pending = !slices.pending.is_empty();
        // Back to what is applied (an add followed by a delete, or an update undone): nothing
        // is pending for this slice any more.
        if slices.applied.get(slice_name) == data.as_ref() {
            slices.pending.remove(slice_name);
        } else {
            slices.pending.insert(slice_name.to_owned(), data);
        }
        match (was_pending, !slices.pending.is_empty()) {
            (false, true) => self.pending_services += 1,
            (true, false) => self.pending_services -= 1,
            _ => {}
        }
        true
    }

    /// The slices of every Service, applied or pending, for a relist.
    pub fn known_slices(&self) -> Vec<(NamespacedName, String)> {
        let mut out = Vec::new();
        for (service, slices) in &self.services {
            let applied = slices.applied.keys();
            let pending = slices.pending.iter().filter(|(_, d)| d.is_some()).map(|(k, _)| k);
            let names: std::collections::BTreeSet<&String> = applied.chain(pending).collect();
            out.extend(names.into_iter().map(|n| (service.clone(), n.clone())));
        }
        out
    }

    /// How many Services have pending slice changes.
    pub fn pending(&self) -> usize {
        self.pending_services
    }

    /// Promotes every pending slice to applied and returns, per Service whose endpoints
    /// really changed, the endpoints before and after.
    pub fn checkout(&mut self) -> Vec<EndpointsChange> {
        let mut changes = Vec::new();
        for (service, slices) in &mut self.services {
            if slices.pending.is_empty() {
                continue;
            }
            let previous = endpoints_by_port(service, slices.applied.values(), &self.node_name);
            for (name, data) in std::mem::take(&mut slices.pending) {
                match (data, slices.applied.entry(name)) {
                    (Some(data), entry) => {
                        entry.insert_entry(data);
                    }
                    (None, Entry::Occupied(entry)) => {
                        entry.remove();
                    }
                    (None, Entry::Vacant(_)) => {}
                }
            }
            let current = endpoints_by_port(service, slices.applied.values(), &self.node_name);
            if previous != current {
                changes.push(EndpointsChange { service: service.clone(), previous, current });
            }
        }
        self.pending_services = 0;
        self.services.retain(|_, s| !s.applied.is_empty() || !s.pending.is_empty());
        changes.sort_by(|a, b| a.service.cmp(&b.service));
        changes
    }
}

/// Merges slices into endpoints per service port. An address listed twice (in two slices)
/// counts once, and a local copy wins over a remote one. Endpoints come sorted by address.
pub fn endpoints_by_port<'a>(
    service: &NamespacedName,
    slices: impl IntoIterator<Item = &'a Arc<EndpointSliceInfo>>,
    node_name: &str,
) -> PortEndpoints {
    let mut by_port: BTreeMap<ServicePortName, BTreeMap<(std::net::IpAddr, u16), Endpoint>> = BTreeMap::new();
    for slice in slices {
        for port in &slice.ports {
            let name = ServicePortName::new(service.clone(), port.name.clone(), port.protocol);
            let set = by_port.entry(name).or_default();
            for info in &slice.endpoints {
                let is_local = info.node_name.as_deref() == Some(node_name);
                let key = (info.ip, port.port);
                if set.contains_key(&key) && !is_local {
                    continue;
                }
                let endpoint = Endpoint {
                    is_local,
                    ready: info.ready,
                    serving: info.serving,
                    terminating: info.terminating,
                    node_name: info.node_name.clone(),
                    zone: info.zone.clone(),
                    zone_hints: info.zone_hints.clone(),
                    node_hints: info.node_hints.clone(),
                    ..Endpoint::new(info.ip, port.port)
                };
                set.insert(key, endpoint);
            }
        }
    }
    by_port
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(name, set)| (name, set.into_values().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use kproxy_testkit::slice;

    use super::*;

    fn info(service: &str, name: &str, ip: &str) -> EndpointSliceInfo {
        let built = slice("ns", service, name).tcp("http", 80).ready(ip).build();
        EndpointSliceInfo::from_slice(&built).expect("well formed").expect("for proxies")
    }

    /// The count kept, checked against a count over every Service.
    fn pending(cache: &EndpointSliceCache) -> usize {
        let counted = cache.services.values().filter(|s| !s.pending.is_empty()).count();
        assert_eq!(cache.pending(), counted, "the kept count matches the Services with pending slices");
        counted
    }

    #[test]
    fn pending_counts_services_with_pending_slices_through_updates_undos_and_checkouts() {
        let mut cache = EndpointSliceCache::new("node1");
        let svc = |name: &str| NamespacedName::new("ns", name);
        assert!(cache.update(&info("s1", "a", "10.0.0.1")));
        assert!(cache.update(&info("s1", "b", "10.0.0.2")));
        assert!(cache.update(&info("s2", "a", "10.0.0.3")));
        assert_eq!(pending(&cache), 2);
        assert!(cache.delete(&svc("s2"), "a"), "an add then a delete leaves nothing pending");
        assert_eq!(pending(&cache), 1);
        assert!(!cache.update(&info("s1", "a", "10.0.0.1")), "the same slice again");
        assert_eq!(pending(&cache), 1);
        assert_eq!(cache.checkout().len(), 1);
        assert_eq!(pending(&cache), 0);
        assert!(cache.update(&info("s1", "a", "10.0.0.9")));
        assert_eq!(pending(&cache), 1);
        assert!(cache.update(&info("s1", "a", "10.0.0.1")), "an update undone");
        assert_eq!(pending(&cache), 0);
        assert!(!cache.delete(&svc("s3"), "x"), "an unknown slice");
        assert_eq!(pending(&cache), 0);
        assert!(cache.delete(&svc("s1"), "a"));
        assert!(cache.update(&info("s3", "a", "10.0.0.4")));
        assert_eq!(pending(&cache), 2);
        assert_eq!(cache.checkout().len(), 2);
        assert_eq!(pending(&cache), 0);
    }
}
