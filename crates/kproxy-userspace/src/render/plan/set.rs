//! The sets and maps of the redirect table.

/// The sets and maps of the redirect table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Set {
    /// `addr . proto . port` of service ports without any endpoint: rejected.
    NoEndpoints,
    /// `proto . port` node ports without any endpoint: rejected.
    NoEndpointNodePorts,
    /// `addr . proto . port` of load-balancer IPs with source ranges.
    Firewall,
    /// `addr . proto . port . source-range` admitted by those ranges.
    FirewallAllowed,
    /// Every `addr . proto . port` with endpoints: what no map sends on is dropped.
    ServiceIps,
    /// Every `proto . port` node port with endpoints.
    ServiceNodePorts,
    /// Map: cluster IPs → the internal policy's listener.
    Internal,
    /// Map: external and load-balancer IPs, from outside the cluster → the external
    /// policy's (or firewall) listener.
    External,
    /// Map: external and load-balancer IPs, from pods or the node → the cluster listener.
    Short,
    /// Map: node ports, from outside the cluster → the external policy's listener.
    ExternalNodePorts,
    /// Map: node ports, from pods or the node → the cluster listener.
    ShortNodePorts,
    /// Pod CIDRs (interval set).
    ClusterCidrs,
}

impl Set {
    /// Every set, in declaration order.
    pub const ALL: [Set; 12] = [
        Set::ClusterCidrs,
        Set::NoEndpoints,
        Set::NoEndpointNodePorts,
        Set::Firewall,
        Set::FirewallAllowed,
        Set::ServiceIps,
        Set::ServiceNodePorts,
        Set::Internal,
        Set::External,
        Set::Short,
        Set::ExternalNodePorts,
        Set::ShortNodePorts,
    ];

    /// The set's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoEndpoints => "no-endpoints",
            Self::NoEndpointNodePorts => "no-endpoint-nodeports",
            Self::Firewall => "firewall",
            Self::FirewallAllowed => "firewall-allowed",
            Self::ServiceIps => "service-ips",
            Self::ServiceNodePorts => "service-nodeports",
            Self::Internal => "internal",
            Self::External => "external",
            Self::Short => "short",
            Self::ExternalNodePorts => "external-nodeports",
            Self::ShortNodePorts => "short-nodeports",
            Self::ClusterCidrs => "cluster-cidrs",
        }
    }

    /// Whether it is a map whose values are listener ports.
    pub fn is_port_map(self) -> bool {
        matches!(self, Self::Internal | Self::External | Self::Short | Self::ExternalNodePorts | Self::ShortNodePorts)
    }
}
