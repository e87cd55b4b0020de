//! `ServicePortMap`: every proxied service port of one IP family.

use std::collections::{BTreeMap, BTreeSet};

use crate::names::{NamespacedName, ServicePortName};
use crate::service_change_tracker::ServiceChange;
use crate::service_port::ServicePort;

/// Every proxied service port of one family, ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePortMap {
    ports: BTreeMap<ServicePortName, ServicePort>,
}

impl ServicePortMap {
    /// Applies checked-out changes; returns the names of the service ports that changed
    /// (added, removed or modified).
    pub fn apply(&mut self, changes: &[(NamespacedName, ServiceChange)]) -> BTreeSet<ServicePortName> {
        let mut changed = BTreeSet::new();
        for (_, change) in changes {
            for name in change.previous.keys() {
                if !change.current.contains_key(name) {
                    self.ports.remove(name);
                    changed.insert(name.clone());
                }
            }
            for (name, port) in &change.current {
                if change.previous.get(name) != Some(port) {
                    changed.insert(name.clone());
                }
                self.ports.insert(name.clone(), port.clone());
            }
        }
        changed
    }

    /// Inserts one port directly (tests, or a dataplane's own fixtures).
    pub fn insert(&mut self, name: ServicePortName, port: ServicePort) {
        self.ports.insert(name, port);
    }

    /// One port.
    pub fn get(&self, name: &ServicePortName) -> Option<&ServicePort> {
        self.ports.get(name)
    }

    /// Every port, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&ServicePortName, &ServicePort)> {
        self.ports.iter()
    }

    /// How many service ports there are.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// No service port at all.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Health-check node ports, by Service (each Service listed once).
    pub fn health_check_node_ports(&self) -> BTreeMap<NamespacedName, u16> {
        self.ports
            .iter()
            .filter_map(|(name, port)| port.health_check_node_port.map(|p| (name.service.clone(), p)))
            .collect()
    }
}
