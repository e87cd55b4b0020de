//! kproxy's eBPF dataplane (`--mode ebpf`): socket-level service balancing.
//!
//! Eight cgroup programs (`bpf/sock.h`, C compiled by `build.rs` with clang-19 and loaded
//! with aya) run for every socket of the processes in the configured cgroup v2 subtree:
//! `connect4/6` and `sendmsg4/6` rewrite a service address (ClusterIP, external IP,
//! load-balancer IP, node port on a node address; TCP and UDP) to an endpoint chosen from
//! the maps; `recvmsg4/6` and `getpeername4/6` show the service address back to the
//! application. A service without endpoints makes `connect` fail at once with
//! `ECONNREFUSED`. Packets of the node's own clients are never rewritten: a balanced
//! connection costs no per-packet work.
//!
//! Traffic from outside the node is balanced by two tc programs (`bpf/tc.h`): on the
//! external interfaces ([`interfaces`]) they DNAT to an endpoint and, for traffic policy
//! Cluster, SNAT to the node address; replies are translated back through a conntrack map.
//!
//! A sync only writes map entries ([`sync`]), planned from [`kproxy_core::categorize_endpoints`]
//! ([`plan`]); the kernel sits behind [`Kernel`] and [`Maps`] so that all of it is unit-tested
//! without root.

pub mod config;
mod dataplane;
mod explain;
pub mod interfaces;
pub mod kernel;
pub mod layout;
pub mod maps;
pub mod netns;
pub mod pins;
pub mod plan;
pub mod sync;
mod tc_links;

pub use config::{EbpfConfig, MapSizes, cgroup2_root};
pub use dataplane::EbpfDataplane;
pub use kernel::{AyaKernel, Kernel, KernelError};
pub use maps::{FakeMaps, FakeTables, Forgotten, MapError, Maps, Stale};
pub use netns::netns_cookie;

/// Upstream has no eBPF mode; of its modes only nftables has `cluster-ips-check`.
const NO_CLUSTER_IP_HYGIENE: &str = "upstream kube-proxy does this in nftables mode only (cluster-ips-check); the eBPF \
     mode follows its iptables mode, which neither rejects unknown ports of cluster IPs nor drops unallocated \
     service-CIDR addresses";

/// The conformance cases (`kproxy-conformance`) this dataplane cannot pass, with the reason;
/// its in-process and end-to-end suites skip them.
pub const UNSUPPORTED_CASES: &[(&str, &str)] = &[
    ("cluster-ip-hygiene", NO_CLUSTER_IP_HYGIENE),
    (
        "hairpin",
        "socket-level balancing connects the pod to itself directly, so its own address is the source: there is no \
         hairpin packet path to masquerade",
    ),
    (
        "localhost-nodeport",
        "the eBPF mode balances node ports on the node's own addresses only (its Node's, narrowed by \
         --nodeport-addresses): 127.0.0.1 and ::1 are not service addresses there, and \
         --nftables-localhost-nodeports is the nftables mode's relay",
    ),
    (
        "masquerade-all",
        "socket-level balancing never rewrites a packet: connections leave from the client's own address, there is \
         nothing to masquerade",
    ),
];
