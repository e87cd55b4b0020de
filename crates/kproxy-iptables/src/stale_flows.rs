//! Deleting the conntrack flows of UDP endpoints that went away, so their clients move on
//! (upstream's conntrack cleanup after a sync).

use kproxy_core::{Changes, IpFamily, ProxyState, ServicePortName};
use kproxy_netfilter::{Conntrack, FlowFilter};

use crate::apply::Committed;
use crate::render::Destinations;

/// The flows to delete for every stale UDP endpoint in `changes`: behind each address of
/// its service port and behind its node port. Computed before a sync, so that a deleted
/// port's addresses still come from what was committed (`committed`, per family).
pub(crate) fn stale_filters(
    state: &ProxyState,
    changes: &Changes,
    families: &[IpFamily],
    committed: &[Option<Committed>; 2],
) -> Vec<(ServicePortName, FlowFilter)> {
    let mut filters = Vec::new();
    for family in families {
        for (name, endpoint) in &changes.family(*family).stale_udp_endpoints {
            let Some(target) = destinations(state, committed[family.index()].as_ref(), *family, name) else { continue };
            let by_vip = target.vips.iter().map(|vip| FlowFilter {
                service: Some(*vip),
                port: target.port,
                endpoint: endpoint.ip,
            });
            let by_node_port = target.node_port.map(|port| FlowFilter { service: None, port, endpoint: endpoint.ip });
            filters.extend(by_vip.chain(by_node_port).map(|f| (name.clone(), f)));
        }
    }
    filters
}

/// Where clients reach `name`: from the state, or from what was committed if it is gone.
fn destinations(
    state: &ProxyState,
    committed: Option<&Committed>,
    family: IpFamily,
    name: &ServicePortName,
) -> Option<Destinations> {
    if let Some(port) = state.family(family).services.get(name) {
        let vips = std::iter::once(&port.cluster_ip).chain(&port.external_ips).chain(&port.load_balancer_vips);
        return Some(Destinations { vips: vips.copied().collect(), port: port.port, node_port: port.node_port });
    }
    committed?.destinations(name).cloned()
}

/// Deletes `filters`' flows. Failures are logged, not returned: the rules are in place and
/// the flows time out anyway.
pub(crate) async fn clear(conntrack: &dyn Conntrack, filters: Vec<(ServicePortName, FlowFilter)>) {
    for (name, filter) in filters {
        if let Err(error) = conntrack.delete_udp_flows(&filter).await {
            tracing::warn!(%error, service = %name, "cannot delete stale UDP flows");
        }
    }
}

#[cfg(test)]
mod tests {
    use kproxy_core::{Endpoint, NamespacedName, Protocol, ServicePort};

    use super::*;

    #[test]
    fn every_address_and_the_node_port_are_cleared() {
        let mut state = ProxyState::new("node1");
        let name = ServicePortName::new(NamespacedName::new("ns", "dns"), "dns", Protocol::Udp);
        let ip = |s: &str| s.parse().expect("IP");
        let port = ServicePort {
            node_port: Some(30053),
            external_ips: vec![ip("192.168.99.1")],
            ..ServicePort::new(ip("172.30.0.10"), 53, Protocol::Udp)
        };
        state.family_mut(IpFamily::V4).services.insert(name.clone(), port);
        let mut changes = Changes::default();
        changes.family_mut(IpFamily::V4).stale_udp_endpoints.push((name, Endpoint::new(ip("10.0.0.5"), 5353)));
        let filters = stale_filters(&state, &changes, &[IpFamily::V4], &[None, None]);
        assert_eq!(filters.len(), 3);
        assert_eq!(filters[2].1, FlowFilter { service: None, port: 30053, endpoint: ip("10.0.0.5") });
    }
}
