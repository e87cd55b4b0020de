//! How traffic from this node's pods is recognised: upstream's `--detect-local-mode` and its
//! `LocalTrafficDetector`, as the netfilter dataplanes write it. Pod traffic to a cluster IP
//! is not masqueraded; pod traffic to an external destination with policy Local is
//! short-circuited to the cluster path.

use std::borrow::Cow;

use ipnet::IpNet;
pub use kproxy_core::InterfaceName;
use kproxy_core::explain::PodDetection;
use kproxy_core::{IpFamily, LocalNode};

/// How traffic from this node's pods is recognised.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LocalDetect {
    /// Source inside the configured cluster CIDRs (`ClusterCIDR`; none: nothing is local).
    #[default]
    ClusterCidr,
    /// Source inside this node's `spec.podCIDRs` (`NodeCIDR`); a dataplane resolves it with
    /// [`local_cidrs_for_node`] before rendering.
    NodeCidr,
    /// Arriving on this bridge (`BridgeInterface`, `detectLocal.bridgeInterface`).
    BridgeInterface(InterfaceName),
    /// Arriving on an interface whose name starts with this (`InterfaceNamePrefix`,
    /// `detectLocal.interfaceNamePrefix`).
    InterfaceNamePrefix(InterfaceName),
}

impl LocalDetect {
    /// The nft match of local (`local`) or non-local traffic of family `fam` (`ip`/`ip6`),
    /// with the family's local CIDRs in set `cidr_set` (`None`: the family has none, so
    /// CIDR modes match nothing and no rule is written).
    pub fn nft_match(&self, fam: &str, cidr_set: Option<&str>, local: bool) -> Option<String> {
        let op = if local { "" } else { "!= " };
        match self {
            Self::ClusterCidr | Self::NodeCidr => cidr_set.map(|set| format!("{fam} saddr {op}@{set}")),
            Self::BridgeInterface(name) => Some(format!("iifname {op}\"{name}\"")),
            Self::InterfaceNamePrefix(prefix) => Some(format!("iifname {op}\"{prefix}*\"")),
        }
    }

    /// How `kproxy explain` tells a pod's packets under this mode, with the configured
    /// cluster CIDRs.
    pub fn pod_detection(&self, cluster_cidrs: &[IpNet]) -> PodDetection {
        match self {
            Self::ClusterCidr => PodDetection::ClusterCidrs(cluster_cidrs.to_vec()),
            Self::NodeCidr => PodDetection::NodeCidrs,
            Self::BridgeInterface(name) => PodDetection::Interface(format!("bridge {name}")),
            Self::InterfaceNamePrefix(prefix) => PodDetection::Interface(format!("an interface named {prefix}*")),
        }
    }

    /// The iptables match of local (`local`) or non-local traffic, with the family's local
    /// CIDR `cidr` (`None`: CIDR modes match nothing and no rule is written).
    pub fn iptables_match(&self, cidr: Option<&IpNet>, local: bool) -> Option<String> {
        let not = if local { "" } else { "! " };
        match self {
            Self::ClusterCidr | Self::NodeCidr => cidr.map(|cidr| format!("{not}-s {cidr}")),
            Self::BridgeInterface(name) => Some(format!("{not}-i {name}")),
            Self::InterfaceNamePrefix(prefix) => Some(format!("{not}-i {prefix}+")),
        }
    }
}

/// A dataplane's `config` on `node`: with `NodeCidr`, a copy whose local CIDRs (reached
/// through `place`) are the node's pod CIDRs; else `config` as it is.
pub fn local_cidrs_for_node<'a, C: Clone>(
    config: Cow<'a, C>,
    detect: &LocalDetect,
    node: &LocalNode,
    place: impl FnOnce(&mut C) -> &mut Vec<IpNet>,
) -> Cow<'a, C> {
    if *detect != LocalDetect::NodeCidr {
        return config;
    }
    let mut copy = config.into_owned();
    *place(&mut copy) = node.pod_cidrs.clone();
    Cow::Owned(copy)
}

/// The CIDRs of `family` among `cidrs`.
pub fn cidrs_of(cidrs: &[IpNet], family: IpFamily) -> impl Iterator<Item = &IpNet> {
    cidrs.iter().filter(move |c| IpFamily::of(&c.addr()) == family)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> InterfaceName {
        InterfaceName::parse(s).unwrap()
    }

    #[test]
    fn nft_matches_of_each_mode() {
        let set = Some("cluster-cidrs");
        assert_eq!(LocalDetect::ClusterCidr.nft_match("ip", set, true).unwrap(), "ip saddr @cluster-cidrs");
        assert_eq!(LocalDetect::NodeCidr.nft_match("ip6", set, false).unwrap(), "ip6 saddr != @cluster-cidrs");
        assert_eq!(LocalDetect::ClusterCidr.nft_match("ip", None, true), None);
        let bridge = LocalDetect::BridgeInterface(name("cni0"));
        assert_eq!(bridge.nft_match("ip", None, true).unwrap(), "iifname \"cni0\"");
        assert_eq!(bridge.nft_match("ip", None, false).unwrap(), "iifname != \"cni0\"");
        let prefix = LocalDetect::InterfaceNamePrefix(name("veth"));
        assert_eq!(prefix.nft_match("ip", set, true).unwrap(), "iifname \"veth*\"");
    }

    #[test]
    fn iptables_matches_of_each_mode() {
        let cidr: IpNet = "10.244.0.0/16".parse().unwrap();
        assert_eq!(LocalDetect::ClusterCidr.iptables_match(Some(&cidr), false).unwrap(), "! -s 10.244.0.0/16");
        assert_eq!(LocalDetect::NodeCidr.iptables_match(None, true), None);
        let bridge = LocalDetect::BridgeInterface(name("cbr0"));
        assert_eq!(bridge.iptables_match(None, true).unwrap(), "-i cbr0");
        let prefix = LocalDetect::InterfaceNamePrefix(name("veth"));
        assert_eq!(prefix.iptables_match(Some(&cidr), false).unwrap(), "! -i veth+");
    }

    #[test]
    fn node_cidr_takes_the_pod_cidrs_of_the_node() {
        #[derive(Clone, PartialEq, Debug)]
        struct Config {
            cidrs: Vec<IpNet>,
        }
        let config = Config { cidrs: vec!["10.0.0.0/8".parse().unwrap()] };
        let mut node = LocalNode::named("node1");
        node.pod_cidrs = vec!["10.244.1.0/24".parse().unwrap(), "fd00:10:244:1::/64".parse().unwrap()];
        let resolved = local_cidrs_for_node(Cow::Borrowed(&config), &LocalDetect::NodeCidr, &node, |c| &mut c.cidrs);
        assert_eq!(resolved.cidrs, node.pod_cidrs);
        let kept = local_cidrs_for_node(Cow::Borrowed(&config), &LocalDetect::ClusterCidr, &node, |c| &mut c.cidrs);
        assert!(matches!(kept, Cow::Borrowed(_)));
        assert_eq!(cidrs_of(&node.pod_cidrs, IpFamily::V6).count(), 1);
    }
}
