//! `ServicePort`: what the proxy needs of one port of one Service, for one IP family.

use std::net::IpAddr;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::names::Protocol;

/// The default ClientIP affinity timeout, as the API defaults it (3 hours).
pub const DEFAULT_STICKY_MAX_AGE_SECONDS: u32 = 10_800;
/// The largest ClientIP affinity timeout the API accepts (1 day).
pub const MAX_STICKY_MAX_AGE_SECONDS: u32 = 86_400;

/// Session affinity of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SessionAffinity {
    /// Every connection picks an endpoint afresh.
    #[default]
    None,
    /// Connections from one client IP keep going to the same endpoint for `timeout_seconds`
    /// after the last packet.
    ClientIp {
        /// Stickiness timeout in seconds, 1 to 86400.
        timeout_seconds: u32,
    },
}

/// One port of one Service as seen in one IP family: upstream's `BaseServicePortInfo`.
///
/// IP lists (external IPs, load-balancer VIPs, source ranges) hold only the addresses
/// of this port's family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServicePort {
    /// The cluster IP of this family.
    pub cluster_ip: IpAddr,
    /// The service port number.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The node port, for NodePort and LoadBalancer Services that have one.
    pub node_port: Option<u16>,
    /// `spec.externalIPs` of this family.
    pub external_ips: Vec<IpAddr>,
    /// `status.loadBalancer.ingress[].ip` of this family whose `ipMode` is VIP (or unset).
    pub load_balancer_vips: Vec<IpAddr>,
    /// `spec.loadBalancerSourceRanges` of this family; empty means every source.
    pub load_balancer_source_ranges: Vec<IpNet>,
    /// Session affinity and its timeout.
    pub session_affinity: SessionAffinity,
    /// `externalTrafficPolicy: Local` on an externally reachable Service.
    pub external_policy_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
    /// The health-check node port, for LoadBalancer Services with `externalTrafficPolicy: Local`.
    pub health_check_node_port: Option<u16>,
    /// `spec.trafficDistribution`, for information: topology itself arrives as endpoint hints.
    pub traffic_distribution: Option<String>,
    /// The Service's `metadata.creationTimestamp`: when two ports claim the same address
    /// and port, the older one wins (see [`Conflict`](crate::Conflict)).
    pub created: Option<SystemTime>,
}

impl ServicePort {
    /// A minimal port: cluster IP, port number and protocol, every other field at its default.
    pub fn new(cluster_ip: IpAddr, port: u16, protocol: Protocol) -> Self {
        Self {
            cluster_ip,
            port,
            protocol,
            node_port: None,
            external_ips: Vec::new(),
            load_balancer_vips: Vec::new(),
            load_balancer_source_ranges: Vec::new(),
            session_affinity: SessionAffinity::None,
            external_policy_local: false,
            internal_policy_local: false,
            health_check_node_port: None,
            traffic_distribution: None,
            created: None,
        }
    }

    /// Reachable from outside the cluster: it has a node port, a load-balancer VIP or an external IP.
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.load_balancer_vips.is_empty() || !self.external_ips.is_empty()
    }

    /// Needs the cluster-wide endpoint set: internal policy Cluster, or any external access
    /// (even with external policy Local, pods on this node short-circuit to cluster endpoints).
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || self.externally_accessible()
    }

    /// Needs the node-local endpoint set: internal policy Local, or external policy Local
    /// on an externally accessible port.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.external_policy_local && self.externally_accessible())
    }

    /// The ClientIP affinity timeout, if affinity is on.
    pub fn sticky_max_age_seconds(&self) -> Option<u32> {
        match self.session_affinity {
            SessionAffinity::None => None,
            SessionAffinity::ClientIp { timeout_seconds } => Some(timeout_seconds),
        }
    }

    /// Every address clients reach this port on: the cluster IP, then [`Self::external_vips`].
    pub fn vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.cluster_ip).chain(self.external_vips())
    }

    /// The addresses reached from outside the cluster: external IPs, then load-balancer VIPs.
    pub fn external_vips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.external_ips.iter().chain(&self.load_balancer_vips).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port() -> ServicePort {
        ServicePort::new("172.30.0.41".parse().unwrap(), 80, Protocol::Tcp)
    }

    #[test]
    fn cluster_only_port_uses_cluster_endpoints() {
        let p = port();
        assert!(p.uses_cluster_endpoints());
        assert!(!p.uses_local_endpoints());
        assert!(!p.externally_accessible());
    }

    #[test]
    fn internal_local_without_external_access_uses_only_local() {
        let p = ServicePort { internal_policy_local: true, ..port() };
        assert!(!p.uses_cluster_endpoints());
        assert!(p.uses_local_endpoints());
    }

    #[test]
    fn external_local_with_node_port_uses_both() {
        let p = ServicePort { external_policy_local: true, node_port: Some(30080), ..port() };
        assert!(p.uses_cluster_endpoints());
        assert!(p.uses_local_endpoints());
    }

    #[test]
    fn vips_are_the_cluster_ip_then_external_ips_then_load_balancer_ips() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let p = ServicePort {
            external_ips: vec![ip("192.168.99.11")],
            load_balancer_vips: vec![ip("1.2.3.4"), ip("1.2.3.5")],
            ..port()
        };
        assert_eq!(
            p.vips().collect::<Vec<_>>(),
            [ip("172.30.0.41"), ip("192.168.99.11"), ip("1.2.3.4"), ip("1.2.3.5")]
        );
        assert_eq!(p.external_vips().collect::<Vec<_>>(), [ip("192.168.99.11"), ip("1.2.3.4"), ip("1.2.3.5")]);
        assert_eq!(port().vips().collect::<Vec<_>>(), [ip("172.30.0.41")]);
    }

    #[test]
    fn external_local_without_external_access_uses_cluster_only() {
        let p = ServicePort { external_policy_local: true, ..port() };
        assert!(p.uses_cluster_endpoints());
        assert!(!p.uses_local_endpoints());
    }
}
