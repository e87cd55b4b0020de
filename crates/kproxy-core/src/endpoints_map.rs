//! `EndpointsMap`: the endpoints of every service port of one IP family.

use std::collections::{BTreeMap, BTreeSet};

use crate::endpoint::Endpoint;
use crate::endpoint_slice_cache::EndpointsChange;
use crate::names::{NamespacedName, Protocol, ServicePortName};

/// What applying endpoint changes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateEndpointsMapResult {
    /// Service ports whose endpoints changed.
    pub changed_ports: BTreeSet<ServicePortName>,
    /// UDP endpoints that are gone or no longer serving: their conntrack entries are stale.
    pub stale_udp_endpoints: Vec<(ServicePortName, Endpoint)>,
}

/// Endpoints per service port of one family; a port without endpoints is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointsMap {
    endpoints: BTreeMap<ServicePortName, Vec<Endpoint>>,
}

impl EndpointsMap {
    /// Applies checked-out changes, taking their endpoints (a first checkout carries every
    /// port's: copying them would hold them twice).
    pub fn apply(&mut self, changes: Vec<EndpointsChange>) -> UpdateEndpointsMapResult {
        let mut result = UpdateEndpointsMapResult::default();
        for change in changes {
            for (name, before) in &change.previous {
                let after = change.current.get(name).map(Vec::as_slice).unwrap_or_default();
                if name.protocol == Protocol::Udp {
                    result.stale_udp_endpoints.extend(stale(before, after).map(|e| (name.clone(), e.clone())));
                }
                if after.is_empty() {
                    self.endpoints.remove(name);
                    result.changed_ports.insert(name.clone());
                }
            }
            for (name, after) in change.current {
                if change.previous.get(&name) != Some(&after) {
                    result.changed_ports.insert(name.clone());
                }
                self.endpoints.insert(name, after);
            }
        }
        result
    }

    /// Sets the endpoints of one port directly (tests, or a dataplane's own fixtures).
    pub fn insert(&mut self, name: ServicePortName, endpoints: Vec<Endpoint>) {
        self.endpoints.insert(name, endpoints);
    }

    /// The endpoints of one port; empty when it has none.
    pub fn get(&self, name: &ServicePortName) -> &[Endpoint] {
        self.endpoints.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every port with endpoints, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&ServicePortName, &Vec<Endpoint>)> {
        self.endpoints.iter()
    }

    /// Per Service, how many distinct IPs of local, ready endpoints it has (feeds the
    /// health-check node ports). Services without any are absent, as upstream's
    /// `LocalReadyEndpoints`.
    pub fn local_ready_endpoints(&self) -> BTreeMap<NamespacedName, usize> {
        let mut ips: BTreeMap<NamespacedName, BTreeSet<std::net::IpAddr>> = BTreeMap::new();
        for (name, endpoints) in &self.endpoints {
            for endpoint in endpoints.iter().filter(|e| e.is_local && e.ready) {
                ips.entry(name.service.clone()).or_default().insert(endpoint.ip);
            }
        }
        ips.into_iter().map(|(svc, set)| (svc, set.len())).collect()
    }
}

/// Endpoints that served before and do not serve (or exist) after.
fn stale<'a>(before: &'a [Endpoint], after: &'a [Endpoint]) -> impl Iterator<Item = &'a Endpoint> {
    before.iter().filter(move |old| {
        old.serving && !after.iter().any(|new| new.ip == old.ip && new.port == old.port && new.serving)
    })
}
