//! Hostile and conflicting input: one object never stops the others from being programmed.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kproxy_testkit::{ServiceBuilder, service, slice};

use super::support::{NS, all_pods, at, converge, expect_spread, http_eps, svc};
use super::{CaseError, CaseResult};
use crate::plan::{CLIENT, NODE1_IPV4, POD1A, POD1B, POD2A, PODS, PORT_HTTP};
use crate::{Harness, Proto};

/// Text that breaks rule languages: quotes, statement separators, braces, newlines (one
/// carrying a whole iptables rule), non-ASCII, and lengths past every limit.
fn hostile_texts() -> Vec<String> {
    vec![
        "evil\"; flush ruleset; \"".to_owned(),
        "a\nb".to_owned(),
        "x;y".to_owned(),
        "{brace}".to_owned(),
        "ünïcödé".to_owned(),
        "quote\"\n-A INPUT -s 198.18.0.3/32 -j ACCEPT\n#".to_owned(),
        "a".repeat(253),
    ]
}

/// Services carrying [`hostile_texts`] in their name, namespace and port name.
fn hostile_services(h: &mut Harness) -> Vec<Service> {
    let mut out = Vec::new();
    for (i, text) in hostile_texts().into_iter().enumerate() {
        let ip = |h: &mut Harness| h.alloc_cluster_ipv4().to_string();
        out.push(service(NS, &text).cluster_ip(&ip(h)).tcp("http", 80).build());
        out.push(service(&text, &format!("hostile-ns-{i}")).cluster_ip(&ip(h)).tcp("http", 80).build());
        let port_name = service(NS, &format!("hostile-port-{i}")).cluster_ip(&ip(h));
        out.push(port_name.tcp(&text, 80).tcp("http", 81).build());
    }
    out
}

/// A fresh ClusterIP Service over every pod must answer; then the backend restarts and it
/// must answer again.
async fn fresh_service_answers_also_after_restart(h: &mut Harness, name: &str) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc(name, ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps(name, &PODS).build()).await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &all_pods()).await?;
    h.restart().await?;
    expect_spread(h, Proto::Tcp, POD1A.name, at(ip, 80), &all_pods()).await?;
    Ok(())
}

/// Hostile names are skipped one by one; a Service with names at their longest valid
/// length (affinity and Local policy, whose chains are named after it) works; a fresh
/// Service works, also after a restart.
pub(super) async fn poisoned_service(h: &mut Harness) -> CaseResult {
    for hostile in hostile_services(h) {
        let name = format!("{:?}/{:?}", hostile.metadata.namespace, hostile.metadata.name);
        let skipped = h.apply_hostile_service(hostile).await?;
        ensure!(skipped.is_some(), "the hostile Service {name} was accepted by conversion");
    }
    let hostile_slice = slice(NS, "poison-target", "poison-target-x")
        .port("a\"b;c", i32::from(PORT_HTTP), "TCP")
        .endpoint(&POD1A.ipv4.to_string(), |e| e.node("node\n1"))
        .build();
    ensure!(h.apply_hostile_slice(hostile_slice).await?.is_some(), "the hostile EndpointSlice was accepted");
    let longest = longest_names(h).await?;
    fresh_service_answers_also_after_restart(h, "fresh-after-poison").await?;
    converge(h, Proto::Tcp, POD1A.name, longest, &all_pods()).await?;
    ensure!(
        h.proxy_loop().quarantined().next().is_none(),
        "ports were quarantined: {:?}",
        h.proxy_loop().quarantined().collect::<Vec<_>>()
    );
    Ok(())
}

/// A Service whose namespace, name and port name are as long as the API allows, with
/// ClientIP affinity and externalTrafficPolicy Local on a node port; returns its ClusterIP
/// address once it answers.
async fn longest_names(h: &mut Harness) -> Result<std::net::SocketAddr, CaseError> {
    let namespace = format!("n{}", "s".repeat(62));
    let name = format!("s{}", "v".repeat(62));
    let port_name = format!("p{}", "o".repeat(62));
    let ip = h.alloc_cluster_ipv4();
    let node_port = h.alloc_node_port();
    let svc = service(&namespace, &name)
        .cluster_ip(&ip.to_string())
        .node_port(&port_name, 80, i32::from(node_port))
        .external_traffic_policy("Local")
        .client_ip_affinity(Some(60))
        .build();
    h.apply_service(svc).await?;
    let mut eps = slice(&namespace, &name, &format!("{name}-v4")).port(&port_name, i32::from(PORT_HTTP), "TCP");
    for pod in PODS {
        eps = eps.endpoint(&pod.ipv4.to_string(), |e| e.node(pod.node));
    }
    h.apply_slice(eps.build()).await?;
    converge(h, Proto::Tcp, POD1A.name, at(ip, 80), &all_pods()).await?;
    converge(h, Proto::Tcp, CLIENT, at(NODE1_IPV4, node_port), &[POD1A.name, POD1B.name]).await?;
    Ok(at(ip, 80))
}

/// `builder` with `metadata.creationTimestamp` at `seconds` after the epoch.
fn created_at(builder: ServiceBuilder, seconds: i64) -> ServiceBuilder {
    builder.with(|s| {
        let at = k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        s.metadata.creation_timestamp = Some(Time(at));
    })
}

/// Two Services list one external IP: the older has it (though its name sorts last), the
/// newer keeps its ClusterIP, and takes the external IP over once the older is deleted.
pub(super) async fn duplicate_external_ip(h: &mut Harness) -> CaseResult {
    let external = h.alloc_external_ip().to_string();
    let (older_ip, newer_ip) = (h.alloc_cluster_ipv4(), h.alloc_cluster_ipv4());
    let older = created_at(svc("dup-older-z", older_ip).tcp("http", 80).external_ips(&[&external]), 1_000);
    let newer = created_at(svc("dup-newer-a", newer_ip).tcp("http", 80).external_ips(&[&external]), 2_000);
    h.apply_service(newer.build()).await?;
    h.apply_slice(http_eps("dup-newer-a", &[POD2A]).build()).await?;
    h.apply_service(older.build()).await?;
    h.apply_slice(http_eps("dup-older-z", &[POD1A]).build()).await?;
    let external: Ipv4Addr = external.parse().map_err(|e| CaseError::Fail(format!("{e}")))?;
    expect_spread(h, Proto::Tcp, CLIENT, at(external, 80), &[POD1A.name]).await?;
    expect_spread(h, Proto::Tcp, POD1B.name, at(newer_ip, 80), &[POD2A.name]).await?;
    let conflicts: Vec<_> = h.state().families().flat_map(|f| f.services.conflicts()).collect();
    ensure!(conflicts.len() == 1, "expected one conflict, got {conflicts:?}");
    ensure!(conflicts[0].winner.service.name == "dup-older-z", "the older Service must win: {conflicts:?}");
    h.delete_service(NS, "dup-older-z").await?;
    expect_spread(h, Proto::Tcp, CLIENT, at(external, 80), &[POD2A.name]).await?;
    fresh_service_answers_also_after_restart(h, "fresh-after-conflict").await
}

/// How many ports the wide Service has, and endpoints the deep slice.
const WIDE_PORTS: u16 = 100;
const DEEP_ENDPOINTS: usize = 1_000;

/// A Service with 100 ports and a slice with 1,000 endpoints program in one sync; both
/// answer, and a fresh Service still does, also after a restart.
pub(super) async fn large_objects(h: &mut Harness) -> CaseResult {
    let wide_ip = h.alloc_cluster_ipv4();
    let mut wide = svc("wide", wide_ip);
    let mut wide_eps = slice(NS, "wide", "wide-v4");
    for i in 0..WIDE_PORTS {
        wide = wide.tcp(&format!("p{i}"), i32::from(1_000 + i));
        wide_eps = wide_eps.port(&format!("p{i}"), i32::from(PORT_HTTP), "TCP");
    }
    for pod in PODS {
        wide_eps = wide_eps.endpoint(&pod.ipv4.to_string(), |e| e.node(pod.node));
    }
    h.apply_service(wide.build()).await?;
    h.apply_slice(wide_eps.build()).await?;
    for port in [1_000, 1_000 + WIDE_PORTS / 2, 1_000 + WIDE_PORTS - 1] {
        converge(h, Proto::Tcp, POD1A.name, at(wide_ip, port), &all_pods()).await?;
    }
    // 1,000 endpoints: the four pods and 996 addresses nobody answers on, ready, on node2.
    let deep_ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("deep", deep_ip).tcp("http", 80).build()).await?;
    let mut deep_eps = http_eps("deep", &PODS);
    for i in 0..DEEP_ENDPOINTS - PODS.len() {
        let ip = Ipv4Addr::new(10, 0, 200 + u8::try_from(i / 250).unwrap_or(0), 1 + u8::try_from(i % 250).unwrap_or(0));
        deep_eps = deep_eps.endpoint(&ip.to_string(), |e| e.node("node2"));
    }
    h.apply_slice(deep_eps.build()).await?;
    let endpoints: usize = h.state().families().map(|f| f.endpoints.iter().map(|(_, e)| e.len()).sum::<usize>()).sum();
    ensure!(endpoints >= DEEP_ENDPOINTS, "the model holds {endpoints} endpoints");
    ensure!(h.proxy_loop().quarantined().next().is_none(), "a large object was quarantined");
    fresh_service_answers_also_after_restart(h, "fresh-after-large").await
}
