use std::net::IpAddr;

use kproxy_core::{Endpoint, IpFamily, NamespacedName, Protocol, ProxyState, ServicePort, ServicePortName};

use super::*;

fn name(svc: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns", svc), "p", protocol)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn endpoint(addr: &str, local: bool) -> Endpoint {
    Endpoint { is_local: local, ..Endpoint::new(ip(addr), 8080) }
}

/// A state with one IPv4 service port `svc` shaped by `f`, with `endpoints`.
fn state(port: ServicePort, endpoints: Vec<Endpoint>) -> (ProxyState, ServicePortName) {
    let mut state = ProxyState::new("node1");
    state.node.addresses = vec![ip("192.168.0.2"), ip("fd00::2")];
    let n = name("svc", port.protocol);
    let view = state.family_mut(IpFamily::V4);
    view.services.insert(n.clone(), port);
    view.endpoints.insert(n.clone(), endpoints);
    (state, n)
}

fn tcp(cluster_ip: &str) -> ServicePort {
    ServicePort::new(ip(cluster_ip), 80, Protocol::Tcp)
}

fn config() -> UserspaceConfig {
    UserspaceConfig { cluster_cidrs: vec!["10.0.0.0/16".parse().unwrap()], ..UserspaceConfig::default() }
}

/// The elements of set `set` in the IPv4 plan, with the role of their listener.
fn elements(plan: &Plan, set: Set) -> Vec<(String, Option<Role>)> {
    plan.families[0]
        .elements
        .iter()
        .filter(|((s, _), _)| *s == set)
        .map(|((_, key), l)| (key.clone(), l.as_ref().map(|l| l.role)))
        .collect()
}

#[test]
fn cluster_ip_gets_one_cluster_listener() {
    let (state, n) = state(tcp("172.30.0.1"), vec![endpoint("10.0.1.10", true), endpoint("10.0.2.10", false)]);
    let plan = plan(&config(), &state);
    assert_eq!(plan.listeners.len(), 1);
    let (key, spec) = plan.listeners.iter().next().unwrap();
    assert_eq!((key.role, &key.name), (Role::Cluster, &n));
    assert_eq!(spec.endpoints, vec!["10.0.1.10:8080".parse().unwrap(), "10.0.2.10:8080".parse().unwrap()]);
    assert_eq!(spec.destinations, Destinations { vips: vec![ip("172.30.0.1")], port: 80, node_port: None });
    assert_eq!(elements(&plan, Set::Internal), [("172.30.0.1 . tcp . 80".to_owned(), Some(Role::Cluster))]);
    assert_eq!(elements(&plan, Set::ServiceIps), [("172.30.0.1 . tcp . 80".to_owned(), None)]);
    assert_eq!(elements(&plan, Set::ClusterCidrs), [("10.0.0.0/16".to_owned(), None)]);
    assert_eq!(plan.families[0].portal_ip, Some(ip("192.168.0.2")));
    assert_eq!(plan.families[1].portal_ip, Some(ip("fd00::2")));
}

#[test]
fn no_endpoints_rejects_every_address_and_binds_nothing() {
    let port = ServicePort { node_port: Some(30080), external_ips: vec![ip("192.168.99.1")], ..tcp("172.30.0.1") };
    let (state, _) = state(port, vec![]);
    let plan = plan(&config(), &state);
    assert!(plan.listeners.is_empty());
    let rejected: Vec<String> = elements(&plan, Set::NoEndpoints).into_iter().map(|(k, _)| k).collect();
    assert_eq!(rejected, ["172.30.0.1 . tcp . 80", "192.168.99.1 . tcp . 80"]);
    assert_eq!(elements(&plan, Set::NoEndpointNodePorts), [("tcp . 30080".to_owned(), None)]);
    assert!(elements(&plan, Set::ServiceIps).is_empty());
}

#[test]
fn external_policy_local_splits_outside_and_short_circuit_traffic() {
    let port = ServicePort {
        node_port: Some(30080),
        load_balancer_vips: vec![ip("1.2.3.4")],
        external_policy_local: true,
        ..tcp("172.30.0.1")
    };
    let (state, _) = state(port, vec![endpoint("10.0.1.10", true), endpoint("10.0.2.10", false)]);
    let plan = plan(&config(), &state);
    let roles: Vec<Role> = plan.listeners.keys().map(|k| k.role).collect();
    assert_eq!(roles, [Role::Cluster, Role::Local]);
    let local = plan.listeners.iter().find(|(k, _)| k.role == Role::Local).unwrap().1;
    assert_eq!(local.endpoints, vec!["10.0.1.10:8080".parse().unwrap()]);
    assert_eq!(elements(&plan, Set::External), [("1.2.3.4 . tcp . 80".to_owned(), Some(Role::Local))]);
    assert_eq!(elements(&plan, Set::Short), [("1.2.3.4 . tcp . 80".to_owned(), Some(Role::Cluster))]);
    assert_eq!(elements(&plan, Set::ExternalNodePorts), [("tcp . 30080".to_owned(), Some(Role::Local))]);
    assert_eq!(elements(&plan, Set::ShortNodePorts), [("tcp . 30080".to_owned(), Some(Role::Cluster))]);
    assert_eq!(elements(&plan, Set::Internal), [("172.30.0.1 . tcp . 80".to_owned(), Some(Role::Cluster))]);
}

#[test]
fn policy_local_without_local_endpoints_leaves_only_the_drop() {
    let port = ServicePort { node_port: Some(30080), external_policy_local: true, ..tcp("172.30.0.1") };
    let (etp, _) = state(port, vec![endpoint("10.0.2.10", false)]);
    let etp = plan(&config(), &etp);
    assert!(elements(&etp, Set::ExternalNodePorts).is_empty(), "no local endpoint: dropped");
    assert_eq!(elements(&etp, Set::ServiceNodePorts), [("tcp . 30080".to_owned(), None)]);
    assert_eq!(elements(&etp, Set::ShortNodePorts).len(), 1, "pods still reach the cluster endpoints");

    let itp = ServicePort { internal_policy_local: true, ..tcp("172.30.0.2") };
    let (itp, _) = state(itp, vec![endpoint("10.0.2.10", false)]);
    let itp = plan(&config(), &itp);
    assert!(itp.listeners.is_empty());
    assert!(elements(&itp, Set::Internal).is_empty());
    assert!(elements(&itp, Set::NoEndpoints).is_empty(), "endpoints exist elsewhere: drop, not reject");
    assert_eq!(elements(&itp, Set::ServiceIps).len(), 1);
}

#[test]
fn source_ranges_firewall_load_balancer_ips_only() {
    let port = ServicePort {
        load_balancer_vips: vec![ip("1.2.3.4")],
        external_ips: vec![ip("192.168.99.1")],
        load_balancer_source_ranges: vec!["192.168.0.100/32".parse().unwrap(), "192.168.0.0/24".parse().unwrap()],
        ..tcp("172.30.0.1")
    };
    let (state, _) = state(port, vec![endpoint("10.0.2.10", false)]);
    let plan = plan(&config(), &state);
    assert_eq!(elements(&plan, Set::Firewall), [("1.2.3.4 . tcp . 80".to_owned(), None)]);
    assert_eq!(elements(&plan, Set::FirewallAllowed), [("1.2.3.4 . tcp . 80 . 192.168.0.0/24".to_owned(), None)]);
    let external = elements(&plan, Set::External);
    assert_eq!(
        external,
        [
            ("1.2.3.4 . tcp . 80".to_owned(), Some(Role::Firewall)),
            ("192.168.99.1 . tcp . 80".to_owned(), Some(Role::Cluster))
        ]
    );
    let firewall = plan.listeners.iter().find(|(k, _)| k.role == Role::Firewall).unwrap().1;
    assert_eq!(firewall.allowed_sources, vec!["192.168.0.0/24".parse::<IpNet>().unwrap()]);
}

#[test]
fn affinity_and_protocol_reach_the_listener_and_sctp_is_skipped() {
    let udp = ServicePort {
        session_affinity: kproxy_core::SessionAffinity::ClientIp { timeout_seconds: 7 },
        ..ServicePort::new(ip("172.30.0.1"), 53, Protocol::Udp)
    };
    let (mut state, _) = state(udp, vec![endpoint("10.0.2.10", false)]);
    let sctp = name("sctp", Protocol::Sctp);
    let view = state.family_mut(IpFamily::V4);
    view.services.insert(sctp.clone(), ServicePort::new(ip("172.30.0.9"), 9, Protocol::Sctp));
    view.endpoints.insert(sctp.clone(), vec![endpoint("10.0.2.10", false)]);
    let plan = plan(&config(), &state);
    let spec = plan.listeners.values().next().unwrap();
    assert_eq!((spec.protocol, spec.affinity), (Protocol::Udp, Some(Duration::from_secs(7))));
    assert_eq!(plan.skipped, vec![sctp]);
    assert_eq!(plan.listeners.len(), 1);
}

#[test]
fn a_taken_address_stays_with_the_first_service() {
    let mut state = ProxyState::new("node1");
    let view = state.family_mut(IpFamily::V4);
    for svc in ["a", "b"] {
        let n = name(svc, Protocol::Tcp);
        view.services.insert(n.clone(), ServicePort { external_ips: vec![ip("192.168.99.1")], ..tcp("172.30.0.1") });
        view.endpoints.insert(n, vec![endpoint("10.0.2.10", false)]);
    }
    let plan = plan(&config(), &state);
    let internal = &plan.families[0].elements[&(Set::Internal, "172.30.0.1 . tcp . 80".to_owned())];
    assert_eq!(internal.as_ref().unwrap().name.service.name, "a");
    assert_eq!(plan.families[0].portal_ip, None, "no node address: redirect");
}
