//! eBPF at 50k: the dataplane's cold full sync against the nftables dataplane's cold full
//! sync of the same state (one each, as the other 50k phases), and one endpoint change with 50k loaded against the same change
//! with 10k loaded, measured with the 10k rows' code (`bench/ebpf/sync.rs`).
//!
//! The maps are sized for 50k × 10 through the config (the default `kp_endpoints` holds
//! 262,144 slots, not 500,000), the same sizes for both changes. The programs attach to a
//! child cgroup `kpe5-<pid>` only; the namespaces are `kpe5s<pid>-…` and `kpe5n<pid>`;
//! nothing is pinned, and everything is removed after (also on failure).

use std::sync::Arc;

use super::{CHANGE_BASELINE_SERVICES, ENDPOINTS, SERVICES, count, secs};
use crate::bench::ebpf::cgroup::BenchCgroup;
use crate::bench::ebpf::sync::SyncBench;
use crate::bench::ebpf::{loaded_state, map_sizes};
use crate::bench::{Row, ms};

/// The prefix of this phase's cgroup and namespaces.
const PREFIX: &str = "kpe5";

/// The row names, for `--only`.
pub(crate) fn rows() -> Vec<String> {
    vec![cold_name(), change_name()]
}

fn cold_name() -> String {
    format!("ebpf cold full sync, {} svc x {ENDPOINTS} ep", count(SERVICES))
}

fn change_name() -> String {
    format!("ebpf one endpoint change, {} svc present", count(SERVICES))
}

/// Both rows.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let cgroup = BenchCgroup::create(PREFIX)?;
    // Declared after the cgroup, so dropped (its dataplanes cleaned up) before it.
    let bench = SyncBench::create(PREFIX, cgroup.path(), map_sizes(SERVICES))?;
    let state = Arc::new(loaded_state(SERVICES)?);
    let (ebpf_cold, ebpf_cpu) = bench.ebpf_cold(&state)?;
    let (nft_cold, nft_cpu) = bench.nft_cold(&state)?;
    let change = bench.ebpf_change(Arc::unwrap_or_clone(state))?;
    let baseline_change = bench.ebpf_change(loaded_state(CHANGE_BASELINE_SERVICES)?)?;
    Ok(vec![
        Row {
            name: cold_name(),
            value: format!("{} (CPU {})", secs(ebpf_cold), secs(ebpf_cpu.own)),
            baseline: format!(
                "nftables {} (CPU: kproxy {}, nft {})",
                secs(nft_cold),
                secs(nft_cpu.own),
                secs(nft_cpu.children)
            ),
            ratio: Some(ebpf_cold.as_secs_f64() / nft_cold.as_secs_f64()),
            goal: "< 5 s".to_owned(),
        },
        Row {
            name: change_name(),
            value: ms(change),
            baseline: format!("same change, {} svc present {}", count(CHANGE_BASELINE_SERVICES), ms(baseline_change)),
            ratio: Some(change.as_secs_f64() / baseline_change.as_secs_f64()),
            goal: "< 10 ms".to_owned(),
        },
    ])
}
