//! Which endpoints a node uses: internal traffic policy, topology hints, terminating ones.

use kproxy_testkit::{EndpointBuilder, slice};

use super::CaseResult;
use super::support::{HTTP, NS, Want, at, expect_no_answer, expect_spread, http_eps, node1, svc};
use crate::plan::{POD1A, POD1B, POD2A, POD2B, PODS, PodPlan};
use crate::{Harness, Proto};

/// How one endpoint of a slice is shaped (node set already).
type Shape = fn(EndpointBuilder) -> EndpointBuilder;

/// A Service `name` on port 80 with an IPv4 slice whose endpoints are shaped one by one.
async fn shaped(
    h: &mut Harness,
    name: &str,
    endpoints: &[(PodPlan, Shape)],
) -> Result<std::net::Ipv4Addr, super::CaseError> {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc(name, ip).tcp("http", 80).build()).await?;
    apply_shaped(h, name, endpoints).await?;
    Ok(ip)
}

/// (Re)applies the slice of `shaped`.
async fn apply_shaped(h: &mut Harness, name: &str, endpoints: &[(PodPlan, Shape)]) -> CaseResult {
    let mut b = slice(NS, name, &format!("{name}-v4")).tcp(HTTP.0, i32::from(HTTP.1));
    for (pod, shape) in endpoints {
        b = b.endpoint(&pod.ipv4.to_string(), |e| shape(e.node(pod.node)));
    }
    h.apply_slice(b.build()).await?;
    Ok(())
}

/// internalTrafficPolicy Local: pod1a reaches pod1a and pod1b only.
pub(super) async fn itp_local(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("itp", ip).tcp("http", 80).internal_traffic_policy("Local").build()).await?;
    h.apply_slice(http_eps("itp", &PODS).build()).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD1A.name, POD1B.name]).await?;
    Ok(())
}

/// internalTrafficPolicy Local, endpoints only on node2: dropped.
pub(super) async fn itp_local_none(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("itp-none", ip).tcp("http", 80).internal_traffic_policy("Local").build()).await?;
    h.apply_slice(http_eps("itp-none", &[POD2A, POD2B]).build()).await?;
    expect_no_answer(h, Proto::Tcp, POD1A.name, at(ip, 80), Want::TimedOut).await
}

/// node1 in zone-a; node2's pods hinted for zone-a, node1's for zone-b: only node2's used.
pub(super) async fn zone_hints(h: &mut Harness) -> CaseResult {
    h.set_node(&node1(|n| n.zone("zone-a"))).await?;
    let ip = shaped(
        h,
        "zones",
        &[
            (POD1A, |e| e.zone("zone-a").zone_hints(&["zone-b"])),
            (POD1B, |e| e.zone("zone-a").zone_hints(&["zone-b"])),
            (POD2A, |e| e.zone("zone-b").zone_hints(&["zone-a"])),
            (POD2B, |e| e.zone("zone-b").zone_hints(&["zone-a"])),
        ],
    )
    .await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD2A.name, POD2B.name]).await?;
    Ok(())
}

/// pod2a hinted for node1, the others for node2: only pod2a used.
pub(super) async fn node_hints(h: &mut Harness) -> CaseResult {
    let ip = shaped(
        h,
        "node-hints",
        &[
            (POD1A, |e| e.node_hints(&["node2"])),
            (POD1B, |e| e.node_hints(&["node2"])),
            (POD2A, |e| e.node_hints(&["node1"])),
            (POD2B, |e| e.node_hints(&["node2"])),
        ],
    )
    .await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD2A.name]).await?;
    Ok(())
}

fn serving_terminating(e: EndpointBuilder) -> EndpointBuilder {
    e.conditions_rst(false, true, true)
}

fn gone(e: EndpointBuilder) -> EndpointBuilder {
    e.conditions_rst(false, false, true)
}

fn ready(e: EndpointBuilder) -> EndpointBuilder {
    e.conditions_rst(true, true, false)
}

/// Only serving-terminating endpoints (pod2a, pod2b; pod1a not serving): they serve. Then
/// pod1b ready: it alone serves.
pub(super) async fn terminating_fallback(h: &mut Harness) -> CaseResult {
    let mut endpoints = vec![(POD1A, gone as Shape), (POD2A, serving_terminating), (POD2B, serving_terminating)];
    let ip = shaped(h, "terminating", &endpoints).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD2A.name, POD2B.name]).await?;
    endpoints.push((POD1B, ready));
    apply_shaped(h, "terminating", &endpoints).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD1B.name]).await?;
    Ok(())
}
