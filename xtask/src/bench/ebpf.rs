//! The eBPF dataplane (`--mode ebpf`): one endpoint change with 10k services present and a
//! cold load of 10k services × 10 endpoints, each against the nftables dataplane in the same
//! run; connect plus first byte via a ClusterIP with 10k services against 10, and against a
//! direct connection to the pod; the daemon's RSS at 10k × 10 against the same daemon on an
//! empty cluster.
//!
//! Where things run: every program attaches to a child cgroup `kpeb-<pid>` this phase
//! creates and removes (also on failure), never to the cgroup root, and only the latency
//! client joins it; the in-process dataplane runs on a thread inside the phase's node
//! namespace, so its tc programs reach only that namespace's interfaces; the daemon runs in
//! a namespace of its own. Every namespace starts with `kpeb`; nothing is pinned.
//!
//! The sync measurements ([`sync::SyncBench`]), the cgroup, the map sizes and the loaded
//! state take the number of services: the 50k rows (`scale 50k (ebpf)`) use them too.

pub(super) mod cgroup;
mod node;
pub(super) mod sync;

use std::path::Path;
use std::sync::Arc;

use kproxy_core::{Changes, Dataplane, ProxyState};
use kproxy_ebpf::{EbpfConfig, EbpfDataplane, MapSizes};

use super::latency::{Latency, latency_rows};
use super::memory::daemon::{self, Measured, Setup, Source};
use super::memory::mib;
use super::nftables::ENDPOINTS;
use super::state::synthetic;
use super::{Row, median, ms};
use crate::netns::NODE_IP;
use cgroup::BenchCgroup;
use node::NodeThread;
use sync::SyncBench;

/// Service ports of the loaded state.
const SERVICES: usize = 10_000;
/// Cold loads per dataplane (alternating).
const COLD_SAMPLES: usize = 3;

const CHANGE: &str = "ebpf one endpoint change, 10k svc present";
const COLD: &str = "ebpf cold load, 10k svc x 10 ep";
const LATENCY: &str = "ebpf connect+first byte via ClusterIP, 10k svc vs 10 (p50 / p99)";
const DIRECT: &str = "ebpf connect+first byte via ClusterIP (10k svc) vs direct to the pod (p50 / p99)";
const PEAK: &str = "ebpf daemon peak RSS, 10k svc x 10 ep (manifests)";
const STEADY: &str = "ebpf daemon steady RSS, 10k svc x 10 ep (manifests)";

/// Every row name, for `--only`.
pub(crate) fn row_names() -> Vec<String> {
    [CHANGE, COLD, LATENCY, DIRECT, PEAK, STEADY].map(str::to_owned).into()
}

/// Every eBPF row.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let cgroup = BenchCgroup::create("kpeb")?;
    let mut rows = Vec::new();
    // A group that fails reports that and lets the others run.
    for (group, measured) in [
        ("ebpf sync", sync_rows(cgroup.path())),
        ("ebpf latency", latency(cgroup.path())),
        ("ebpf daemon RSS", memory(&cgroup)),
    ] {
        match measured {
            Ok(measured) => rows.extend(measured),
            Err(error) => rows.push(Row {
                name: group.to_owned(),
                value: format!("failed: {error:#}"),
                baseline: "-".to_owned(),
                ratio: None,
                goal: "-".to_owned(),
            }),
        }
    }
    drop(cgroup);
    Ok(rows)
}

/// The dataplane's settings: attached to `cgroup` only, nothing pinned, maps of `sizes`.
fn config(cgroup: &Path, sizes: MapSizes) -> EbpfConfig {
    assert_ne!(Some(cgroup), kproxy_ebpf::cgroup2_root().as_deref(), "never the cgroup root");
    EbpfConfig { cgroup_path: cgroup.to_owned(), pin_dir: None, map_sizes: sizes, ..EbpfConfig::default() }
}

/// Map sizes that hold [`loaded_state`] of `services`: the defaults, each raised to the
/// next power of two where it is too small. Its ClusterIPs take one `kp_services` and one
/// `kp_external` entry each (those two maps have one size), its endpoints one
/// `kp_endpoints` slot each (only the cluster set: no endpoint is local).
pub(super) fn map_sizes(services: usize) -> MapSizes {
    let fit = |default: u32, needed: usize| default.max(u32::try_from(needed.next_power_of_two()).unwrap_or(u32::MAX));
    let default = MapSizes::default();
    MapSizes {
        services: fit(default.services, services),
        endpoints: fit(default.endpoints, services * ENDPOINTS),
        ..default
    }
}

/// `services` synthetic services of [`ENDPOINTS`] each on a node holding [`NODE_IP`] (so
/// the tc programs have an external interface, and every service an entry for traffic
/// from outside too).
pub(super) fn loaded_state(services: usize) -> anyhow::Result<ProxyState> {
    let mut state = synthetic(services, ENDPOINTS);
    state.node.addresses = vec![NODE_IP.parse()?];
    Ok(state)
}

/// Cold load and one change at 10k, eBPF against nftables; the cold loads alternate.
fn sync_rows(cgroup: &Path) -> anyhow::Result<Vec<Row>> {
    let bench = SyncBench::create("kpeb", cgroup, map_sizes(SERVICES))?;
    let (mut ebpf_cold, mut nft_cold) = (Vec::new(), Vec::new());
    let state = Arc::new(loaded_state(SERVICES)?);
    for _ in 0..COLD_SAMPLES {
        ebpf_cold.push(bench.ebpf_cold(&state)?.0);
        nft_cold.push(bench.nft_cold(&state)?.0);
    }
    let state = Arc::unwrap_or_clone(state);
    let ebpf_change = bench.ebpf_change(state.clone())?;
    let nft_change = bench.nft_change(state)?;
    let (ebpf_cold, nft_cold) = (median(ebpf_cold), median(nft_cold));
    Ok(vec![
        Row {
            name: CHANGE.to_owned(),
            value: ms(ebpf_change),
            baseline: format!("nftables {}", ms(nft_change)),
            ratio: Some(ebpf_change.as_secs_f64() / nft_change.as_secs_f64()),
            goal: "< 10 ms".to_owned(),
        },
        Row {
            name: COLD.to_owned(),
            value: ms(ebpf_cold),
            baseline: format!("nftables {}", ms(nft_cold)),
            ratio: Some(ebpf_cold.as_secs_f64() / nft_cold.as_secs_f64()),
            goal: "< 1 s".to_owned(),
        },
    ])
}

/// Connect latency: the client in the cgroup, its connections balanced at `connect`.
fn latency(cgroup: &Path) -> anyhow::Result<Vec<Row>> {
    let latency = Latency {
        prefix: "kpebl",
        rounds: 3,
        name: LATENCY,
        goal: "<= 1.1",
        client_cgroup: Some(cgroup.to_owned()),
        direct: Some((DIRECT, "<= 1.05")),
    };
    let mut node: Option<NodeThread> = None;
    let rows = latency_rows(&latency, |cluster, state| {
        let node = match &mut node {
            Some(node) => node,
            None => {
                // Balanced connections go straight to the pod's address.
                let client = cluster.ns("client");
                crate::netns::run(&["ip", "-n", &client, "route", "replace", "10.0.1.0/24", "via", NODE_IP])?;
                node.insert(NodeThread::start(&cluster.ns("node"))?)
            }
        };
        let mut state = state.clone();
        state.node.addresses = vec![NODE_IP.parse()?];
        let config = config(cgroup, map_sizes(SERVICES));
        node.run(move |n| -> anyhow::Result<()> {
            let dp = n.dataplane.get_or_insert_with(|| EbpfDataplane::new(config));
            n.runtime.block_on(dp.sync(&state, &Changes::full_sync()))?;
            Ok(())
        })?
    });
    // The node thread (cleaning its dataplane up) goes before the cluster it lives in.
    drop(node);
    rows
}

/// The daemon in ebpf mode on an empty cluster, then on 10k × 10.
fn memory(cgroup: &BenchCgroup) -> anyhow::Result<Vec<Row>> {
    let args = [
        "--proxy-mode=ebpf".to_owned(),
        format!("--ebpf-cgroup-path={}", cgroup.path_for_daemon().display()),
        "--ebpf-pin-path=".to_owned(),
    ];
    let setup = Setup { prefix: "kpebm", args: &args };
    let idle = daemon::measure(Source::Manifests, 0, ENDPOINTS, None, &setup)?;
    let loaded = daemon::measure(Source::Manifests, SERVICES, ENDPOINTS, None, &setup)?;
    let row = |name: &str, kib: fn(&Measured) -> u64, goal: &str| Row {
        name: name.to_owned(),
        value: format!(
            "{} ({:.0} B/svc)",
            mib(kib(&loaded)),
            kib(&loaded).saturating_sub(kib(&idle)) as f64 * 1024.0 / SERVICES as f64
        ),
        baseline: format!("empty cluster {}", mib(kib(&idle))),
        ratio: Some(kib(&loaded) as f64 / kib(&idle).max(1) as f64),
        goal: goal.to_owned(),
    };
    Ok(vec![row(PEAK, |m| m.peak_kib, "< 100 MiB"), row(STEADY, |m| m.steady_kib, "-")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_sizes_are_the_defaults_until_a_map_would_be_too_small() {
        assert_eq!(map_sizes(SERVICES), MapSizes::default());
        let sizes = map_sizes(50_000);
        assert_eq!(sizes.endpoints, 524_288, "50k x 10 slots, to the next power of two");
        assert_eq!(sizes.services, MapSizes::default().services, "65,536 holds 50k addresses");
        assert_eq!(map_sizes(70_000).services, 131_072);
        assert_eq!(
            MapSizes { services: 0, endpoints: 0, ..sizes },
            MapSizes { services: 0, endpoints: 0, ..MapSizes::default() },
            "the maps the programs fill keep their defaults"
        );
    }
}
