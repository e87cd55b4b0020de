//! Connect latency through a ClusterIP with 10k services programmed, as a ratio to 10: the
//! probe service is the last one, so a dataplane whose cost grows with the number of
//! services shows it. [`run`] measures the nftables dataplane; [`latency_row`] (and
//! [`latency_rows`], which can also measure a direct connection to the pod) is the
//! measurement every dataplane's phase uses.

use std::net::IpAddr;
use std::path::PathBuf;
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
    /// The client runs inside this cgroup (v2 directory): where socket programs are attached.
    pub(super) client_cgroup: Option<PathBuf>,
    /// Also measure, with 10k services programmed, a direct connection to the pod (from
    /// outside `client_cgroup`), round by round with the ClusterIP: its row's name and goal.
    pub(super) direct: Option<(&'static str, &'static str)>,
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
        client_cgroup: None,
        direct: None,
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
    program: impl FnMut(&Cluster, &ProxyState) -> anyhow::Result<()>,
) -> anyhow::Result<Row> {
    let mut rows = latency_rows(latency, program)?;
    anyhow::ensure!(!rows.is_empty(), "no latency row");
    Ok(rows.remove(0))
}

/// [`latency_row`], and with [`Latency::direct`] a second row: the ClusterIP with 10k
/// services against a direct connection to the pod, measured round by round.
pub(super) fn latency_rows(
    latency: &Latency,
    mut program: impl FnMut(&Cluster, &ProxyState) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Row>> {
    let mut cluster = Cluster::create(&format!("{}{}", latency.prefix, std::process::id() % 10_000), 1)?;
    let me = crate::netns::tool_path()?;
    cluster.spawn("pod0", &[&me, "serve", "--name", "pod", "--port", "8080"], true)?;
    let client = Client { cluster: &cluster, me: &me, cgroup: latency.client_cgroup.as_ref() };
    let direct_addr = format!("{}:8080", Cluster::pod_ip(0));
    let mut results = Vec::new();
    let mut direct = Vec::new();
    for services in [10, 10_000] {
        let (state, addr) = probe_state(services)?;
        program(&cluster, &state)?;
        let mut samples = Vec::new();
        for _ in 0..latency.rounds {
            samples.extend(client.round(&addr, true)?);
            if services == 10_000 && latency.direct.is_some() {
                direct.extend(client.round(&direct_addr, false)?);
            }
        }
        samples.sort();
        results.push(samples);
    }
    direct.sort();
    let us = |samples: &[Duration]| (percentile(samples, 50), percentile(samples, 99));
    let ((base50, base99), (big50, big99)) = (us(&results[0]), us(&results[1]));
    let mut rows = vec![Row {
        name: latency.name.to_owned(),
        value: format!("{} / {} us", big50.as_micros(), big99.as_micros()),
        baseline: format!("{} / {} us", base50.as_micros(), base99.as_micros()),
        ratio: Some(big50.as_secs_f64() / base50.as_secs_f64()),
        goal: latency.goal.to_owned(),
    }];
    if let Some((name, goal)) = latency.direct {
        let (direct50, direct99) = us(&direct);
        rows.push(Row {
            name: name.to_owned(),
            value: format!("{} / {} us", big50.as_micros(), big99.as_micros()),
            baseline: format!("direct {} / {} us", direct50.as_micros(), direct99.as_micros()),
            ratio: Some(big50.as_secs_f64() / direct50.as_secs_f64()),
            goal: goal.to_owned(),
        });
    }
    Ok(rows)
}

/// `services` synthetic services whose last one points at the pod, and that one's address.
fn probe_state(services: usize) -> anyhow::Result<(ProxyState, String)> {
    let mut state = synthetic(services, 10);
    let probe = services - 1;
    let pod: IpAddr = Cluster::pod_ip(0).parse()?;
    state.family_mut(IpFamily::V4).endpoints.insert(port_name(probe), vec![Endpoint::new(pod, 8080)]);
    Ok((state, format!("{}:80", service_ip(probe))))
}

/// The client namespace's latency tool, run inside a cgroup or not.
struct Client<'a> {
    cluster: &'a Cluster,
    me: &'a str,
    cgroup: Option<&'a PathBuf>,
}

impl Client<'_> {
    /// The latencies of [`CONNECTS`] connections to `addr`; `in_cgroup`: from inside the
    /// client cgroup (when there is one).
    fn round(&self, addr: &str, in_cgroup: bool) -> anyhow::Result<Vec<Duration>> {
        let count = CONNECTS.to_string();
        let tool = [self.me, "latency", "--addr", addr, "--count", &count];
        let out = match self.cgroup.filter(|_| in_cgroup) {
            None => self.cluster.exec("client", &tool)?,
            Some(cgroup) => {
                // The shell joins the cgroup, then becomes `ip netns exec …`: the tool and
                // every socket it opens belong to the cgroup.
                let procs = cgroup.join("cgroup.procs");
                let ns = self.cluster.ns("client");
                let mut args = vec!["sh", "-c", "echo $$ > \"$0\" && exec \"$@\""];
                let procs = procs.to_str().unwrap_or_default();
                args.extend([procs, "ip", "netns", "exec", &ns]);
                args.extend(tool);
                crate::netns::run(&args)?
            }
        };
        Ok(out.lines().filter_map(|l| l.trim().parse::<u64>().ok()).map(Duration::from_micros).collect())
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted.get(sorted.len().saturating_sub(1) * p / 100).copied().unwrap_or_default()
}
