//! ClientIP session affinity and its timeout.

use std::time::Duration;

use super::support::{all_pods, answered, at, converge, counts, http_eps, svc};
use super::{CaseError, CaseResult};
use crate::plan::{POD1A, POD1B, PODS};
use crate::{Harness, Proto};

/// The affinity timeout of the timeout case.
const SHORT_TIMEOUT_SECONDS: u16 = 2;
/// How many expiries the timeout case waits through before it gives up: the chance that
/// a correct dataplane picks the same pod every time is (1/4)^6 ≈ 0.02%.
const ROUNDS: usize = 6;

/// A ClientIP-affinity Service over every pod; returns its address.
async fn affine(h: &mut Harness, name: &str, timeout: Option<u16>) -> Result<std::net::SocketAddr, CaseError> {
    let ip = h.alloc_cluster_ipv4();
    let service = svc(name, ip).tcp("http", 80).client_ip_affinity(timeout.map(i32::from));
    h.apply_service(service.build()).await?;
    h.apply_slice(http_eps(name, &PODS).build()).await?;
    Ok(at(ip, 80))
}

/// 30 connections from each of two pods: one endpoint per client.
pub(super) async fn sticky(h: &mut Harness) -> CaseResult {
    let addr = affine(h, "affinity", None).await?;
    for from in [POD1A.name, POD1B.name] {
        converge(h, Proto::Tcp, from, addr, &all_pods()).await?;
        let replies = answered(h, Proto::Tcp, from, addr, 30).await?;
        let seen = counts(&replies);
        ensure!(seen.len() == 1, "{from}: connections went to {seen:?}, expected one pod");
    }
    Ok(())
}

/// Sticky within the timeout; after `SHORT_TIMEOUT_SECONDS` of silence a new pick happens.
pub(super) async fn timeout(h: &mut Harness) -> CaseResult {
    let addr = affine(h, "affinity-timeout", Some(SHORT_TIMEOUT_SECONDS)).await?;
    let first = converge(h, Proto::Tcp, POD1A.name, addr, &all_pods()).await?.pod;
    let replies = answered(h, Proto::Tcp, POD1A.name, addr, 10).await?;
    let seen = counts(&replies);
    ensure!(seen.keys().eq([&first.as_str()]), "within the timeout, connections went to {seen:?}, expected {first}");
    for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_secs(u64::from(SHORT_TIMEOUT_SECONDS)) + Duration::from_millis(1500)).await;
        let next = answered(h, Proto::Tcp, POD1A.name, addr, 1).await?;
        if next.iter().any(|r| r.pod != first) {
            return Ok(());
        }
    }
    Err(CaseError::Fail(format!("after each of {ROUNDS} expiries of {SHORT_TIMEOUT_SECONDS} s, still {first}")))
}
