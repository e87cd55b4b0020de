//! The nftables dataplane's configuration.

use ipnet::IpNet;
use kproxy_netfilter::DEFAULT_MASQUERADE_MARK;
pub use kproxy_netfilter::{LocalDetect, NodePortAddresses};

/// What the nftables dataplane needs to know, besides the state it programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftablesConfig {
    /// The table name in each family (`kproxy`).
    pub table: String,
    /// Pod CIDRs: traffic from them is "local" and not masqueraded on the cluster path.
    pub cluster_cidrs: Vec<IpNet>,
    /// How pod traffic is recognised (`--detect-local-mode`); the CIDR modes use
    /// `cluster_cidrs` (the node's pod CIDRs for `NodeCidr`, resolved per sync).
    pub local_detect: LocalDetect,
    /// Masquerade every packet sent to a service.
    pub masquerade_all: bool,
    /// The fwmark bit(s) marking packets to masquerade (`0x4000`).
    pub masquerade_mark: u32,
    /// Addresses that accept NodePort traffic (`All`: every local address but loopback).
    pub nodeport_addresses: NodePortAddresses,
    /// Run `nft` and `conntrack` inside this network namespace (tests); `None`: this one.
    pub netns: Option<String>,
    /// `--conntrack-tcp-be-liberal`: conntrack accepts out-of-window TCP packets, so no
    /// INVALID drop rule is written (upstream's `conntrackTCPLiberal`).
    pub conntrack_tcp_liberal: bool,
    /// Something else serves node ports on loopback (the localhost relay of
    /// `--nftables-localhost-nodeports`); otherwise connections to them are counted as
    /// rejected.
    pub localhost_nodeports_served: bool,
}

impl Default for NftablesConfig {
    fn default() -> Self {
        Self {
            table: "kproxy".to_owned(),
            cluster_cidrs: Vec::new(),
            local_detect: LocalDetect::ClusterCidr,
            masquerade_all: false,
            masquerade_mark: DEFAULT_MASQUERADE_MARK,
            nodeport_addresses: NodePortAddresses::All,
            netns: None,
            conntrack_tcp_liberal: false,
            localhost_nodeports_served: false,
        }
    }
}
