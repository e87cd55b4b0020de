//! `HealthInputs`: what the node's health checks and metrics need after a sync, kept up to
//! date from the service ports each sync changed rather than recomputed for every port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::names::{IpFamily, NamespacedName, ServicePortName};
use crate::proxy_state::{Changes, ProxyState};
use crate::topology::categorize_endpoints;

/// The inputs of the health-check node ports and of the no-local-endpoints metric, as of
/// the last successful sync (upstream's `HealthCheckNodePorts`, `LocalReadyEndpoints` and
/// `sync_proxy_rules_no_local_endpoints_total`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthInputs {
    /// Health-check node ports, by Service.
    pub health_check_node_ports: BTreeMap<NamespacedName, u16>,
    /// Per Service, how many distinct IPs of local, ready endpoints it has; Services
    /// without any are absent.
    pub local_endpoints: BTreeMap<NamespacedName, usize>,
    /// Service ports with `internalTrafficPolicy: Local` and no local endpoint, per family
    /// (indexed by [`IpFamily::index`]).
    pub no_local_endpoints_internal: [usize; 2],
    /// Externally accessible service ports with `externalTrafficPolicy: Local` and no
    /// local endpoint, per family (indexed by [`IpFamily::index`]).
    pub no_local_endpoints_external: [usize; 2],
}

/// What one service port of one family contributes to [`HealthInputs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PortInputs {
    health_check_node_port: Option<u16>,
    local_ready: BTreeSet<IpAddr>,
    no_local_internal: bool,
    no_local_external: bool,
}

impl PortInputs {
    /// What `name` of `family` contributes in `state`.
    fn of(state: &ProxyState, family: IpFamily, name: &ServicePortName) -> Self {
        let view = state.family(family);
        let endpoints = view.endpoints.get(name);
        let local_ready = endpoints.iter().filter(|e| e.is_local && e.ready).map(|e| e.ip).collect();
        let Some(port) = view.services.get(name) else {
            return Self { local_ready, ..Self::default() };
        };
        let no_local = categorize_endpoints(endpoints, port, state.topology_node()).local.is_empty();
        Self {
            health_check_node_port: port.health_check_node_port,
            local_ready,
            no_local_internal: no_local && port.internal_policy_local,
            no_local_external: no_local && port.external_policy_local && port.externally_accessible(),
        }
    }
}

/// [`HealthInputs`] with what each port contributes, to update them port by port.
#[derive(Debug, Default)]
pub(super) struct HealthIndex {
    ports: BTreeMap<NamespacedName, BTreeMap<(IpFamily, ServicePortName), PortInputs>>,
    inputs: HealthInputs,
}

impl HealthIndex {
    /// The inputs as of the last update.
    pub(super) fn inputs(&self) -> &HealthInputs {
        &self.inputs
    }

    /// Brings the inputs up to date with `state` after a sync that applied `changes`:
    /// only the changed ports are looked at, unless the sync was full.
    pub(super) fn update(&mut self, state: &ProxyState, changes: &Changes) {
        let names: BTreeSet<(IpFamily, ServicePortName)> = if changes.full() {
            let known = self.ports.values().flat_map(|ports| ports.keys().cloned());
            let present = state.families().flat_map(|view| {
                let services = view.services.iter().map(|(name, _)| name);
                let endpoints = view.endpoints.iter().map(|(name, _)| name);
                services.chain(endpoints).map(|name| (view.family, name.clone()))
            });
            known.chain(present).collect()
        } else {
            let changed = |family| changes.family(family).service_ports.iter().map(move |name| (family, name.clone()));
            IpFamily::ALL.into_iter().flat_map(changed).collect()
        };
        let mut services = BTreeSet::new();
        for (family, name) in names {
            let new = PortInputs::of(state, family, &name);
            services.insert(name.service.clone());
            let ports = self.ports.entry(name.service.clone()).or_default();
            let old = if new == PortInputs::default() {
                ports.remove(&(family, name))
            } else {
                ports.insert((family, name), new.clone())
            };
            let old = old.unwrap_or_default();
            let inputs = &mut self.inputs;
            let (internal, external) = (
                &mut inputs.no_local_endpoints_internal[family.index()],
                &mut inputs.no_local_endpoints_external[family.index()],
            );
            *internal = *internal - usize::from(old.no_local_internal) + usize::from(new.no_local_internal);
            *external = *external - usize::from(old.no_local_external) + usize::from(new.no_local_external);
        }
        services.into_iter().for_each(|service| self.refresh(service));
    }

    /// Recomputes the per-Service inputs of `service` from its ports.
    fn refresh(&mut self, service: NamespacedName) {
        let ports = self.ports.get(&service).filter(|ports| !ports.is_empty());
        let health_check = ports.and_then(|ports| ports.values().find_map(|p| p.health_check_node_port));
        let local: BTreeSet<IpAddr> =
            ports.into_iter().flat_map(|ports| ports.values().flat_map(|p| p.local_ready.iter().copied())).collect();
        if ports.is_none() {
            self.ports.remove(&service);
        }
        match health_check {
            Some(port) => self.inputs.health_check_node_ports.insert(service.clone(), port),
            None => self.inputs.health_check_node_ports.remove(&service),
        };
        match local.len() {
            0 => self.inputs.local_endpoints.remove(&service),
            count => self.inputs.local_endpoints.insert(service, count),
        };
    }
}

#[cfg(test)]
#[path = "health_inputs_tests.rs"]
mod tests;
