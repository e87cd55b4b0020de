//! Changes over time: endpoint churn, deletion, stale UDP flows, and scale.

use std::time::{Duration, Instant};

use super::support::{CONVERGE, NS, Want, answered, at, converge, eps, expect_no_answer, http_eps, svc};
use super::{CaseError, CaseResult};
use crate::plan::{POD1A, POD2A, POD2B, PODS};
use crate::{Harness, Proto, eventually};

/// The fixed source port of the stale-UDP case.
const UDP_CLIENT_PORT: u16 = 41053;
/// Services of the scale case.
const SCALE: usize = 1000;
/// How long programming them may take.
const SCALE_SYNC_BUDGET: Duration = Duration::from_secs(60);

/// Waits until `n` requests in a row are all answered by `pod`.
async fn settles_on(h: &Harness, proto: Proto, from: &str, addr: std::net::SocketAddr, pod: &str) -> CaseResult {
    let attempt = move || async move {
        let replies = answered(h, proto, from, addr, 5).await.map_err(|e| e.to_string())?;
        match replies.iter().find(|r| r.pod != pod) {
            None => Ok(()),
            Some(r) => Err(format!("still answered by {}", r.pod)),
        }
    };
    let result = eventually(CONVERGE, attempt).await;
    result.map_err(|e| CaseError::Fail(format!("{proto:?} {from} → {addr}: expected only {pod}: {e}")))
}

/// Endpoints {pod2a} replaced by {pod2b}: traffic follows.
pub(super) async fn endpoint_churn(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("churn", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("churn", &[POD2A]).build()).await?;
    converge(h, Proto::Tcp, POD1A.name, at(ip, 80), &[POD2A.name]).await?;
    h.apply_slice(http_eps("churn", &[POD2B]).build()).await?;
    settles_on(h, Proto::Tcp, POD1A.name, at(ip, 80), POD2B.name).await
}

/// A working Service deleted (with its slice): its ClusterIP stops answering.
pub(super) async fn service_deletion(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc("deleted", ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps("deleted", &PODS).build()).await?;
    converge(h, Proto::Tcp, POD1A.name, at(ip, 80), &super::support::all_pods()).await?;
    h.delete_service(NS, "deleted").await?;
    h.delete_slice(NS, "deleted-v4").await?;
    expect_no_answer(h, Proto::Tcp, POD1A.name, at(ip, 80), Want::NoAnswer).await
}

/// A UDP flow from a fixed port to pod2a; pod2a replaced by pod2b: the flow moves.
pub(super) async fn stale_udp(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    let flow = Proto::UdpFrom(UDP_CLIENT_PORT);
    h.apply_service(svc("stale-udp", ip).udp("dns", 53).build()).await?;
    h.apply_slice(eps("stale-udp", "v4", &[("dns", 53, "UDP")], &[POD2A], false).build()).await?;
    converge(h, flow, POD1A.name, at(ip, 53), &[POD2A.name]).await?;
    h.apply_slice(eps("stale-udp", "v4", &[("dns", 53, "UDP")], &[POD2B], false).build()).await?;
    settles_on(h, flow, POD1A.name, at(ip, 53), POD2B.name).await
}

/// 1,000 Services (service i → pod i mod 4) in one sync; a sample answers right.
pub(super) async fn scale_1000(h: &mut Harness) -> CaseResult {
    let mut addrs = Vec::with_capacity(SCALE);
    for i in 0..SCALE {
        let ip = h.alloc_cluster_ipv4();
        let name = format!("scale-{i}");
        h.stage_service(svc(&name, ip).tcp("http", 80).build())?;
        h.stage_slice(http_eps(&name, &[PODS[i % PODS.len()]]).build())?;
        addrs.push(at(ip, 80));
    }
    let start = Instant::now();
    h.sync().await?;
    let took = start.elapsed();
    ensure!(took < SCALE_SYNC_BUDGET, "programming {SCALE} services took {took:?}");
    for i in [0, 1, 2, 3, 250, 499, 500, 777, 998, SCALE - 1] {
        let (addr, pod) = (addrs[i], PODS[i % PODS.len()].name);
        let reply = converge(h, Proto::Tcp, POD1A.name, addr, &[pod]).await;
        reply.map_err(|e| CaseError::Fail(format!("service {i} of {SCALE}: {e}")))?;
    }
    Ok(())
}
