use std::net::{IpAddr, SocketAddr};

use kproxy_core::{Endpoint, Protocol, ServicePort, SessionAffinity, TopologyNode};

use super::*;

const NODE_IPS: [&str; 2] = ["192.168.0.2", "fd00::2"];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ctx(addresses: &[IpAddr]) -> PlanContext<'_> {
    PlanContext {
        node: TopologyNode { name: "node1", zone: None },
        node_addresses: addresses,
        primary_addresses: &[],
        nodeport_addresses: &NodePortAddresses::All,
    }
}

fn endpoint(addr: &str, local: bool) -> Endpoint {
    let addr: SocketAddr = addr.parse().unwrap();
    Endpoint { is_local: local, ..Endpoint::new(addr.ip(), addr.port()) }
}

fn addrs(plan: &PortPlan, role: Role) -> Vec<String> {
    plan.sets.get(&role).map(|s| s.iter().map(|a| a.socket_addr().to_string()).collect()).unwrap_or_default()
}

fn key(addr: &str, protocol: Protocol) -> KpServiceKey {
    let addr: SocketAddr = addr.parse().unwrap();
    KpServiceKey::new(addr.ip(), addr.port(), protocol)
}

#[test]
fn a_cluster_ip_balances_over_the_ready_endpoints() {
    let port = ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp);
    let eps = [endpoint("10.0.1.10:8080", true), endpoint("10.0.2.10:8080", false)];
    let plan = plan_port(&ctx(&[]), IpFamily::V4, &port, &eps);
    assert_eq!(addrs(&plan, Role::Cluster), ["10.0.1.10:8080", "10.0.2.10:8080"]);
    let entry = plan.entries[&key("172.30.0.1:80", Protocol::Tcp)];
    assert_eq!(entry, Entry { role: Role::Cluster, flags: 0, affinity_secs: 0 });
    assert_eq!(plan.entries.len(), 1);
}

#[test]
fn a_port_without_endpoints_is_refused() {
    let port = ServicePort::new(ip("172.30.0.1"), 53, Protocol::Udp);
    let plan = plan_port(&ctx(&[]), IpFamily::V4, &port, &[]);
    assert_eq!(plan.entries[&key("172.30.0.1:53", Protocol::Udp)].flags, SVC_REJECT);
    assert!(plan.sets.values().all(Vec::is_empty));
}

#[test]
fn internal_policy_local_uses_local_endpoints_and_leaves_the_call_alone_without_them() {
    let port = ServicePort { internal_policy_local: true, ..ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp) };
    let eps = [endpoint("10.0.1.10:8080", true), endpoint("10.0.2.10:8080", false)];
    let plan = plan_port(&ctx(&[]), IpFamily::V4, &port, &eps);
    assert_eq!(addrs(&plan, Role::Local), ["10.0.1.10:8080"]);
    assert_eq!(plan.entries[&key("172.30.0.1:80", Protocol::Tcp)].role, Role::Local);

    // Endpoints elsewhere only: not refused (upstream drops), so no entry at all.
    let remote = [endpoint("10.0.2.10:8080", false)];
    let plan = plan_port(&ctx(&[]), IpFamily::V4, &port, &remote);
    assert!(plan.entries.is_empty(), "{plan:?}");
    assert!(plan.sets.is_empty());
}

#[test]
fn external_addresses_and_node_ports_on_node_addresses_use_the_cluster_set() {
    let node_ips = NODE_IPS.map(ip);
    let port = ServicePort {
        node_port: Some(30080),
        external_ips: vec![ip("192.168.99.11")],
        load_balancer_vips: vec![ip("1.2.3.4")],
        external_policy_local: true,
        ..ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp)
    };
    let eps = [endpoint("10.0.1.10:8080", true), endpoint("10.0.2.10:8080", false)];
    let plan = plan_port(&ctx(&node_ips), IpFamily::V4, &port, &eps);
    let keys: Vec<String> = plan.entries.keys().map(|k| k.socket_addr().to_string()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    for address in ["172.30.0.1:80", "192.168.99.11:80", "1.2.3.4:80", "192.168.0.2:30080"] {
        let entry = plan.entries[&key(address, Protocol::Tcp)];
        assert_eq!(entry.role, Role::Cluster, "{address}: the node's own clients use every endpoint");
    }
    assert_eq!(addrs(&plan, Role::Cluster).len(), 2);
}

#[test]
fn nodeport_cidrs_narrow_the_node_addresses() {
    let node_ips = [ip("192.168.0.2"), ip("10.9.9.9")];
    let cidrs = NodePortAddresses::Cidrs(vec!["10.0.0.0/8".parse().unwrap()]);
    let context = PlanContext { nodeport_addresses: &cidrs, ..ctx(&node_ips) };
    let port = ServicePort { node_port: Some(30080), ..ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp) };
    let plan = plan_port(&context, IpFamily::V4, &port, &[endpoint("10.0.1.10:8080", true)]);
    assert!(plan.entries.contains_key(&key("10.9.9.9:30080", Protocol::Tcp)));
    assert!(!plan.entries.contains_key(&key("192.168.0.2:30080", Protocol::Tcp)));
}

#[test]
fn primary_takes_only_the_primary_ips_of_the_node() {
    let node_ips = [ip("192.168.0.2"), ip("192.168.0.50")];
    let primary = [ip("192.168.0.2")];
    let context =
        PlanContext { nodeport_addresses: &NodePortAddresses::Primary, primary_addresses: &primary, ..ctx(&node_ips) };
    let port = ServicePort { node_port: Some(30080), ..ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp) };
    let plan = plan_port(&context, IpFamily::V4, &port, &[endpoint("10.0.1.10:8080", true)]);
    assert!(plan.entries.contains_key(&key("192.168.0.2:30080", Protocol::Tcp)));
    assert!(!plan.entries.contains_key(&key("192.168.0.50:30080", Protocol::Tcp)), "a secondary address");
    let none = PlanContext { nodeport_addresses: &NodePortAddresses::Primary, ..ctx(&node_ips) };
    let plan = plan_port(&none, IpFamily::V4, &port, &[endpoint("10.0.1.10:8080", true)]);
    assert!(!plan.entries.keys().any(|k| *k == key("192.168.0.2:30080", Protocol::Tcp)), "no primary IP known");
}

#[test]
fn client_ip_affinity_sets_the_flag_and_timeout() {
    let port = ServicePort {
        session_affinity: SessionAffinity::ClientIp { timeout_seconds: 10 },
        ..ServicePort::new(ip("fd00::1"), 80, Protocol::Tcp)
    };
    let plan = plan_port(&ctx(&NODE_IPS.map(ip)), IpFamily::V6, &port, &[endpoint("[fd00:10:1::10]:8080", true)]);
    let entry = plan.entries[&key("[fd00::1]:80", Protocol::Tcp)];
    assert_eq!((entry.flags, entry.affinity_secs), (SVC_AFFINITY, 10));
    assert_eq!(addrs(&plan, Role::Cluster), ["[fd00:10:1::10]:8080"]);
}

#[test]
fn serving_terminating_endpoints_stand_in_when_none_is_ready() {
    let port = ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp);
    let terminating = Endpoint { ready: false, terminating: true, ..endpoint("10.0.2.10:8080", false) };
    let plan = plan_port(&ctx(&[]), IpFamily::V4, &port, &[terminating]);
    assert_eq!(addrs(&plan, Role::Cluster), ["10.0.2.10:8080"]);
    assert_eq!(plan.entries[&key("172.30.0.1:80", Protocol::Tcp)].flags, 0);
}

/// A NodePort/LoadBalancer port with an external IP, one endpoint here and one elsewhere.
fn exposed(policy_local: bool) -> ServicePort {
    ServicePort {
        node_port: Some(30080),
        external_ips: vec![ip("192.168.99.11")],
        load_balancer_vips: vec![ip("1.2.3.4")],
        external_policy_local: policy_local,
        ..ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp)
    }
}

fn outside(plan: &PortPlan, address: &str) -> ExternalEntry {
    plan.external[&key(address, Protocol::Tcp)]
}

#[test]
fn from_outside_policy_cluster_masquerades_to_the_node_address_over_every_endpoint() {
    let node_ips = NODE_IPS.map(ip);
    let eps = [endpoint("10.0.1.10:8080", true), endpoint("10.0.2.10:8080", false)];
    let plan = plan_port(&ctx(&node_ips), IpFamily::V4, &exposed(false), &eps);
    for address in ["172.30.0.1:80", "192.168.99.11:80", "1.2.3.4:80", "192.168.0.2:30080"] {
        let external = outside(&plan, address);
        assert_eq!(external.entry.role, Role::Cluster, "{address}");
        assert_eq!(external.entry.flags, SVC_SNAT, "{address}");
        assert_eq!(external.snat, Some(ip("192.168.0.2")), "{address}: replies come back through this node");
        assert!(!external.source_ranges);
    }
    assert_eq!(plan.external.len(), 4);
    assert_eq!(addrs(&plan, Role::Cluster), ["10.0.1.10:8080", "10.0.2.10:8080"]);
}

#[test]
fn from_outside_policy_local_keeps_the_source_and_uses_local_endpoints_only() {
    let node_ips = NODE_IPS.map(ip);
    let eps = [endpoint("10.0.1.10:8080", true), endpoint("10.0.2.10:8080", false)];
    let plan = plan_port(&ctx(&node_ips), IpFamily::V4, &exposed(true), &eps);
    for address in ["192.168.99.11:80", "1.2.3.4:80", "192.168.0.2:30080"] {
        let external = outside(&plan, address);
        assert_eq!((external.entry.role, external.entry.flags, external.snat), (Role::Local, 0, None), "{address}");
    }
    let cluster_ip = outside(&plan, "172.30.0.1:80");
    assert_eq!((cluster_ip.entry.role, cluster_ip.entry.flags), (Role::Cluster, SVC_SNAT), "internal policy applies");
    assert_eq!(addrs(&plan, Role::Local), ["10.0.1.10:8080"]);
    assert_eq!(plan.entries[&key("1.2.3.4:80", Protocol::Tcp)].role, Role::Cluster, "node clients use every endpoint");
}

#[test]
fn from_outside_policy_local_without_local_endpoints_has_an_empty_set_so_it_is_dropped() {
    let plan = plan_port(&ctx(&NODE_IPS.map(ip)), IpFamily::V4, &exposed(true), &[endpoint("10.0.2.10:8080", false)]);
    let node_port = outside(&plan, "192.168.0.2:30080");
    assert_eq!((node_port.entry.role, node_port.entry.flags), (Role::Local, 0), "not refused: dropped");
    assert_eq!(plan.sets.get(&Role::Local).map(Vec::len), Some(0));
}

#[test]
fn without_any_endpoint_traffic_from_outside_is_refused() {
    let plan = plan_port(&ctx(&NODE_IPS.map(ip)), IpFamily::V4, &exposed(false), &[]);
    assert_eq!(outside(&plan, "192.168.0.2:30080").entry.flags, SVC_REJECT | SVC_SNAT);
}

#[test]
fn source_ranges_guard_load_balancer_ips_only_and_keep_their_family() {
    let port = ServicePort {
        load_balancer_source_ranges: vec!["192.168.0.10/32".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..exposed(false)
    };
    let plan = plan_port(&ctx(&NODE_IPS.map(ip)), IpFamily::V4, &port, &[endpoint("10.0.1.10:8080", true)]);
    assert!(outside(&plan, "1.2.3.4:80").source_ranges);
    assert!(!outside(&plan, "192.168.0.2:30080").source_ranges && !outside(&plan, "192.168.99.11:80").source_ranges);
    assert_eq!(plan.source_ranges, ["192.168.0.10/32".parse::<ipnet::IpNet>().unwrap()]);
}

#[test]
fn without_a_node_address_of_the_family_nothing_is_masqueraded_from_outside() {
    let plan = plan_port(&ctx(&[ip("fd00::2")]), IpFamily::V4, &exposed(false), &[endpoint("10.0.1.10:8080", true)]);
    assert!(plan.external.is_empty(), "{plan:?}");
}
