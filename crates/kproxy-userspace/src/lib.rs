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
pub use localhost::{LocalhostNodePorts, WithLocalhostNodePorts};
