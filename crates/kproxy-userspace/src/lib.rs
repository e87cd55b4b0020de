//! kproxy's userspace dataplane: a relay in user space, as upstream's old userspace mode,
//! but zero-copy and without a thread per connection.
//!
//! - Each service port gets a listener (TCP or UDP) per endpoint set it is reached with
//!   ([`render::plan::Role`]), on a port from a configurable range, in the node's namespace.
//! - One nft table per family (`ip kproxy-userspace`, `ip6 kproxy-userspace`) sends
//!   ClusterIP, NodePort, external-IP and load-balancer traffic to those listeners
//!   (`dnat` to the node's address in prerouting, `redirect` in output), rejects Services
//!   without endpoints, drops what a traffic policy leaves no endpoint for, and drops
//!   sources outside `loadBalancerSourceRanges` (which the relay enforces again).
//! - TCP is relayed with `splice(2)` through pooled pipes; UDP through a session per client.
//!
//! The relay connects to endpoints from the node, so endpoints never see the client's
//! address: traffic policy Local chooses local endpoints but cannot preserve the source.
//! See `README.md`.
//!
//! Entry point: [`UserspaceDataplane`]. Planning ([`render::plan`]) and rendering
//! ([`render::rules`]) are pure; the [`relay`] does the I/O.
//!
//! [`LocalhostNodePorts`] reuses the planner and the relay to serve node ports on
//! `127.0.0.1` and `::1` for the nftables mode (`--nftables-localhost-nodeports`).

mod config;
mod dataplane;
mod explain;
pub mod localhost;
pub mod relay;
pub mod render;

pub use config::{RelayConfig, UserspaceConfig};
pub use dataplane::UserspaceDataplane;

/// The relay connects to endpoints from the node: they see the node's address, never the
/// client's. Cases that check a preserved source cannot pass in this mode.
const SOURCE_LOST: &str = "a userspace relay opens its own connection to the endpoint, so the endpoint sees the node's address: the client's source cannot be preserved";

/// Upstream's userspace mode does not do this; only its nftables mode has `cluster-ips-check`.
const NO_CLUSTER_IP_HYGIENE: &str = "upstream's userspace mode neither rejects unknown ports of cluster IPs nor drops unallocated \
     service-CIDR addresses: only its nftables mode does (cluster-ips-check)";

/// The conformance cases (`kproxy-conformance`) this dataplane cannot pass, with the reason;
/// its in-process and end-to-end suites skip them.
pub const UNSUPPORTED_CASES: &[(&str, &str)] = &[
    ("cluster-ip-hygiene", NO_CLUSTER_IP_HYGIENE),
    ("nodeport-local-policy", SOURCE_LOST),
    ("loadbalancer-local-policy", SOURCE_LOST),
    ("cluster-cidr-masquerade", SOURCE_LOST),
    ("ipv6-clusterip", SOURCE_LOST),
    (
        "sctp-clusterip",
        "the userspace relay carries TCP and UDP only: an SCTP association's streams and message boundaries do not survive a byte-stream relay (upstream's userspace mode had no SCTP either)",
    ),
];
pub use localhost::{LocalhostNodePorts, WithLocalhostNodePorts};
