//! kproxy's iptables dataplane, in upstream kube-proxy's rule shapes.
//!
//! The tables read as kube-proxy's do (`pkg/proxy/iptables/proxier.go`): nat
//! `KUBE-SERVICES` matches each service VIP and jumps to the port's `KUBE-SVC-<hash>`
//! (Cluster policy) or `KUBE-SVL-<hash>` (Local), external destinations go through
//! `KUBE-EXT-<hash>` (and `KUBE-FW-<hash>` for loadBalancerSourceRanges), an endpoint is
//! picked with `-m statistic --mode random --probability 1/(n-i)` and DNAT-ed in its
//! `KUBE-SEP-<hash>`; `KUBE-NODEPORTS` is the last rule of `KUBE-SERVICES`; marked packets
//! are masqueraded in `KUBE-POSTROUTING`. The filter table rejects traffic to services
//! without endpoints, drops it when only local endpoints would do and there are none,
//! enforces source ranges (`KUBE-PROXY-FIREWALL`) and accepts health-check node ports.
//! Chain hashes are upstream's, so `iptables-save` of a kproxy node and of a kube-proxy
//! node name the same chains.
//!
//! Rendering ([`render`]) is pure. A sync is one `iptables-restore --noflush` per family
//! through [`kproxy_netfilter::IptablesRunner`]: a full sync writes everything, a partial
//! one rewrites the shared chains and only the chains of the service ports that changed,
//! and deletes (`-X`) the chains those ports no longer use, known from what was committed
//! (no `iptables-save` on partial syncs). A `KUBE-PROXY-CANARY` chain in mangle, checked
//! on every partial sync, turns a flushed table into a full sync.
//!
//! Entry point: [`IptablesDataplane`].

mod apply;
mod config;
mod dataplane;
mod explain;
pub mod render;

pub use config::{Backend, IptablesConfig, NfacctCounters, NodePortAddresses};
pub use dataplane::IptablesDataplane;

/// Upstream's iptables mode does not do this; only its nftables mode has `cluster-ips-check`.
const NO_CLUSTER_IP_HYGIENE: &str = "upstream's iptables mode neither rejects unknown ports of cluster IPs nor drops unallocated \
     service-CIDR addresses: only its nftables mode does (cluster-ips-check)";

/// The conformance cases (`kproxy-conformance`) this dataplane cannot pass, with the reason
/// (upstream's iptables mode has the same gap); its in-process and end-to-end suites skip
/// them.
pub const UNSUPPORTED_CASES: &[(&str, &str)] = &[("cluster-ip-hygiene", NO_CLUSTER_IP_HYGIENE)];
