//! `ServiceChangeTracker`: pending Service changes of one IP family (upstream's
//! `servicechangetracker.go`).

use std::collections::BTreeMap;
use std::collections::hash_map::{Entry, HashMap};

use crate::convert::ServiceInfo;
use crate::names::{IpFamily, NamespacedName, ServicePortName};
use crate::service_port::ServicePort;

/// The ports of one Service, ordered by name: a sorted, exactly sized list (a Service has a
/// port or a few; a map's node would reserve room for eleven).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePorts(Box<[(ServicePortName, ServicePort)]>);

impl ServicePorts {
    /// The port named `name`.
    pub fn get(&self, name: &ServicePortName) -> Option<&ServicePort> {
        self.0.binary_search_by(|(n, _)| n.cmp(name)).ok().map(|i| &self.0[i].1)
    }

    /// Whether a port is named `name`.
    pub fn contains_key(&self, name: &ServicePortName) -> bool {
        self.get(name).is_some()
    }

    /// Every port, ordered by name.
    pub fn iter(&self) -> impl Iterator<Item = (&ServicePortName, &ServicePort)> {
        self.0.iter().map(|(n, p)| (n, p))
    }

    /// Every port's name, in order.
    pub fn keys(&self) -> impl Iterator<Item = &ServicePortName> {
        self.0.iter().map(|(n, _)| n)
    }

    /// Every port, ordered by name.
    pub fn values(&self) -> impl Iterator<Item = &ServicePort> {
        self.0.iter().map(|(_, p)| p)
    }

    /// How many ports.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No port at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(ServicePortName, ServicePort)> for ServicePorts {
    /// As a map would collect them: ordered by name, the last of a name winning.
    fn from_iter<I: IntoIterator<Item = (ServicePortName, ServicePort)>>(iter: I) -> Self {
        let map: BTreeMap<ServicePortName, ServicePort> = iter.into_iter().collect();
        Self(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(ServicePortName, ServicePort); N]> for ServicePorts {
    fn from(ports: [(ServicePortName, ServicePort); N]) -> Self {
        ports.into_iter().collect()
    }
}

/// A port of [`ServicePorts`], borrowed.
type PortRef<'a> = (&'a ServicePortName, &'a ServicePort);

impl<'a> IntoIterator for &'a ServicePorts {
    type Item = PortRef<'a>;
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (ServicePortName, ServicePort)>,
        fn(&'a (ServicePortName, ServicePort)) -> PortRef<'a>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, p)| (n, p))
    }
}

impl IntoIterator for ServicePorts {
    type Item = (ServicePortName, ServicePort);
    type IntoIter = std::vec::IntoIter<(ServicePortName, ServicePort)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_vec().into_iter()
    }
}

/// The change of one Service since the last checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChange {
    /// The ports as last checked out (empty: the Service was unknown).
    pub previous: ServicePorts,
    /// The ports now (empty: the Service is gone or no longer proxied).
    pub current: ServicePorts,
}

/// Accumulates Service changes between syncs.
///
/// The first change of a Service after a checkout records its `previous` ports; every later
/// change only replaces `current`. When `current` comes back to `previous` (an add followed
/// by a delete, or an update that changed nothing the proxy uses) the Service drops out of
/// the pending set.
#[derive(Debug)]
pub struct ServiceChangeTracker {
    family: IpFamily,
    /// The latest ports of every Service seen, checked out or not.
    known: HashMap<NamespacedName, ServicePorts>,
    items: HashMap<NamespacedName, ServiceChange>,
    changes_total: u64,
}

impl ServiceChangeTracker {
    /// An empty tracker for `family`.
    pub fn new(family: IpFamily) -> Self {
        Self { family, known: HashMap::new(), items: HashMap::new(), changes_total: 0 }
    }

    /// Records the latest state of Service `name`: `None` when it was deleted or is not
    /// proxied. Returns whether any change is pending.
    pub fn update(&mut self, name: &NamespacedName, info: Option<&ServiceInfo>) -> bool {
        self.changes_total += 1;
        let current: ServicePorts = info.map(|i| i.ports(self.family).into_iter().collect()).unwrap_or_default();
        let previous = match current.is_empty() {
            true => self.known.remove(name),
            false => self.known.insert(name.clone(), current.clone()),
        };
        match self.items.entry(name.clone()) {
            Entry::Occupied(mut entry) => {
                entry.get_mut().current = current;
                if entry.get().previous == entry.get().current {
                    entry.remove();
                }
            }
            Entry::Vacant(entry) => {
                let previous = previous.unwrap_or_default();
                if previous != current {
                    entry.insert(ServiceChange { previous, current });
                }
            }
        }
        !self.items.is_empty()
    }

    /// The names of every Service this tracker knows with ports, for a relist.
    pub fn known_services(&self) -> impl Iterator<Item = &NamespacedName> {
        self.known.keys()
    }

    /// How many Services have pending changes (`sync_proxy_rules_service_changes_pending`).
    pub fn pending(&self) -> usize {
        self.items.len()
    }

    /// How many updates were recorded (`sync_proxy_rules_service_changes_total`).
    #[cfg_attr(not(test), expect(dead_code, reason = "the daemon counts source events for the metric"))]
    pub fn changes_total(&self) -> u64 {
        self.changes_total
    }

    /// Takes every pending change, leaving none.
    pub fn checkout(&mut self) -> Vec<(NamespacedName, ServiceChange)> {
        let mut changes: Vec<_> = self.items.drain().collect();
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        changes
    }
}

#[cfg(test)]
#[path = "service_change_tracker_tests.rs"]
mod tests;
