//! Which local addresses accept NodePort traffic: upstream's `--nodeport-addresses`, as every
//! dataplane takes it.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::{IpFamily, LocalNode};
use ipnet::IpNet;

/// Which local addresses accept NodePort traffic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodePortAddresses {
    /// Every local address (nftables leaves loopback out; iptables lets 127.0.0.1 in when
    /// localhost node ports are on).
    #[default]
    All,
    /// Local addresses inside these CIDRs (those of the other family are ignored).
    Cidrs(Vec<IpNet>),
    /// The node's primary IP of each family (upstream's `primary`, its default in nftables
    /// mode); a dataplane resolves it with [`for_node`](Self::for_node) before rendering.
    Primary,
}

impl NodePortAddresses {
    /// The CIDRs of `family` that restrict node ports; `None` when every local address
    /// accepts them. An empty list: this family accepts none.
    /// `Primary` unresolved accepts none.
    pub fn cidrs(&self, family: IpFamily) -> Option<Vec<&IpNet>> {
        match self {
            Self::All => None,
            Self::Cidrs(cidrs) => Some(cidrs.iter().filter(|c| IpFamily::of(&c.addr()) == family).collect()),
            Self::Primary => Some(Vec::new()),
        }
    }

    /// Whether local address `ip` accepts node ports (`Primary` unresolved: none).
    pub fn accepts(&self, ip: &IpAddr) -> bool {
        match self {
            Self::All => true,
            Self::Cidrs(cidrs) => cidrs.iter().any(|c| c.contains(ip)),
            Self::Primary => false,
        }
    }

    /// These addresses on `node`: `Primary` becomes its primary IPs (one host CIDR per
    /// family); the others stay as they are.
    pub fn for_node(&self, node: &LocalNode) -> Cow<'_, Self> {
        match self {
            Self::Primary => {
                Cow::Owned(Self::Cidrs(node.primary_addresses.iter().map(|ip| IpNet::from(*ip)).collect()))
            }
            other => Cow::Borrowed(other),
        }
    }
}

/// A dataplane's `config` on `node`: when its node-port addresses (`addresses`, reached in
/// a copy through `place`) are `Primary`, a copy with the node's primary IPs; else `config`.
pub fn config_for_node<'a, C: Clone>(
    config: &'a C,
    addresses: &NodePortAddresses,
    node: &LocalNode,
    place: impl FnOnce(&mut C) -> &mut NodePortAddresses,
) -> Cow<'a, C> {
    match addresses.for_node(node) {
        Cow::Borrowed(_) => Cow::Borrowed(config),
        Cow::Owned(resolved) => {
            let mut copy = config.clone();
            *place(&mut copy) = resolved;
            Cow::Owned(copy)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs() -> NodePortAddresses {
        NodePortAddresses::Cidrs(["192.168.0.0/24", "fd00::/64", "127.0.0.0/8"].map(|c| c.parse().unwrap()).to_vec())
    }

    #[test]
    fn cidrs_are_those_of_the_family() {
        let v4: Vec<String> = cidrs().cidrs(IpFamily::V4).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(v4, ["192.168.0.0/24", "127.0.0.0/8"]);
        assert_eq!(cidrs().cidrs(IpFamily::V6).unwrap().len(), 1);
        assert_eq!(NodePortAddresses::Cidrs(Vec::new()).cidrs(IpFamily::V4), Some(Vec::new()));
        assert_eq!(NodePortAddresses::All.cidrs(IpFamily::V4), None);
    }

    #[test]
    fn primary_is_the_nodes_primary_ip_of_each_family() {
        let node = LocalNode {
            addresses: ["192.168.0.2", "192.168.0.50", "fd00::2"].map(|ip| ip.parse().unwrap()).to_vec(),
            primary_addresses: ["192.168.0.2", "fd00::2"].map(|ip| ip.parse().unwrap()).to_vec(),
            ..LocalNode::named("node1")
        };
        let resolved = NodePortAddresses::Primary.for_node(&node).into_owned();
        assert!(resolved.accepts(&[192, 168, 0, 2].into()));
        assert!(!resolved.accepts(&[192, 168, 0, 50].into()), "a secondary address takes no node ports");
        assert_eq!(resolved.cidrs(IpFamily::V6).unwrap().len(), 1);
        assert_eq!(cidrs().for_node(&node).into_owned(), cidrs(), "other settings stay as they are");
        assert!(!NodePortAddresses::Primary.accepts(&[192, 168, 0, 2].into()), "unresolved: none");
    }

    #[test]
    fn all_accepts_every_address_and_cidrs_only_theirs() {
        let loopback: IpAddr = [127, 0, 0, 1].into();
        assert!(NodePortAddresses::All.accepts(&loopback));
        assert!(cidrs().accepts(&loopback));
        assert!(!cidrs().accepts(&[10, 0, 0, 1].into()));
        assert!(!NodePortAddresses::Cidrs(Vec::new()).accepts(&loopback));
    }
}
