//! The eBPF dataplane's syncs against the nftables dataplane's, at any number of services:
//! a cold full sync and the median one-endpoint change, each on its own dataplane,
//! cleaned up after (also on failure). The 10k rows (`ebpf`) and the 50k rows
//! (`scale 50k (ebpf)`) both measure with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kproxy_core::{Changes, Dataplane, ProxyState};
use kproxy_ebpf::{EbpfDataplane, MapSizes};

use super::config;
use super::node::NodeThread;
use crate::bench::nftables::{self, CHANGE_SAMPLES, Namespace};
use crate::bench::scale::Cpu;
use crate::netns::Cluster;

/// Where the syncs run: the eBPF dataplane on a thread inside a cluster's node namespace
/// (its tc programs reach only that namespace's interfaces), attached to one child cgroup
/// with maps of one size; the nftables dataplane in a namespace of its own.
pub(in crate::bench) struct SyncBench {
    // Dropped in this order: the node thread (cleaning its dataplane up) before the
    // cluster it lives in (held only to be removed last).
    node: NodeThread,
    _cluster: Cluster,
    nft_ns: Namespace,
    runtime: tokio::runtime::Runtime,
    cgroup: PathBuf,
    sizes: MapSizes,
}

impl SyncBench {
    /// Creates namespaces `{prefix}s{pid}-…` (the cluster) and `{prefix}n{pid}` (nftables);
    /// the eBPF dataplanes attach to `cgroup` with maps of `sizes`.
    pub(in crate::bench) fn create(prefix: &str, cgroup: &Path, sizes: MapSizes) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let pid = std::process::id() % 10_000;
        let cluster = Cluster::create(&format!("{prefix}s{pid}"), 0)?;
        let nft_ns = Namespace::create(&format!("{prefix}n{pid}"))?;
        let node = NodeThread::start(&cluster.ns("node"))?;
        Ok(Self { node, _cluster: cluster, nft_ns, runtime, cgroup: cgroup.to_owned(), sizes })
    }

    /// One cold full sync of `state` by a new eBPF dataplane (loading its programs
    /// included), cleaned up after: its wall time and the CPU it used (this process's: the
    /// map updates and the verifier run in its system calls). Prints what the maps hold.
    pub(in crate::bench) fn ebpf_cold(&self, state: &Arc<ProxyState>) -> anyhow::Result<(Duration, Cpu)> {
        let (config, state) = (config(&self.cgroup, self.sizes), Arc::clone(state));
        let (took, cpu, stats) = self.node.run(move |n| -> anyhow::Result<_> {
            let mut dp = EbpfDataplane::new(config);
            let (started, cpu) = (Instant::now(), Cpu::now()?);
            let synced = n.runtime.block_on(dp.sync(&state, &Changes::full_sync()));
            let (took, cpu) = (started.elapsed(), cpu.since()?);
            n.runtime.block_on(dp.cleanup())?;
            Ok((took, cpu, synced?))
        })??;
        let maps: Vec<String> = stats
            .maps
            .iter()
            .filter_map(|m| m.entries.map(|entries| format!("{} {entries} of {}", m.map, m.max_entries)))
            .collect();
        println!("ebpf maps after a cold sync of {} service ports: {}", stats.service_ports, maps.join(", "));
        Ok((took, cpu))
    }

    /// One cold full sync of `state` by a new nftables dataplane, cleaned up after: its wall
    /// time and the CPU it used (kproxy's own, and `nft`'s).
    pub(in crate::bench) fn nft_cold(&self, state: &ProxyState) -> anyhow::Result<(Duration, Cpu)> {
        self.runtime.block_on(async {
            let mut dp = nftables::dataplane(&self.nft_ns.0);
            dp.cleanup().await?;
            let (started, cpu) = (Instant::now(), Cpu::now()?);
            let synced = dp.sync(state, &Changes::full_sync()).await;
            let (took, cpu) = (started.elapsed(), cpu.since()?);
            dp.cleanup().await?;
            synced?;
            Ok((took, cpu))
        })
    }

    /// The eBPF dataplane's median one-endpoint change with `state` loaded.
    pub(in crate::bench) fn ebpf_change(&self, state: ProxyState) -> anyhow::Result<Duration> {
        let config = config(&self.cgroup, self.sizes);
        self.node.run(move |n| -> anyhow::Result<Duration> {
            let mut dp = EbpfDataplane::new(config);
            let change = n.runtime.block_on(one_change(&mut dp, state));
            n.runtime.block_on(dp.cleanup())?;
            change
        })?
    }

    /// The nftables dataplane's median one-endpoint change with `state` loaded.
    pub(in crate::bench) fn nft_change(&self, state: ProxyState) -> anyhow::Result<Duration> {
        let mut dp = nftables::dataplane(&self.nft_ns.0);
        let change = self.runtime.block_on(one_change(&mut dp, state));
        self.runtime.block_on(dp.cleanup())?;
        change
    }
}

/// Loads `state` into `dp`, then its median of [`CHANGE_SAMPLES`] one-endpoint changes.
async fn one_change(dp: &mut dyn Dataplane, state: ProxyState) -> anyhow::Result<Duration> {
    dp.sync(&state, &Changes::full_sync()).await?;
    nftables::changes(dp, state, CHANGE_SAMPLES).await
}
