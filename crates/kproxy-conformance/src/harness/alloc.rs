//! Hands out service addresses and node ports, never the same one twice in a run, so that
//! no case meets a conntrack entry or affinity left by another.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::plan;

/// The allocator; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Allocator {
    cluster_v4: u32,
    cluster_v6: u32,
    node_port: u16,
    lb: u32,
    external: u32,
}

/// The `n`-th host address of a /24, cycling through .10 to .249.
fn in_24(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    let host = 10 + (n % 240);
    Ipv4Addr::from(u32::from(base) + host)
}

impl Allocator {
    /// A fresh IPv4 cluster IP, from 172.30.1.1 up.
    pub(crate) fn cluster_ipv4(&mut self) -> Ipv4Addr {
        self.cluster_v4 += 1;
        let offset = 256 + self.cluster_v4 % (65_536 - 512);
        Ipv4Addr::from(u32::from(plan::SERVICE_CIDR_V4.network()) + offset)
    }

    /// A fresh IPv6 cluster IP, from fd00:172:30::101 up (the /112 leaves 16 bits).
    pub(crate) fn cluster_ipv6(&mut self) -> Ipv6Addr {
        self.cluster_v6 += 1;
        let offset = 0x100 + u128::from(self.cluster_v6 % 0xfe00);
        Ipv6Addr::from(u128::from(plan::SERVICE_CIDR_V6.network()) + offset)
    }

    /// A fresh node port, from 30000 up.
    pub(crate) fn node_port(&mut self) -> u16 {
        let port = plan::NODE_PORT_BASE + self.node_port % 2_700;
        self.node_port += 1;
        port
    }

    /// A fresh load-balancer ingress IP in 1.2.3.0/24.
    pub(crate) fn lb_ip(&mut self) -> Ipv4Addr {
        self.lb += 1;
        in_24(plan::LB_RANGE_V4.network(), self.lb)
    }

    /// A fresh external IP in 192.168.99.0/24.
    pub(crate) fn external_ip(&mut self) -> Ipv4Addr {
        self.external += 1;
        in_24(plan::EXTERNAL_IP_RANGE_V4.network(), self.external)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn addresses_are_unique_and_in_range() {
        let mut a = Allocator::default();
        let v4: HashSet<_> = (0..2000).map(|_| a.cluster_ipv4()).collect();
        assert_eq!(v4.len(), 2000);
        assert!(v4.iter().all(|ip| plan::SERVICE_CIDR_V4.contains(ip)));
        let v6: HashSet<_> = (0..2000).map(|_| a.cluster_ipv6()).collect();
        assert_eq!(v6.len(), 2000);
        assert!(v6.iter().all(|ip| plan::SERVICE_CIDR_V6.contains(ip)));
        assert_eq!(a.node_port(), 30000);
        assert_eq!(a.node_port(), 30001);
        assert!(plan::LB_RANGE_V4.contains(&a.lb_ip()));
        assert!(plan::EXTERNAL_IP_RANGE_V4.contains(&a.external_ip()));
    }
}
