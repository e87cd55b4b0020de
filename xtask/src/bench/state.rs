//! Synthetic proxy states: `services` ClusterIP service ports with `endpoints` each.

use std::net::{IpAddr, Ipv4Addr};

use kproxy_core::{Changes, Endpoint, IpFamily, NamespacedName, Protocol, ProxyState, ServicePort, ServicePortName};

/// Cluster IP of service `i` (172.30.0.0/16 and up).
pub(crate) fn service_ip(i: usize) -> Ipv4Addr {
    let n = u32::try_from(i).unwrap_or(0) + 1;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 30, 0, 0)) + n)
}

/// Endpoint `j` of service `i` (10.64.0.0/10, never a real pod of the bench).
pub(crate) fn endpoint_ip(i: usize, j: usize, per_service: usize) -> Ipv4Addr {
    let n = u32::try_from(i * per_service + j).unwrap_or(0) + 1;
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + n)
}

/// The name of service port `i`.
pub(crate) fn port_name(i: usize) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("bench", format!("svc{i}")), "http", Protocol::Tcp)
}

/// A state with `services` service ports of `per_service` endpoints each.
pub(crate) fn synthetic(services: usize, per_service: usize) -> ProxyState {
    let mut state = ProxyState::new("node1");
    let view = state.family_mut(IpFamily::V4);
    for i in 0..services {
        let name = port_name(i);
        view.services.insert(name.clone(), ServicePort::new(IpAddr::V4(service_ip(i)), 80, Protocol::Tcp));
        let endpoints =
            (0..per_service).map(|j| Endpoint::new(IpAddr::V4(endpoint_ip(i, j, per_service)), 8080)).collect();
        view.endpoints.insert(name, endpoints);
    }
    state
}

/// Replaces the first endpoint of service port `round × 7` in `state` (of `per_service`
/// endpoints each) with an address no service has: the same change at any number of
/// services. Returns the changes that sync it.
pub(crate) fn change_one_endpoint(state: &mut ProxyState, round: usize, per_service: usize) -> Changes {
    let name = port_name(round * 7);
    let fresh = Endpoint::new(IpAddr::V4(endpoint_ip(1_000_000 + round, 0, per_service)), 8080);
    let view = state.family_mut(IpFamily::V4);
    let mut endpoints = view.endpoints.get(&name).to_vec();
    if let Some(first) = endpoints.first_mut() {
        *first = fresh;
    }
    view.endpoints.insert(name.clone(), endpoints);
    let mut changes = Changes::default();
    changes.family_mut(IpFamily::V4).service_ports.insert(name);
    changes
}
