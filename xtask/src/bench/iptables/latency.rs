//! Connect latency through a ClusterIP programmed by the iptables dataplane
//! (iptables-legacy), with 10k services against 10: the probe service is the last one, so
//! its packets walk all of KUBE-SERVICES. Expected to grow (anchor: 2.4× at p50).

use std::net::IpAddr;
use std::time::Duration;

use kproxy_core::{Changes, Endpoint, IpFamily};
use kproxy_netfilter::IptablesBackend;

use super::super::Row;
use super::super::state::{port_name, service_ip, synthetic};
use super::{dataplane, sync};
use crate::netns::Cluster;

const ROUNDS: usize = 5;
const CONNECTS: usize = 3_000;

/// p50 and p99 connect-plus-first-byte latency with 10 and with 10k services.
pub(super) fn run(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Row> {
    let mut cluster = Cluster::create(&format!("kpilat{}", std::process::id() % 10_000), 1)?;
    let me = crate::netns::tool_path()?;
    cluster.spawn("pod0", &[&me, "serve", "--name", "pod", "--port", "8080"], true)?;
    let (mut dp, _) = dataplane(&cluster.ns("node"), IptablesBackend::Legacy);
    let mut results = Vec::new();
    for services in [10, 10_000] {
        let mut state = synthetic(services, 10);
        let probe = services - 1;
        let pod: IpAddr = Cluster::pod_ip(0).parse()?;
        state.family_mut(IpFamily::V4).endpoints.insert(port_name(probe), vec![Endpoint::new(pod, 8080)]);
        runtime.block_on(sync(&mut dp, &state, &Changes::full_sync()))?;
        let samples = measure(&cluster, &me, &format!("{}:80", service_ip(probe)))?;
        results.push((percentile(&samples, 50), percentile(&samples, 99)));
    }
    let ((base50, base99), (big50, big99)) = (results[0], results[1]);
    Ok(Row {
        name: "iptables-legacy connect+first byte via ClusterIP, 10k svc vs 10 (p50 / p99)".to_owned(),
        value: format!("{} / {} us", big50.as_micros(), big99.as_micros()),
        baseline: format!("{} / {} us", base50.as_micros(), base99.as_micros()),
        ratio: Some(big50.as_secs_f64() / base50.as_secs_f64()),
        goal: "grows (anchor 2.4)".to_owned(),
    })
}

/// Every latency of `ROUNDS` × `CONNECTS` connections from the client, sorted.
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
