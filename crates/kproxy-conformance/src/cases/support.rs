//! What cases share: object shorthands and traffic expectations.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kproxy_testkit::{NodeBuilder, ServiceBuilder, SliceBuilder, service, slice};

use super::{CaseError, CaseResult};
use crate::plan::{self, PodPlan};
use crate::{Harness, Outcome, Proto, Reply, eventually};

/// The namespace of every object the cases make.
pub(super) const NS: &str = "conformance";
/// How long a change may take to show in traffic.
pub(super) const CONVERGE: Duration = Duration::from_secs(5);
/// Requests per spread: enough that a pod that should answer is all but sure to.
pub(super) const SPREAD_N: usize = 40;
/// The HTTP-ish port every pod serves: service port 80 → target 8080.
pub(super) const HTTP: (&str, u16) = ("http", plan::PORT_HTTP);

/// Every pod's name.
pub(super) fn all_pods() -> Vec<&'static str> {
    plan::PODS.iter().map(|p| p.name).collect()
}

/// `ip:port`.
pub(super) fn at(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// A ClusterIP Service `name` with cluster IP `ip` (no ports yet).
pub(super) fn svc(name: &str, ip: impl Into<IpAddr>) -> ServiceBuilder {
    service(NS, name).cluster_ip(&ip.into().to_string())
}

/// A slice `<service>-<suffix>` of `service` with `ports` (name, port, protocol) and one
/// endpoint per pod (on its node, ready), in the family of `ipv6`.
pub(super) fn eps(
    service: &str,
    suffix: &str,
    ports: &[(&str, u16, &str)],
    pods: &[PodPlan],
    ipv6: bool,
) -> SliceBuilder {
    let mut b = slice(NS, service, &format!("{service}-{suffix}"));
    if ipv6 {
        b = b.address_type("IPv6");
    }
    for (name, port, protocol) in ports {
        b = b.port(name, i32::from(*port), protocol);
    }
    for pod in pods {
        let ip = if ipv6 { pod.ipv6.to_string() } else { pod.ipv4.to_string() };
        b = b.endpoint(&ip, |e| e.node(pod.node));
    }
    b
}

/// An IPv4 slice of `pods` serving TCP `http` on 8080.
pub(super) fn http_eps(service: &str, pods: &[PodPlan]) -> SliceBuilder {
    eps(service, "v4", &[(HTTP.0, HTTP.1, "TCP")], pods, false)
}

/// node1's Node as [`crate::default_node`] has it, shaped further by `f`.
pub(super) fn node1(f: impl FnOnce(NodeBuilder) -> NodeBuilder) -> Node {
    let b = kproxy_testkit::node(plan::NODE1)
        .internal_ip(&plan::NODE1_IPV4.to_string())
        .internal_ip(&plan::NODE1_IPV6.to_string())
        .pod_cidr(&plan::NODE1_POD_CIDR_V4.to_string())
        .pod_cidr(&plan::NODE1_POD_CIDR_V6.to_string());
    f(b).build()
}

fn fail(message: String) -> CaseError {
    CaseError::Fail(message)
}

/// Counts replies by pod.
pub(super) fn counts(replies: &[Reply]) -> BTreeMap<&str, usize> {
    replies.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.pod.as_str()).or_insert(0) += 1;
        m
    })
}

/// Waits until a request is answered by one of `expected`; returns that reply.
pub(super) async fn converge(
    h: &Harness,
    proto: Proto,
    from: &str,
    addr: SocketAddr,
    expected: &[&str],
) -> Result<Reply, CaseError> {
    let attempt = move || async move {
        match h.request(proto, from, addr).await {
            Ok(r) if expected.contains(&r.pod.as_str()) => Ok(r),
            Ok(r) => Err(format!("answered by {} (expected one of {expected:?})", r.pod)),
            Err(o) => Err(o.to_string()),
        }
    };
    eventually(CONVERGE, attempt).await.map_err(|e| fail(format!("{proto:?} {from} → {addr}: {e}")))
}

/// `n` requests that must all be answered; returns the replies.
pub(super) async fn answered(
    h: &Harness,
    proto: Proto,
    from: &str,
    addr: SocketAddr,
    n: usize,
) -> Result<Vec<Reply>, CaseError> {
    let mut replies = Vec::with_capacity(n);
    for (i, result) in h.replies(proto, from, addr, n).await.into_iter().enumerate() {
        let reply = result.map_err(|o| fail(format!("{proto:?} {from} → {addr}: request {} of {n} {o}", i + 1)))?;
        replies.push(reply);
    }
    Ok(replies)
}

/// After convergence, [`SPREAD_N`] requests must be answered by exactly the pods in
/// `expected` (each at least once, no other).
pub(super) async fn expect_spread(
    h: &Harness,
    proto: Proto,
    from: &str,
    addr: SocketAddr,
    expected: &[&str],
) -> Result<Vec<Reply>, CaseError> {
    converge(h, proto, from, addr, expected).await?;
    let replies = answered(h, proto, from, addr, SPREAD_N).await?;
    let seen: BTreeSet<&str> = replies.iter().map(|r| r.pod.as_str()).collect();
    let want: BTreeSet<&str> = expected.iter().copied().collect();
    ensure!(seen == want, "{proto:?} {from} → {addr}: answered by {:?}, expected exactly {want:?}", counts(&replies));
    Ok(replies)
}

/// Every reply saw source IP `ip`.
pub(super) fn expect_source(replies: &[Reply], ip: impl Into<IpAddr>, why: &str) -> CaseResult {
    let ip = ip.into();
    let wrong = replies.iter().map(|r| r.source.ip()).filter(|s| *s != ip).fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s).or_insert(0usize) += 1;
        m
    });
    ensure!(wrong.is_empty(), "pods saw sources {wrong:?} (ip: count), expected only {ip} ({why})");
    Ok(())
}

/// What a request that must not be answered should meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Want {
    /// Refused fast (within 1 s).
    Refused,
    /// Dropped: the request times out.
    TimedOut,
    /// Either: just no answer.
    NoAnswer,
}

/// Waits until a request meets `want` (a refusal must come within 1 s).
pub(super) async fn expect_no_answer(
    h: &Harness,
    proto: Proto,
    from: &str,
    addr: SocketAddr,
    want: Want,
) -> CaseResult {
    let attempt = move || async move {
        let start = Instant::now();
        let result = h.request(proto, from, addr).await;
        let took = start.elapsed();
        match (want, &result) {
            (Want::Refused, Err(Outcome::Refused(_))) if took < Duration::from_secs(1) => Ok(()),
            (Want::TimedOut, Err(Outcome::TimedOut)) => Ok(()),
            (Want::NoAnswer, Err(Outcome::Refused(_) | Outcome::TimedOut)) => Ok(()),
            (_, Ok(r)) => Err(format!("answered by {} (source {})", r.pod, r.source)),
            (_, Err(o)) => Err(format!("{o} after {took:?}")),
        }
    };
    let result = eventually(CONVERGE, attempt).await;
    result.map_err(|e| fail(format!("{proto:?} {from} → {addr}: expected {want:?}, got {e}")))
}
