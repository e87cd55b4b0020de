//! What this crate's integration tests share beyond kproxy-testkit (objects, namespaces,
//! golden files) and kproxy-conformance (node1's model): its namespace prefix, the kernel
//! it needs and its pod CIDRs.

#![allow(dead_code, reason = "each test binary uses its own part of the support module")]

use kproxy_testkit::ip_plan::{POD_CIDR, POD_CIDR_V6};
pub use kproxy_testkit::netns::Netns;
use kproxy_testkit::prereq::{Tool, require};

/// The pod CIDR of the IPv4 family.
pub fn pod_cidr_v4() -> ipnet::IpNet {
    POD_CIDR.parse().expect("pod CIDR")
}

/// The pod CIDRs of both families (the local-traffic detector).
pub fn pod_cidrs() -> Vec<ipnet::IpNet> {
    vec![pod_cidr_v4(), POD_CIDR_V6.parse().expect("pod CIDR")]
}

/// Fails the calling test unless the dataplane can run against a kernel: root, `ip`, both
/// iptables flavours, `sysctl` (it sets `route_localnet`) (stale UDP flows go over netlink).
#[track_caller]
pub fn require_kernel() {
    require(&[Tool::Ip, Tool::IptablesLegacy, Tool::IptablesNft, Tool::Sysctl]);
}

/// A network namespace of this crate's tests (`kpi-…`), deleted on drop.
pub fn netns(what: &str) -> Netns {
    Netns::create("kpi", what).expect("a network namespace")
}
