//! `ServicePortMap`: every proxied service port of one IP family.

use std::collections::{BTreeMap, BTreeSet};

use crate::claims::{Claim, ClaimIndex, Conflict, claims_of};
use crate::names::{NamespacedName, ServicePortName};
use crate::service_change_tracker::ServiceChange;
use crate::service_port::ServicePort;

/// Every proxied service port of one family, ordered by name, as it is to be programmed:
/// where several ports claim one address and port (or one node port), only the winner has
/// it (see [`Conflict`]); the losers keep their other claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePortMap {
    /// What is programmed: each port without the claims it lost.
    ports: BTreeMap<ServicePortName, ServicePort>,
    /// The ports as their Services define them, for those that lost a claim.
    contested: BTreeMap<ServicePortName, ServicePort>,
    claims: ClaimIndex,
}

impl ServicePortMap {
    /// Applies checked-out changes; returns the names of the service ports that changed
    /// (added, removed or modified, also by winning or losing a claim).
    pub fn apply(&mut self, changes: &[(NamespacedName, ServiceChange)]) -> BTreeSet<ServicePortName> {
        let mut updates = BTreeMap::new();
        for (_, change) in changes {
            for name in change.previous.keys().filter(|n| !change.current.contains_key(n)) {
                updates.insert(name.clone(), None);
            }
            for (name, port) in &change.current {
                if change.previous.get(name) != Some(port) || self.defined(name) != Some(port) {
                    updates.insert(name.clone(), Some(port.clone()));
                }
            }
        }
        self.update(updates)
    }

    /// Inserts or replaces one port directly (tests, fixtures, a quarantined port put back);
    /// returns the ports whose programmed form changed.
    pub fn insert(&mut self, name: ServicePortName, port: ServicePort) -> BTreeSet<ServicePortName> {
        self.update(BTreeMap::from([(name, Some(port))]))
    }

    /// Removes one port directly; returns the ports whose programmed form changed (it, and
    /// any that now win a claim it held).
    pub fn remove(&mut self, name: &ServicePortName) -> BTreeSet<ServicePortName> {
        self.update(BTreeMap::from([(name.clone(), None)]))
    }

    /// Sets each named port to its new definition (`None`: gone), then recomputes who wins
    /// every claim they touch; returns the ports whose programmed form changed.
    fn update(&mut self, updates: BTreeMap<ServicePortName, Option<ServicePort>>) -> BTreeSet<ServicePortName> {
        let mut touched: BTreeSet<Claim> = BTreeSet::new();
        let mut defined: BTreeMap<ServicePortName, ServicePort> = BTreeMap::new();
        let mut changed = BTreeSet::new();
        for (name, port) in updates {
            if let Some(old) = self.defined(&name).cloned() {
                self.claims.remove(&name, &old);
                touched.extend(claims_of(&old).map(|(claim, _)| claim));
            }
            match port {
                Some(port) => {
                    self.claims.add(&name, &port);
                    touched.extend(claims_of(&port).map(|(claim, _)| claim));
                    defined.insert(name, port);
                }
                None => {
                    self.contested.remove(&name);
                    if self.ports.remove(&name).is_some() {
                        changed.insert(name);
                    }
                }
            }
        }
        let affected: BTreeSet<ServicePortName> =
            touched.iter().flat_map(|claim| self.claims.claimants(claim)).cloned().collect();
        for name in affected {
            if !defined.contains_key(&name)
                && let Some(port) = self.defined(&name)
            {
                defined.insert(name.clone(), port.clone());
            }
        }
        for (name, raw) in defined {
            if self.settle(&name, raw) {
                changed.insert(name);
            }
        }
        changed
    }

    /// Stores `raw` as `name`'s definition and programs what it wins; whether the
    /// programmed form changed.
    fn settle(&mut self, name: &ServicePortName, raw: ServicePort) -> bool {
        let effective = self.claims.effective(name, &raw);
        let before = match &effective {
            Some(port) => self.ports.insert(name.clone(), port.clone()),
            None => self.ports.remove(name),
        };
        let changed = before != effective;
        if effective.as_ref() == Some(&raw) {
            self.contested.remove(name);
        } else {
            self.contested.insert(name.clone(), raw);
        }
        changed
    }

    /// A port as its Service defines it, claims lost or not.
    pub fn definition(&self, name: &ServicePortName) -> Option<&ServicePort> {
        self.defined(name)
    }

    fn defined(&self, name: &ServicePortName) -> Option<&ServicePort> {
        self.contested.get(name).or_else(|| self.ports.get(name))
    }

    /// One port, as programmed.
    pub fn get(&self, name: &ServicePortName) -> Option<&ServicePort> {
        self.ports.get(name)
    }

    /// Every port, ordered by name, as programmed.
    pub fn iter(&self) -> impl Iterator<Item = (&ServicePortName, &ServicePort)> {
        self.ports.iter()
    }

    /// How many service ports are programmed.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// No service port at all.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// Every claim a port lost to another, in a stable order.
    pub fn conflicts(&self) -> Vec<Conflict> {
        self.claims.conflicts()
    }

    /// Health-check node ports, by Service (each Service listed once).
    pub fn health_check_node_ports(&self) -> BTreeMap<NamespacedName, u16> {
        self.ports
            .iter()
            .filter_map(|(name, port)| port.health_check_node_port.map(|p| (name.service.clone(), p)))
            .collect()
    }
}

#[cfg(test)]
#[path = "service_port_map_tests.rs"]
mod tests;
