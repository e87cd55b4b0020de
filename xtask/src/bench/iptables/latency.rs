//! Connect latency through a ClusterIP programmed by the iptables dataplane
//! (iptables-legacy), with 10k services against 10: the probe service is the last one, so
//! its packets walk all of KUBE-SERVICES. Expected to grow (anchor: 2.4× at p50).

use kproxy_core::Changes;
use kproxy_netfilter::IptablesBackend;

use super::super::Row;
use super::super::latency::{Latency, latency_row};
use super::{dataplane, sync};

/// p50 and p99 connect-plus-first-byte latency with 10 and with 10k services.
pub(super) fn run(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Row> {
    let latency = Latency {
        prefix: "kpilat",
        rounds: 5,
        name: "iptables-legacy connect+first byte via ClusterIP, 10k svc vs 10 (p50 / p99)",
        goal: "grows (anchor 2.4)",
        client_cgroup: None,
        direct: None,
    };
    let mut dp = None;
    latency_row(&latency, |cluster, state| {
        let dp = dp.get_or_insert_with(|| dataplane(&cluster.ns("node"), IptablesBackend::Legacy).0);
        runtime.block_on(sync(dp, state, &Changes::full_sync()))?;
        Ok(())
    })
}
