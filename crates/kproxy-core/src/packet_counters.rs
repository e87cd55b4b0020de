//! Packet counters a dataplane keeps in the kernel (counted by its rules, not by kproxy),
//! read each time metrics are scraped: upstream's nfacct-backed iptables metrics and their
//! equivalents in the other modes.

use std::fmt;

/// What a kernel packet counter counts. Each names the metric that exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PacketCounter {
    /// Forwarded packets dropped for being in conntrack state INVALID, iptables mode
    /// (upstream's nfacct counter `ct_state_invalid_dropped_pkts`).
    IptablesCtStateInvalidDropped,
    /// Packets to a NodePort on 127.0.0.0/8 that were accepted, iptables mode (upstream's
    /// nfacct counter `localhost_nps_accepted_pkts`).
    IptablesLocalhostNodePortsAccepted,
    /// Forwarded packets dropped for being in conntrack state INVALID, nftables mode.
    NftablesCtStateInvalidDropped,
    /// New connections to a served NodePort on a loopback address, which nftables mode
    /// does not serve there (without `--nftables-localhost-nodeports`): the kernel refuses
    /// them.
    NftablesLocalhostNodePortsRejected,
}

impl PacketCounter {
    /// The metric's name.
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::IptablesCtStateInvalidDropped => "kubeproxy_iptables_ct_state_invalid_dropped_packets_total",
            Self::IptablesLocalhostNodePortsAccepted => "kubeproxy_iptables_localhost_nodeports_accepted_packets_total",
            Self::NftablesCtStateInvalidDropped => "kproxy_nftables_ct_state_invalid_dropped_packets_total",
            Self::NftablesLocalhostNodePortsRejected => "kproxy_nftables_localhost_nodeports_rejected_packets_total",
        }
    }

    /// The metric's help text.
    pub fn help(self) -> &'static str {
        match self {
            Self::IptablesCtStateInvalidDropped => "packets dropped by iptables to work around conntrack problems",
            Self::NftablesCtStateInvalidDropped => {
                "Packets dropped by nftables because their conntrack state is INVALID"
            }
            Self::IptablesLocalhostNodePortsAccepted => "Number of packets accepted on nodeports of loopback interface",
            Self::NftablesLocalhostNodePortsRejected => {
                "New connections to nodeports on a loopback address, refused because localhost nodeports are off"
            }
        }
    }
}

impl fmt::Display for PacketCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name())
    }
}

/// Reads a dataplane's kernel packet counters. Shared with the metrics server, which asks
/// at every scrape.
#[async_trait::async_trait]
pub trait PacketCounters: Send + Sync {
    /// The counters this dataplane keeps (each exposed from the start, at 0).
    fn kinds(&self) -> Vec<PacketCounter>;

    /// The counters' current values; one that cannot be read (not created yet, or the
    /// kernel refused) is left out.
    async fn read(&self) -> Vec<(PacketCounter, u64)>;
}
