//! Names of the table's fixed sets, maps and chains.

use kproxy_core::Protocol;

/// Pod CIDRs (the local-traffic detector).
pub const CLUSTER_CIDRS: &str = "cluster-cidrs";
/// Local addresses accepting node ports, when restricted.
pub const NODEPORT_IPS: &str = "nodeport-ips";
/// `endpoint . endpoint` pairs: a pod reaching itself through a service is masqueraded.
pub const HAIRPIN: &str = "hairpin-endpoints";
/// `vip . proto . port` of load balancers with source ranges.
pub const FIREWALL_PROTECTED: &str = "firewall-protected";
/// `vip . proto . port . source range` allowed through.
pub const FIREWALL_ALLOW: &str = "firewall-allow";
/// Active cluster IPs: traffic still addressed to one after DNAT hit no service port.
pub const CLUSTER_IPS: &str = "cluster-ips";
/// Named counter: forwarded packets dropped in conntrack state INVALID.
pub const CT_STATE_INVALID_DROPPED: &str = "ct-state-invalid-dropped";
/// Named counter: new connections to a served node port on loopback, which nothing serves
/// there unless the localhost relay does.
pub const LOCALHOST_NODEPORTS_REJECTED: &str = "localhost-nodeports-rejected";
/// `vip . proto . port : verdict`: where service traffic goes.
pub const SERVICE_IPS: &str = "service-ips";
/// `proto . port : verdict` for node ports.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// `vip . proto . port : reject|drop` for services without usable endpoints.
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
/// `proto . port : reject|drop` for node ports without usable endpoints.
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";

/// Chain of the service dispatch.
pub const SERVICES: &str = "services";
/// Chain marking a packet for masquerading.
pub const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
/// Chain masquerading marked and hairpin packets.
pub const MASQUERADING: &str = "masquerading";
/// Chain rejecting a packet (connection refused).
pub const REJECT: &str = "reject-chain";
/// Chain dropping external traffic (policy Local, no local endpoint) that the external
/// chain does not short-circuit to the cluster-IP path.
pub const SHORT_CIRCUIT_OR_DROP: &str = "short-circuit-or-drop";
/// Chain dropping traffic from sources outside a load balancer's ranges.
pub const FIREWALL_CHECK: &str = "firewall-check";
/// Chain refusing traffic to services without endpoints.
pub const SERVICE_ENDPOINTS_CHECK: &str = "service-endpoints-check";
/// Chain refusing traffic to unknown ports of cluster IPs and dropping traffic to
/// unallocated addresses of the service CIDRs (after DNAT).
pub const CLUSTER_IPS_CHECK: &str = "cluster-ips-check";
/// Chain refusing traffic to node ports without endpoints.
pub const NODEPORT_ENDPOINTS_CHECK: &str = "nodeport-endpoints-check";

/// Which endpoint set a path uses: upstream's cluster or local policy chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKind {
    /// `categorize_endpoints`' cluster set.
    Cluster,
    /// `categorize_endpoints`' local set.
    Local,
}

impl EndpointKind {
    /// `cluster` or `local`, used in chain names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::Local => "local",
        }
    }

    /// The map from `vip . port . index` to an endpoint of this kind and protocol. Maps
    /// are per protocol because nft 1.0 cannot re-read a `typeof` key that mixes
    /// `meta l4proto` with `th dport`.
    pub fn endpoints_map(self, protocol: Protocol) -> &'static str {
        match (self, protocol) {
            (Self::Cluster, Protocol::Tcp) => "cluster-endpoints-tcp",
            (Self::Cluster, Protocol::Udp) => "cluster-endpoints-udp",
            (Self::Cluster, Protocol::Sctp) => "cluster-endpoints-sctp",
            (Self::Local, Protocol::Tcp) => "local-endpoints-tcp",
            (Self::Local, Protocol::Udp) => "local-endpoints-udp",
            (Self::Local, Protocol::Sctp) => "local-endpoints-sctp",
        }
    }

    /// The map from `nodeport . index` to an endpoint of this kind and protocol.
    pub fn nodeport_endpoints_map(self, protocol: Protocol) -> &'static str {
        match (self, protocol) {
            (Self::Cluster, Protocol::Tcp) => "cluster-nodeport-endpoints-tcp",
            (Self::Cluster, Protocol::Udp) => "cluster-nodeport-endpoints-udp",
            (Self::Cluster, Protocol::Sctp) => "cluster-nodeport-endpoints-sctp",
            (Self::Local, Protocol::Tcp) => "local-nodeport-endpoints-tcp",
            (Self::Local, Protocol::Udp) => "local-nodeport-endpoints-udp",
            (Self::Local, Protocol::Sctp) => "local-nodeport-endpoints-sctp",
        }
    }
}

/// Both endpoint kinds.
pub const ENDPOINT_KINDS: [EndpointKind; 2] = [EndpointKind::Cluster, EndpointKind::Local];
/// Every protocol a service port may carry.
pub const PROTOCOLS: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];
