//! Connect latency through a ClusterIP with 10k services programmed, as a ratio to 10.

use std::net::IpAddr;
use std::time::Duration;

use kproxy_core::{Changes, Dataplane, Endpoint, IpFamily};
use kproxy_nftables::{NftablesConfig, NftablesDataplane};

use super::Row;
use super::state::{port_name, service_ip, synthetic};
use crate::netns::Cluster;

const ROUNDS: usize = 3;
const CONNECTS: usize = 3_000;

/// p50 and p99 connect-plus-first-byte latency with 10 and with 10k services.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let mut cluster = Cluster::create(&format!("kplat{}", std::process::id() % 10_000), 1)?;
    let me = crate::netns::tool_path()?;
    cluster.spawn("pod0", &[&me, "serve", "--name", "pod", "--port", "8080"], true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut results = Vec::new();
    for services in [10, 10_000] {
        let probe = program(&runtime, &cluster, services)?;
        let samples = measure(&cluster, &me, &probe)?;
        results.push((services, percentile(&samples, 50), percentile(&samples, 99)));
    }
    let (_, base50, base99) = results[0];
    let (_, big50, big99) = results[1];
    Ok(vec![Row {
        name: "connect+first byte via ClusterIP, 10k svc vs 10 (p50 / p99)".to_owned(),
        value: format!("{} / {} us", big50.as_micros(), big99.as_micros()),
        baseline: format!("{} / {} us", base50.as_micros(), base99.as_micros()),
        ratio: Some(big50.as_secs_f64() / base50.as_secs_f64()),
        goal: "<= 1.1".to_owned(),
    }])
}

/// Programs `services` services whose last one points at the pod; returns its address.
fn program(runtime: &tokio::runtime::Runtime, cluster: &Cluster, services: usize) -> anyhow::Result<String> {
    let mut state = synthetic(services, 10);
    let probe = services - 1;
    let pod: IpAddr = Cluster::pod_ip(0).parse()?;
    state.family_mut(IpFamily::V4).endpoints.insert(port_name(probe), vec![Endpoint::new(pod, 8080)]);
    let mut dp =
        NftablesDataplane::new(NftablesConfig { netns: Some(cluster.ns("node")), ..NftablesConfig::default() });
    runtime.block_on(dp.sync(&state, &Changes::full_sync()))?;
    Ok(format!("{}:80", service_ip(probe)))
}

fn measure(cluster: &Cluster, me: &str, addr: &str) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    let count = CONNECTS.to_string();
    for _ in 0..ROUNDS {
        let out = cluster.exec("client", &[me, "latency", "--addr", addr, "--count", &count])?;
        samples.extend(out.lines().filter_map(|l| l.trim().parse::<u64>().ok()).map(Duration::from_micros));
    }
    samples.sort();
    Ok(samples)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted.get(sorted.len().saturating_sub(1) * p / 100).copied().unwrap_or_default()
}
