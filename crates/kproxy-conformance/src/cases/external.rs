//! Traffic from outside: NodePorts, load-balancer IPs, external IPs, source ranges.

use std::net::Ipv4Addr;

use kproxy_testkit::ServiceBuilder;

use super::CaseResult;
use super::support::{Want, all_pods, at, converge, expect_no_answer, expect_source, expect_spread, http_eps, svc};
use crate::plan::{CLIENT, CLIENT_IPV4, CLIENT2, NODE1_IPV4, POD1A, POD1B, PODS};
use crate::{Harness, Proto};

/// A NodePort Service `name` (port 80, node port `node_port`) with endpoints on every pod.
async fn nodeport(
    h: &mut Harness,
    name: &str,
    policy: &str,
    pods: &[crate::plan::PodPlan],
) -> Result<u16, super::CaseError> {
    let ip = h.alloc_cluster_ipv4();
    let node_port = h.alloc_node_port();
    let service = svc(name, ip).node_port("http", 80, i32::from(node_port)).external_traffic_policy(policy);
    h.apply_service(service.build()).await?;
    h.apply_slice(http_eps(name, pods).build()).await?;
    Ok(node_port)
}

/// A LoadBalancer Service `name` with ingress IP `lb` (port 80, a node port too).
fn load_balancer(h: &mut Harness, name: &str, lb: Ipv4Addr) -> ServiceBuilder {
    let ip = h.alloc_cluster_ipv4();
    let node_port = h.alloc_node_port();
    svc(name, ip)
        .type_("LoadBalancer")
        .port("http", 80, "TCP", Some(i32::from(node_port)))
        .lb_ingress(&lb.to_string(), None)
}

/// Client → node1:nodePort reaches all pods, masqueraded to node1's IP.
pub(super) async fn nodeport_cluster(h: &mut Harness) -> CaseResult {
    let node_port = nodeport(h, "np-cluster", "Cluster", &PODS).await?;
    let replies = expect_spread(h, Proto::Tcp, CLIENT, at(NODE1_IPV4, node_port), &all_pods()).await?;
    expect_source(&replies, NODE1_IPV4, "externalTrafficPolicy Cluster masquerades")
}

/// Client → node1:nodePort with policy Local reaches node1's pods only, source kept.
pub(super) async fn nodeport_local(h: &mut Harness) -> CaseResult {
    let node_port = nodeport(h, "np-local", "Local", &PODS).await?;
    let replies = expect_spread(h, Proto::Tcp, CLIENT, at(NODE1_IPV4, node_port), &[POD1A.name, POD1B.name]).await?;
    expect_source(&replies, CLIENT_IPV4, "externalTrafficPolicy Local preserves the client source")
}

/// Policy Local, endpoints only on node2: dropped.
pub(super) async fn nodeport_local_none(h: &mut Harness) -> CaseResult {
    let node_port = nodeport(h, "np-local-none", "Local", &PODS[2..]).await?;
    expect_no_answer(h, Proto::Tcp, CLIENT, at(NODE1_IPV4, node_port), Want::TimedOut).await
}

/// Client → LB IP with policy Local reaches node1's pods only, source kept.
pub(super) async fn lb_local(h: &mut Harness) -> CaseResult {
    let lb = h.alloc_lb_ip();
    let service = load_balancer(h, "lb-local", lb).external_traffic_policy("Local");
    h.apply_service(service.build()).await?;
    h.apply_slice(http_eps("lb-local", &PODS).build()).await?;
    let replies = expect_spread(h, Proto::Tcp, CLIENT, at(lb, 80), &[POD1A.name, POD1B.name]).await?;
    expect_source(&replies, CLIENT_IPV4, "externalTrafficPolicy Local preserves the client source")
}

/// pod1a → LB IP with policy Local reaches every pod.
pub(super) async fn lb_local_from_pod(h: &mut Harness) -> CaseResult {
    let lb = h.alloc_lb_ip();
    let service = load_balancer(h, "lb-local-pod", lb).external_traffic_policy("Local");
    h.apply_service(service.build()).await?;
    h.apply_slice(http_eps("lb-local-pod", &PODS).build()).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(lb, 80), &all_pods()).await?;
    Ok(())
}

/// Client → external IP reaches every pod, masqueraded.
pub(super) async fn external_ips(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    let external = h.alloc_external_ip();
    h.apply_service(svc("ext-ip", ip).tcp("http", 80).external_ips(&[&external.to_string()]).build()).await?;
    h.apply_slice(http_eps("ext-ip", &PODS).build()).await?;
    let replies = expect_spread(h, Proto::Tcp, CLIENT, at(external, 80), &all_pods()).await?;
    expect_source(&replies, NODE1_IPV4, "externalTrafficPolicy Cluster masquerades")
}

/// Client → LB IP (policy Cluster) reaches every pod, masqueraded.
pub(super) async fn lb_ingress(h: &mut Harness) -> CaseResult {
    let lb = h.alloc_lb_ip();
    let service = load_balancer(h, "lb", lb);
    h.apply_service(service.build()).await?;
    h.apply_slice(http_eps("lb", &PODS).build()).await?;
    let replies = expect_spread(h, Proto::Tcp, CLIENT, at(lb, 80), &all_pods()).await?;
    expect_source(&replies, NODE1_IPV4, "externalTrafficPolicy Cluster masquerades")
}

/// Source range = client/32: client answered, client2 dropped.
pub(super) async fn lb_source_ranges(h: &mut Harness) -> CaseResult {
    let lb = h.alloc_lb_ip();
    let service = load_balancer(h, "lb-ranges", lb).source_ranges(&[&format!("{CLIENT_IPV4}/32")]);
    h.apply_service(service.build()).await?;
    h.apply_slice(http_eps("lb-ranges", &PODS).build()).await?;
    converge(h, Proto::Tcp, CLIENT, at(lb, 80), &all_pods()).await?;
    expect_no_answer(h, Proto::Tcp, CLIENT2, at(lb, 80), Want::TimedOut).await
}
