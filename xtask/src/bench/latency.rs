//! Connect latency through a ClusterIP with 10k services programmed, as a ratio to 10: the
//! probe service is the last one, so a dataplane whose cost grows with the number of
//! services shows it. [`run`] measures the nftables dataplane; [`latency_row`] is the
//! measurement every dataplane's phase uses.

use std::net::IpAddr;
use std::time::Duration;

use kproxy_core::{Changes, Dataplane, Endpoint, IpFamily, ProxyState};
use kproxy_nftables::{NftablesConfig, NftablesDataplane};

use super::Row;
use super::state::{port_name, service_ip, synthetic};
use crate::netns::Cluster;

const CONNECTS: usize = 3_000;

/// What one latency benchmark measures and reports.
pub(super) struct Latency {
    /// The namespace prefix of its cluster.
    pub(super) prefix: &'static str,
    /// Rounds of [`CONNECTS`] connections per number of services.
    pub(super) rounds: usize,
    /// The row's name.
    pub(super) name: &'static str,
    /// The row's goal.
    pub(super) goal: &'static str,
}

/// p50 and p99 connect-plus-first-byte latency of the nftables dataplane with 10 and with
/// 10k services.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let latency = Latency {
        prefix: "kplat",
        rounds: 3,
        name: "connect+first byte via ClusterIP, 10k svc vs 10 (p50 / p99)",
        goal: "<= 1.1",
    };
    let row = latency_row(&latency, |cluster, state| {
        let mut dp =
            NftablesDataplane::new(NftablesConfig { netns: Some(cluster.ns("node")), ..NftablesConfig::default() });
        runtime.block_on(dp.sync(state, &Changes::full_sync()))?;
        Ok(())
    })?;
    Ok(vec![row])
}

/// Measures `latency` in a one-pod cluster: for 10 and then 10k services, `program` loads
/// the state into node1 and the client connects to the last service `rounds` ×
/// [`CONNECTS`] times.
pub(super) fn latency_row(
    latency: &Latency,
    mut program: impl FnMut(&Cluster, &ProxyState) -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let mut cluster = Cluster::create(&format!("{}{}", latency.prefix, std::process::id() % 10_000), 1)?;
    let me = crate::netns::tool_path()?;
    cluster.spawn("pod0", &[&me, "serve", "--name", "pod", "--port", "8080"], true)?;
    let mut results = Vec::new();
    for services in [10, 10_000] {
        let (state, addr) = probe_state(services)?;
        program(&cluster, &state)?;
        let samples = measure(&cluster, &me, &addr, latency.rounds)?;
        results.push((percentile(&samples, 50), percentile(&samples, 99)));
    }
    let ((base50, base99), (big50, big99)) = (results[0], results[1]);
    Ok(Row {
        name: latency.name.to_owned(),
        value: format!("{} / {} us", big50.as_micros(), big99.as_micros()),
        baseline: format!("{} / {} us", base50.as_micros(), base99.as_micros()),
        ratio: Some(big50.as_secs_f64() / base50.as_secs_f64()),
        goal: latency.goal.to_owned(),
    })
}

/// `services` synthetic services whose last one points at the pod, and that one's address.
fn probe_state(services: usize) -> anyhow::Result<(ProxyState, String)> {
    let mut state = synthetic(services, 10);
    let probe = services - 1;
    let pod: IpAddr = Cluster::pod_ip(0).parse()?;
    state.family_mut(IpFamily::V4).endpoints.insert(port_name(probe), vec![Endpoint::new(pod, 8080)]);
    Ok((state, format!("{}:80", service_ip(probe))))
}

/// Every latency of `rounds` × [`CONNECTS`] connections from the client, sorted.
fn measure(cluster: &Cluster, me: &str, addr: &str, rounds: usize) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    let count = CONNECTS.to_string();
    for _ in 0..rounds {
        let out = cluster.exec("client", &[me, "latency", "--addr", addr, "--count", &count])?;
        samples.extend(out.lines().filter_map(|l| l.trim().parse::<u64>().ok()).map(Duration::from_micros));
    }
    samples.sort();
    Ok(samples)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted.get(sorted.len().saturating_sub(1) * p / 100).copied().unwrap_or_default()
}
