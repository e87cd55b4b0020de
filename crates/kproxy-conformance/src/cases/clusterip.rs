//! ClusterIP basics: spreading, protocols, ports, no endpoints, hairpin.

use super::CaseResult;
use super::support::{Want, all_pods, at, converge, eps, expect_no_answer, expect_spread, http_eps, svc};
use crate::plan::{NODE1, POD1A, POD1B, POD2A, POD2B, PODS};
use crate::{Harness, Proto};

/// Pod → ClusterIP over TCP reaches all four pods.
pub(super) async fn tcp_from_pod(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("spread-pod", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("spread-pod", &PODS).build()).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &all_pods()).await?;
    Ok(())
}

/// node1 → ClusterIP over TCP reaches all four pods.
pub(super) async fn tcp_from_node(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("spread-node", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("spread-node", &PODS).build()).await?;
    expect_spread(h, Proto::Tcp, NODE1, at(ip, 80), &all_pods()).await?;
    Ok(())
}

/// Pod → UDP ClusterIP reaches all four pods.
pub(super) async fn udp(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("udp", ip).udp("dns", 53).build()).await?;
    h.apply_slice(eps("udp", "v4", &[("dns", 53, "UDP")], &PODS, false).build()).await?;
    expect_spread(h, Proto::Udp, POD1A.name, at(ip, 53), &all_pods()).await?;
    Ok(())
}

/// Port 80 → 8080 on pod1a/pod2a, port 81 → 8081 on pod1b/pod2b, from two slices.
pub(super) async fn multi_port(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("multi", ip).tcp("http", 80).tcp("alt", 81).build()).await?;
    h.stage_slice(eps("multi", "http", &[("http", 8080, "TCP")], &[POD1A, POD2A], false).build())?;
    h.apply_slice(eps("multi", "alt", &[("alt", 8081, "TCP")], &[POD1B, POD2B], false).build()).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD1A.name, POD2A.name]).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 81), &[POD1B.name, POD2B.name]).await?;
    Ok(())
}

/// 53/TCP on pod1a/pod2a and 53/UDP on pod1b/pod2b.
pub(super) async fn same_port_tcp_and_udp(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("dns", ip).tcp("dns-tcp", 53).udp("dns-udp", 53).build()).await?;
    h.stage_slice(eps("dns", "tcp", &[("dns-tcp", 53, "TCP")], &[POD1A, POD2A], false).build())?;
    h.apply_slice(eps("dns", "udp", &[("dns-udp", 53, "UDP")], &[POD1B, POD2B], false).build()).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 53), &[POD1A.name, POD2A.name]).await?;
    expect_spread(h, Proto::Udp, POD1A.name, at(ip, 53), &[POD1B.name, POD2B.name]).await?;
    Ok(())
}

/// A Service with an empty slice: TCP refused fast from a pod and from the node.
pub(super) async fn no_endpoints_reject(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("empty", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("empty", &[]).build()).await?;
    expect_no_answer(h, Proto::Tcp, POD1A.name, at(ip, 80), Want::Refused).await?;
    expect_no_answer(h, Proto::Tcp, NODE1, at(ip, 80), Want::Refused).await?;
    Ok(())
}

/// pod1a → its own Service (only endpoint: pod1a) answers, from pod1a.
pub(super) async fn hairpin(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("hairpin", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("hairpin", &[POD1A]).build()).await?;
    let reply = converge(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD1A.name]).await?;
    ensure!(
        reply.source.ip() != POD1A.ipv4,
        "hairpin connection worked unmasqueraded: pod saw itself {}",
        reply.source
    );
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD1A.name]).await?;
    Ok(())
}
