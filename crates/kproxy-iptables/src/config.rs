//! The iptables dataplane's configuration.

use ipnet::IpNet;
use kproxy_core::IpFamily;
use kproxy_netfilter::DEFAULT_MASQUERADE_MARK;
pub use kproxy_netfilter::{LocalDetect, NodePortAddresses};

/// Which iptables flavour to program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// The one the node already uses, as upstream's `iptables-wrapper` picks it (kubelet's
    /// hint chains, else the flavour holding more rules, else nft).
    #[default]
    Auto,
    /// `iptables-legacy` (x_tables).
    Legacy,
    /// `iptables-nft` (nf_tables through the iptables syntax).
    Nft,
}

/// What the iptables dataplane needs to know, besides the state it programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesConfig {
    /// Legacy, nft, or detect.
    pub backend: Backend,
    /// Pod CIDRs (at most one per family is used, as upstream's `ClusterCIDR` detector):
    /// traffic from them is "local" and not masqueraded on the cluster path.
    pub cluster_cidrs: Vec<IpNet>,
    /// How pod traffic is recognised (`--detect-local-mode`); the CIDR modes use
    /// `cluster_cidrs` (the node's pod CIDRs for `NodeCidr`, resolved per sync).
    pub local_detect: LocalDetect,
    /// Masquerade every packet sent to a cluster IP.
    pub masquerade_all: bool,
    /// The fwmark bit marking packets to masquerade (`0x4000`).
    pub masquerade_mark: u32,
    /// Addresses that accept NodePort traffic (`All`: `-m addrtype --dst-type LOCAL`).
    pub nodeport_addresses: NodePortAddresses,
    /// NodePorts on 127.0.0.1 (IPv4 only; sets `route_localnet`), upstream's
    /// `iptables.localhostNodePorts`.
    pub localhost_nodeports: bool,
    /// Add `--random-fully` to MASQUERADE (every supported iptables has it).
    pub random_fully: bool,
    /// Which families to program.
    pub families: Vec<IpFamily>,
    /// Run the tools inside this network namespace (tests); `None`: this one.
    pub netns: Option<String>,
    /// `--conntrack-tcp-be-liberal`: conntrack accepts out-of-window TCP packets, so no
    /// INVALID drop rule is written (upstream's `conntrackTCPLiberal`).
    pub conntrack_tcp_liberal: bool,
    /// The nfacct counters the rules feed: set by the dataplane once the kernel has them
    /// (upstream adds `-m nfacct` only for counters it could create).
    pub counters: NfacctCounters,
}

/// Which of upstream's nfacct counters exist, so that rules may feed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NfacctCounters {
    /// `ct_state_invalid_dropped_pkts`, fed by the INVALID drop in `KUBE-FORWARD`.
    pub ct_state_invalid_dropped: bool,
    /// `localhost_nps_accepted_pkts`, fed by a NodePort's rule for 127.0.0.0/8.
    pub localhost_nodeports_accepted: bool,
}

impl Default for IptablesConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Auto,
            cluster_cidrs: Vec::new(),
            local_detect: LocalDetect::ClusterCidr,
            masquerade_all: false,
            masquerade_mark: DEFAULT_MASQUERADE_MARK,
            nodeport_addresses: NodePortAddresses::All,
            localhost_nodeports: true,
            random_fully: true,
            families: IpFamily::ALL.to_vec(),
            netns: None,
            conntrack_tcp_liberal: false,
            counters: NfacctCounters::default(),
        }
    }
}

impl IptablesConfig {
    /// The cluster CIDR of `family` used by the local-traffic detector, if any.
    pub fn cluster_cidr(&self, family: IpFamily) -> Option<&IpNet> {
        self.cluster_cidrs.iter().find(|c| IpFamily::of(&c.addr()) == family)
    }

    /// The match of traffic from this node's pods (`local`) or of the rest in `family`, as
    /// `--detect-local-mode` says; `None` when nothing is recognised as local.
    pub fn local_match(&self, family: IpFamily, local: bool) -> Option<String> {
        self.local_detect.iptables_match(self.cluster_cidr(family), local)
    }

    /// `-m nfacct --nfacct-name NAME ` when the counter `exists`, else nothing.
    pub(crate) fn nfacct_match(exists: bool, name: &str) -> String {
        if exists { format!("-m nfacct --nfacct-name {name} ") } else { String::new() }
    }

    /// Whether 127.0.0.1 accepts node ports in `family`: IPv4 only, when enabled and when
    /// the node-port addresses include loopback (upstream's rule).
    pub fn localhost_nodeports_in(&self, family: IpFamily) -> bool {
        let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
        family == IpFamily::V4 && self.localhost_nodeports && self.nodeport_addresses.accepts(&loopback)
    }
}
