//! Stale UDP flows: when a UDP endpoint goes away, conntrack keeps steering the datagrams
//! of the flows it answered to it until they time out, so after a sync upstream deletes
//! those flows (`pkg/proxy/conntrack/cleanup.go`). Which flows those are is the same for
//! every dataplane; deleting them is the dataplane's business.

use std::net::IpAddr;

use crate::{Changes, IpFamily, ProxyState, ServicePort, ServicePortName};

/// UDP flows whose original destination is `service` (an IP, or any local address when
/// `None`) and port `port`, answered by `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowFilter {
    /// The service address the client sent to; `None` for a node port (any address).
    pub service: Option<IpAddr>,
    /// The port the client sent to (service port or node port).
    pub port: u16,
    /// The endpoint that answered.
    pub endpoint: IpAddr,
}

/// Where clients reach a service port: what its flows are keyed on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Destinations {
    /// Cluster IP, external IPs and load-balancer IPs ([`ServicePort::vips`]).
    pub vips: Vec<IpAddr>,
    /// The service port.
    pub port: u16,
    /// The node port, if any.
    pub node_port: Option<u16>,
}

impl Destinations {
    /// Where clients reach `port`.
    pub fn of(port: &ServicePort) -> Self {
        Self { vips: port.vips().collect(), port: port.port, node_port: port.node_port }
    }

    /// The flows to these destinations that `endpoint` answered: one per address, then the
    /// node port's.
    pub fn flows(&self, endpoint: IpAddr) -> impl Iterator<Item = FlowFilter> + '_ {
        let by_vip = self.vips.iter().map(move |vip| FlowFilter { service: Some(*vip), port: self.port, endpoint });
        let by_node_port = self.node_port.map(|port| FlowFilter { service: None, port, endpoint });
        by_vip.chain(by_node_port)
    }
}

/// What one deletion of stale flows did, for upstream's conntrack reconciler metrics
/// (`kubeproxy_conntrack_reconciler_sync_duration_seconds` and
/// `kubeproxy_conntrack_reconciler_deleted_entries_total`, per family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowCleanup {
    /// How long the deletion took.
    pub duration: std::time::Duration,
    /// The families whose flows were looked at (indexed by [`IpFamily::index`]).
    pub families: [bool; 2],
    /// Flows deleted, per family (indexed by [`IpFamily::index`]); a flow that was already
    /// gone is not counted.
    pub deleted: [u64; 2],
}

/// The flows to delete for every stale UDP endpoint of `families` in `changes`: behind each
/// address of its service port and behind its node port. Call it before a sync: a port
/// that is gone from `state` is looked up with `committed` (what the dataplane last
/// programmed for it), and skipped when that does not know it either.
pub fn stale_udp_flows(
    state: &ProxyState,
    changes: &Changes,
    families: &[IpFamily],
    committed: impl Fn(IpFamily, &ServicePortName) -> Option<Destinations>,
) -> Vec<(ServicePortName, FlowFilter)> {
    let mut flows = Vec::new();
    for &family in families {
        for (name, endpoint) in &changes.family(family).stale_udp_endpoints {
            let destinations = match state.family(family).services.get(name) {
                Some(port) => Destinations::of(port),
                None => match committed(family, name) {
                    Some(destinations) => destinations,
                    None => continue,
                },
            };
            flows.extend(destinations.flows(endpoint.ip).map(|f| (name.clone(), f)));
        }
    }
    flows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, NamespacedName, Protocol};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn dns() -> ServicePortName {
        ServicePortName::new(NamespacedName::new("ns", "dns"), "dns", Protocol::Udp)
    }

    fn stale(name: ServicePortName) -> Changes {
        let mut changes = Changes::default();
        changes.family_mut(IpFamily::V4).stale_udp_endpoints.push((name, Endpoint::new(ip("10.0.0.5"), 5353)));
        changes
    }

    #[test]
    fn every_address_and_the_node_port_are_cleared() {
        let mut state = ProxyState::new("node1");
        let port = ServicePort {
            node_port: Some(30053),
            external_ips: vec![ip("192.168.99.1")],
            load_balancer_vips: vec![ip("1.2.3.4")],
            ..ServicePort::new(ip("172.30.0.10"), 53, Protocol::Udp)
        };
        state.family_mut(IpFamily::V4).services.insert(dns(), port);
        let flows = stale_udp_flows(&state, &stale(dns()), &[IpFamily::V4], |_, _| None);
        let flow =
            |service: Option<&str>, port| FlowFilter { service: service.map(ip), port, endpoint: ip("10.0.0.5") };
        let expected = [
            flow(Some("172.30.0.10"), 53),
            flow(Some("192.168.99.1"), 53),
            flow(Some("1.2.3.4"), 53),
            flow(None, 30053),
        ];
        assert_eq!(flows, expected.map(|f| (dns(), f)));
    }

    #[test]
    fn a_deleted_port_is_cleared_where_it_was_committed() {
        let state = ProxyState::new("node1");
        let committed = Destinations { vips: vec![ip("172.30.0.10")], port: 53, node_port: None };
        let flows = stale_udp_flows(&state, &stale(dns()), &[IpFamily::V4], |family, name| {
            (family == IpFamily::V4 && *name == dns()).then(|| committed.clone())
        });
        assert_eq!(
            flows,
            [(dns(), FlowFilter { service: Some(ip("172.30.0.10")), port: 53, endpoint: ip("10.0.0.5") })]
        );
        assert!(stale_udp_flows(&state, &stale(dns()), &[IpFamily::V4], |_, _| None).is_empty());
    }

    #[test]
    fn only_the_given_families_are_read() {
        let state = ProxyState::new("node1");
        let committed =
            |_: IpFamily, _: &ServicePortName| Some(Destinations { node_port: Some(30053), ..Destinations::default() });
        assert!(stale_udp_flows(&state, &stale(dns()), &[IpFamily::V6], committed).is_empty());
        assert_eq!(stale_udp_flows(&state, &stale(dns()), &IpFamily::ALL, committed).len(), 1);
    }
}
