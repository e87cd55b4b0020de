//! `LocalNode`: this node as a dataplane sees it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::convert::{LABEL_TOPOLOGY_ZONE, NodeInfo};
use crate::names::IpFamily;
use crate::topology::TopologyNode;

/// The node the proxy runs on: its name, labels (the zone drives topology), addresses and
/// pod CIDRs, as of the last sync. Before its Node object has been seen, only the name is
/// known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalNode {
    /// The node's name (the proxy's hostname); endpoints on this node carry it.
    pub name: String,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// The node's IP addresses (`status.addresses` of an IP type), both families.
    pub addresses: Vec<IpAddr>,
    /// The node's pod CIDRs (`spec.podCIDRs`), both families.
    pub pod_cidrs: Vec<IpNet>,
    /// The node's primary IP of each family: its first `InternalIP` of that family, else its
    /// first `ExternalIP` (what `--nodeport-addresses primary` accepts node ports on).
    pub primary_addresses: Vec<IpAddr>,
}

impl LocalNode {
    /// A node known only by name.
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// The `topology.kubernetes.io/zone` label, if set.
    pub fn zone(&self) -> Option<&str> {
        self.labels.get(LABEL_TOPOLOGY_ZONE).map(String::as_str)
    }

    /// The node's addresses of one family, in the Node's order.
    pub fn addresses_of(&self, family: IpFamily) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.iter().copied().filter(move |ip| IpFamily::of(ip) == family)
    }

    /// The node's pod CIDRs of one family, in the Node's order.
    pub fn pod_cidrs_of(&self, family: IpFamily) -> impl Iterator<Item = IpNet> + '_ {
        self.pod_cidrs.iter().copied().filter(move |cidr| IpFamily::of(&cidr.addr()) == family)
    }

    /// This node as [`categorize_endpoints`](crate::categorize_endpoints) sees it.
    pub fn topology(&self) -> TopologyNode<'_> {
        TopologyNode { name: &self.name, zone: self.zone() }
    }
}

impl From<&NodeInfo> for LocalNode {
    fn from(info: &NodeInfo) -> Self {
        Self {
            name: info.name.clone(),
            labels: info.labels.clone(),
            addresses: info.addresses.clone(),
            pod_cidrs: info.pod_cidrs.clone(),
            primary_addresses: info.primary_addresses.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_pod_cidrs_are_split_by_family() {
        let node = LocalNode {
            addresses: ["192.168.0.2", "fd00::2", "10.0.0.2"].map(|ip| ip.parse().expect("ip")).to_vec(),
            pod_cidrs: ["10.244.1.0/24", "fd00:10:244:1::/64"].map(|c| c.parse().expect("cidr")).to_vec(),
            ..LocalNode::named("node1")
        };
        let v4: Vec<String> = node.addresses_of(IpFamily::V4).map(|ip| ip.to_string()).collect();
        assert_eq!(v4, ["192.168.0.2", "10.0.0.2"]);
        let v6: Vec<String> = node.pod_cidrs_of(IpFamily::V6).map(|c| c.to_string()).collect();
        assert_eq!(v6, ["fd00:10:244:1::/64"]);
        assert_eq!(node.topology(), TopologyNode { name: "node1", zone: None });
    }
}
