//! kproxy's nftables dataplane.
//!
//! One table per IP family (`ip kproxy`, `ip6 kproxy`). Packets are dispatched by verdict
//! maps keyed on `daddr . l4proto . dport` (and `l4proto . dport` for node ports) into a
//! small set of *generic* chains, one per endpoint count (`cluster-3`, `local-1`, …), that
//! pick an endpoint with `numgen random mod N` as the key of a shared endpoint map. The
//! number of chains does not grow with the number of services or endpoints, so a change
//! is a handful of map elements and a packet's cost does not depend on the cluster's size.
//! Only services with ClientIP session affinity get chains of their own (upstream's shape).
//! See `README.md` for the hooks, chains and maps.
//!
//! Entry point: [`NftablesDataplane`]. Rendering ([`render`]) is pure; applying goes through
//! [`kproxy_netfilter::NftRunner`].

mod apply;
mod config;
mod counters;
mod dataplane;
mod explain;
pub mod render;

pub use config::{NftablesConfig, NodePortAddresses};
pub use dataplane::NftablesDataplane;
pub use kproxy_netfilter::nft_text::Family;
