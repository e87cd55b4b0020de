//! The fixed IP plan of kproxy's tests, one for all of them (after upstream's "Conventions
//! for tests using NewFakeProxier"): the names and addresses unit and golden tests build
//! objects with, and the cluster of network namespaces the conformance suite wires up.
//!
//! Unit and golden tests: this node is [`NODE_NAME`] at [`NODE_IP`], pods are in
//! [`POD_CIDR`] (the cluster CIDR they configure), cluster IPs in [`SERVICE_CIDR`].
//!
//! The conformance cluster (kproxy-conformance): the same node1 and node2, its pods
//! (inside [`CLUSTER_CIDR_V4`], itself inside [`POD_CIDR`]), clients and the ranges that are
//! routed to node1.
//!
//! ```text
//!            lan (bridge 192.168.0.1, fd00:192:168::1; silently drops what it is sent)
//!   ┌──────────────┬──────────────┬──────────────┬──────────────┐
//! node1 .2        node2 .3       client .100    client2 .101
//!   ├─ pod1a 10.0.1.10            routes the service CIDR, LB and external IP ranges via node1
//!   └─ pod1b 10.0.1.11
//!                 ├─ pod2a 10.0.2.10
//!                 └─ pod2b 10.0.2.11
//! ```
//!
//! Cluster IPs, node ports, LB and external IPs are handed out by the harness's allocator from
//! the ranges below, never twice in one run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// This node's name.
pub const NODE_NAME: &str = "node1";
/// Another node's name.
pub const OTHER_NODE_NAME: &str = "node2";
/// This node's IP ([`NODE1_IPV4`]).
pub const NODE_IP: &str = "192.168.0.2";
/// Pod IPs are in this range: the cluster CIDR unit and golden tests configure.
pub const POD_CIDR: &str = "10.0.0.0/8";
/// Pod IPv6 addresses are in this range.
pub const POD_CIDR_V6: &str = "fd00:10::/64";
/// Cluster IPs are in this range ([`SERVICE_CIDR_V4`]).
pub const SERVICE_CIDR: &str = "172.30.0.0/16";
/// A load-balancer ingress IP.
pub const LB_IP: &str = "1.2.3.4";
/// An external IP.
pub const EXTERNAL_IP: &str = "192.168.99.11";

/// The node whose dataplane is under test ([`NODE_NAME`]).
pub const NODE1: &str = NODE_NAME;
/// The other node (no dataplane; it only routes to its pods; [`OTHER_NODE_NAME`]).
pub const NODE2: &str = OTHER_NODE_NAME;
/// node1's lan address.
pub const NODE1_IPV4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 2);
/// node1's lan address, IPv6.
pub const NODE1_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x192, 0x168, 0, 0, 0, 0, 2);
/// node2's lan address.
pub const NODE2_IPV4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 3);
/// node2's lan address, IPv6.
pub const NODE2_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x192, 0x168, 0, 0, 0, 0, 3);
/// The lan's own address: the nodes' default gateway, which drops whatever it is sent.
pub const LAN_GATEWAY_IPV4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// The lan's own address, IPv6.
pub const LAN_GATEWAY_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x192, 0x168, 0, 0, 0, 0, 1);
/// The external client.
pub const CLIENT: &str = "client";
/// The external client's address.
pub const CLIENT_IPV4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 100);
/// The external client's address, IPv6.
pub const CLIENT_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x192, 0x168, 0, 0, 0, 0, 0x100);
/// The second external client (outside load-balancer source ranges in the cases).
pub const CLIENT2: &str = "client2";
/// The second external client's address.
pub const CLIENT2_IPV4: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 101);
/// The second external client's address, IPv6.
pub const CLIENT2_IPV6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x192, 0x168, 0, 0, 0, 0, 0x101);
/// The lan's prefix length (both families use /24 and /64).
pub const LAN_PREFIX_V4: u8 = 24;

/// Every pod IP is in here (the cluster CIDR for the local-traffic detector).
pub const CLUSTER_CIDR_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 16);
/// Every pod IPv6 address is in here.
pub const CLUSTER_CIDR_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 0), 32);
/// node1's pod CIDR.
pub const NODE1_POD_CIDR_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 1, 0), 24);
/// node1's pod CIDR, IPv6.
pub const NODE1_POD_CIDR_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x10, 1, 0, 0, 0, 0, 0), 64);
/// node2's pod CIDR.
pub const NODE2_POD_CIDR_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 2, 0), 24);
/// node2's pod CIDR, IPv6.
pub const NODE2_POD_CIDR_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x10, 2, 0, 0, 0, 0, 0), 64);
/// Cluster IPs ([`SERVICE_CIDR`]).
pub const SERVICE_CIDR_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(172, 30, 0, 0), 16);
/// Cluster IPs, IPv6.
pub const SERVICE_CIDR_V6: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x172, 0x30, 0, 0, 0, 0, 0), 112);
/// Load-balancer ingress IPs ([`LB_IP`] is in it).
pub const LB_RANGE_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(1, 2, 3, 0), 24);
/// External IPs ([`EXTERNAL_IP`] is in it).
pub const EXTERNAL_IP_RANGE_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 99, 0), 24);
/// The first node port the allocator hands out (the default range is 30000-32767).
pub const NODE_PORT_BASE: u16 = 30000;

/// A TCP and UDP port every pod serves.
pub const PORT_HTTP: u16 = 8080;
/// A second TCP and UDP port every pod serves.
pub const PORT_ALT: u16 = 8081;
/// A third TCP and UDP port every pod serves.
pub const PORT_DNS: u16 = 53;
/// Every port a pod serves with both TCP and UDP.
pub const SERVED_PORTS: [u16; 3] = [PORT_HTTP, PORT_ALT, PORT_DNS];
/// The SCTP port every pod serves, when the kernel has SCTP.
pub const PORT_SCTP: u16 = 9090;
/// A port no pod listens on (connections to it are reset).
pub const PORT_CLOSED: u16 = 9;

/// One pod of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodPlan {
    /// The pod's name: the first word of every reply it sends.
    pub name: &'static str,
    /// The node it runs on.
    pub node: &'static str,
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
}

impl PodPlan {
    /// Its address of the family of `like`.
    pub fn ip_like(&self, like: IpAddr) -> IpAddr {
        if like.is_ipv4() { IpAddr::V4(self.ipv4) } else { IpAddr::V6(self.ipv6) }
    }
}

const fn pod(name: &'static str, node: &'static str, n: u8, host: u8, host6: u16) -> PodPlan {
    PodPlan {
        name,
        node,
        ipv4: Ipv4Addr::new(10, 0, n, host),
        ipv6: Ipv6Addr::new(0xfd00, 0x10, n as u16, 0, 0, 0, 0, host6),
    }
}

/// pod1a, on node1: 10.0.1.10, fd00:10:1::10.
pub const POD1A: PodPlan = pod("pod1a", NODE1, 1, 10, 0x10);
/// pod1b, on node1.
pub const POD1B: PodPlan = pod("pod1b", NODE1, 1, 11, 0x11);
/// pod2a, on node2.
pub const POD2A: PodPlan = pod("pod2a", NODE2, 2, 10, 0x10);
/// pod2b, on node2.
pub const POD2B: PodPlan = pod("pod2b", NODE2, 2, 11, 0x11);
/// Every pod, node1's first.
pub const PODS: [PodPlan; 4] = [POD1A, POD1B, POD2A, POD2B];

/// The cluster CIDRs (both families).
pub fn cluster_cidrs() -> Vec<IpNet> {
    vec![CLUSTER_CIDR_V4.into(), CLUSTER_CIDR_V6.into()]
}

/// The service CIDRs (both families).
pub fn service_cidrs() -> Vec<IpNet> {
    vec![SERVICE_CIDR_V4.into(), SERVICE_CIDR_V6.into()]
}

/// A pod of the plan by name.
pub fn pod_named(name: &str) -> Option<&'static PodPlan> {
    PODS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_of_unit_tests_and_of_the_conformance_cluster_agree() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip(NODE_IP), IpAddr::V4(NODE1_IPV4));
        assert_eq!(net(SERVICE_CIDR), IpNet::V4(SERVICE_CIDR_V4));
        assert!(IpNet::V4(LB_RANGE_V4).contains(&ip(LB_IP)));
        assert!(IpNet::V4(EXTERNAL_IP_RANGE_V4).contains(&ip(EXTERNAL_IP)));
        assert!(net(POD_CIDR).contains(&IpNet::V4(CLUSTER_CIDR_V4)));
        assert!(PODS.iter().all(|p| cluster_cidrs().iter().any(|c| c.contains(&IpAddr::V4(p.ipv4)))));
    }
}
