//! The conformance suite on real packets, for the eBPF dataplane, in-process. A packet
//! test: it needs root (network namespaces, a cgroup, BPF programs), so it is ignored by a
//! plain `cargo test`; `cargo xtask test` runs it. `KPROXY_CONFORMANCE_FILTER` selects cases.
//!
//! The suite's hosts are threads of this process, so the test moves the whole process into
//! a child cgroup it creates (`kproxy-test-<pid>-conformance`), attaches there only, and
//! restricts balancing to node1's namespaces (node1 and its pods): the external clients
//! and node2, which share the cgroup, are left alone. The cgroup goes on drop, also after
//! a panic; nothing is attached to any other cgroup.
//!
//! Traffic from the external clients is balanced by the tc programs, which the dataplane
//! attaches (from its thread inside node1's namespace) to node1's interfaces: `eth0`, which
//! holds node1's addresses, and the pods' veths. Those interfaces go with the namespace.

#[path = "support/mod.rs"]
mod support;

#[path = "ebpf_cases/mod.rs"]
mod socket_cases;

use kproxy_conformance::{BoxError, NodeEnv, cases, run_cases};
use kproxy_core::Dataplane;
use kproxy_ebpf::{EbpfConfig, EbpfDataplane};
use kproxy_testkit::prereq::{Tool, require};
use support::TestCgroup;
use support::netns::netns_cookie;

/// Upstream has no eBPF mode; of its modes only nftables has `cluster-ips-check`.
const NO_CLUSTER_IP_HYGIENE: &str = "upstream kube-proxy does this in nftables mode only (cluster-ips-check); the eBPF \
     mode follows its iptables mode, which neither rejects unknown ports of cluster IPs nor drops unallocated \
     service-CIDR addresses";

/// Cases this dataplane cannot run, with the reason.
const SKIPS: &[(&str, &str)] = &[
    ("cluster-ip-hygiene", NO_CLUSTER_IP_HYGIENE),
    (
        "hairpin",
        "socket-level balancing connects the pod to itself directly, so its own address is the source: there is no \
         hairpin packet path to masquerade",
    ),
    (
        "localhost-nodeport",
        "the eBPF mode balances node ports on the node's own addresses only (its Node's, narrowed by \
         --nodeport-addresses): 127.0.0.1 and ::1 are not service addresses there, and \
         --nftables-localhost-nodeports is the nftables mode's relay",
    ),
    (
        "masquerade-all",
        "socket-level balancing never rewrites a packet: connections leave from the client's own address, there is \
         nothing to masquerade",
    ),
];

/// A dataplane on node1 attached to `cgroup`, balancing only node1's namespaces.
fn factory(cgroup: std::path::PathBuf) -> impl Fn(&NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> + Send + Sync {
    move |env: &NodeEnv| {
        let cookies = env.local_netns.iter().map(|n| netns_cookie(n)).collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(EbpfDataplane::new(EbpfConfig {
            cgroup_path: cgroup.clone(),
            pin_dir: None,
            netns_cookies: cookies,
            ..EbpfConfig::default()
        })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and a cgroup2 mount; run by cargo xtask test"]
async fn ebpf_conformance() {
    require(&[Tool::Ip]);
    let mut cgroup = TestCgroup::create("conformance");
    cgroup.enter();
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let factory = std::sync::Arc::new(factory(cgroup.path().to_owned()));
    let mut table = cases();
    table.extend(socket_cases::socket_cases());
    let report = run_cases(factory, &table, SKIPS, filter.as_deref()).await;
    report.assert_all_passed();
}
