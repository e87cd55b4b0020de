//! The nftables dataplane's configuration.

use ipnet::IpNet;
use kproxy_netfilter::DEFAULT_MASQUERADE_MARK;
pub use kproxy_netfilter::NodePortAddresses;

/// What the nftables dataplane needs to know, besides the state it programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftablesConfig {
    /// The table name in each family (`kproxy`).
    pub table: String,
    /// Pod CIDRs: traffic from them is "local" and not masqueraded on the cluster path.
    pub cluster_cidrs: Vec<IpNet>,
    /// Masquerade every packet sent to a service.
    pub masquerade_all: bool,
    /// The fwmark bit(s) marking packets to masquerade (`0x4000`).
    pub masquerade_mark: u32,
    /// Addresses that accept NodePort traffic (`All`: every local address but loopback).
    pub nodeport_addresses: NodePortAddresses,
    /// Run `nft` and `conntrack` inside this network namespace (tests); `None`: this one.
    pub netns: Option<String>,
}

impl NftablesConfig {
    /// This configuration on `node`: `--nodeport-addresses primary` becomes its primary IPs.
    pub fn for_node(&self, node: &kproxy_core::LocalNode) -> std::borrow::Cow<'_, Self> {
        kproxy_netfilter::config_for_node(self, &self.nodeport_addresses, node, |c| &mut c.nodeport_addresses)
    }
}

impl Default for NftablesConfig {
    fn default() -> Self {
        Self {
            table: "kproxy".to_owned(),
            cluster_cidrs: Vec::new(),
            masquerade_all: false,
            masquerade_mark: DEFAULT_MASQUERADE_MARK,
            nodeport_addresses: NodePortAddresses::All,
            netns: None,
        }
    }
}
