//! IPv6 and SCTP.

use super::support::{all_pods, at, eps, expect_source, expect_spread, svc};
use super::{CaseError, CaseResult};
use crate::plan::{CLIENT, NODE1_IPV6, POD1A, PODS, PORT_SCTP};
use crate::{Harness, Proto};

/// pod1a → IPv6 ClusterIP reaches all pods, keeping pod1a's IPv6 source.
pub(super) async fn ipv6_clusterip(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv6();
    h.apply_service(svc("v6", ip).tcp("http", 80).build()).await?;
    h.apply_slice(eps("v6", "v6", &[("http", 8080, "TCP")], &PODS, true).build()).await?;
    let replies = expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &all_pods()).await?;
    // pod1a's connections to itself are hairpin, masqueraded by design.
    let others: Vec<_> = replies.into_iter().filter(|r| r.pod != POD1A.name).collect();
    expect_source(&others, POD1A.ipv6, "sources inside the cluster CIDR are kept")
}

/// Client → [node1]:nodePort reaches all pods, masqueraded to node1's IPv6 address.
pub(super) async fn ipv6_nodeport(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv6();
    let node_port = h.alloc_node_port();
    h.apply_service(svc("v6-np", ip).node_port("http", 80, i32::from(node_port)).build()).await?;
    h.apply_slice(eps("v6-np", "v6", &[("http", 8080, "TCP")], &PODS, true).build()).await?;
    let replies = expect_spread(h, Proto::Tcp, CLIENT, at(NODE1_IPV6, node_port), &all_pods()).await?;
    expect_source(&replies, NODE1_IPV6, "externalTrafficPolicy Cluster masquerades")
}

/// pod1a → SCTP ClusterIP reaches all pods; skipped without kernel SCTP.
pub(super) async fn sctp_clusterip(h: &mut Harness) -> CaseResult {
    if !h.cluster().sctp_supported() {
        return Err(CaseError::Skip("the kernel has no SCTP (no /proc/sys/net/sctp)".to_owned()));
    }
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("sctp", ip).sctp("sctp", 9090).build()).await?;
    h.apply_slice(eps("sctp", "v4", &[("sctp", PORT_SCTP, "SCTP")], &PODS, false).build()).await?;
    expect_spread(h, Proto::Sctp, POD1A.name, at(ip, 9090), &all_pods()).await?;
    Ok(())
}
