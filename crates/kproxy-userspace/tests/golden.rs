//! Golden tests: the golden cases of kproxy-testkit rendered as `kproxy render` prints them
//! for the userspace mode (the planned listeners, ports not bound yet, and the redirect
//! table of each family) and compared with `tests/golden/<case>.nft`.
//!
//! States are built as the daemon builds them: testkit Services, EndpointSlices and this
//! node (`node1`, zone `zone-a`, 192.168.0.2, the portal address) through a
//! `ChangeTracker`. `KPROXY_BLESS=1` (what `cargo xtask golden --bless` sets) rewrites the
//! files instead; review the diff.

use std::sync::Arc;

use kproxy_conformance::OfflineNode;
use kproxy_core::Dataplane;
use kproxy_netfilter::{FakeConntrack, FakeNft};
use kproxy_testkit::golden::{self, GoldenFiles, Objects};
use kproxy_testkit::golden_tests;
use kproxy_testkit::ip_plan::{POD_CIDR, POD_CIDR_V6};
use kproxy_userspace::{UserspaceConfig, UserspaceDataplane};

const FILES: GoldenFiles = GoldenFiles { crate_dir: env!("CARGO_MANIFEST_DIR"), mode: "userspace", extension: "nft" };

/// One golden case: what it shows and the state.
struct Case {
    about: &'static str,
    node: OfflineNode,
}

fn case(about: &'static str, objects: Objects) -> Case {
    Case { about, node: OfflineNode::with(&golden::node(), &objects.services, &objects.slices) }
}

/// What `kproxy render` prints for a case, from a dataplane on fake runners.
fn render(case: &Case) -> String {
    let config = UserspaceConfig {
        cluster_cidrs: [POD_CIDR, POD_CIDR_V6].map(|c| c.parse().expect("pod CIDR")).to_vec(),
        raise_nofile_limit: false,
        ..UserspaceConfig::default()
    };
    let dataplane =
        UserspaceDataplane::with_runners(config, Arc::new(FakeNft::default()), Arc::new(FakeConntrack::default()))
            .expect("the relay starts");
    dataplane.render(&case.node.state)
}

/// Compares `case` with its golden file, or rewrites the file under `KPROXY_BLESS=1`.
fn check(name: &str, case: Case) {
    FILES.check(name, case.about, &render(&case));
}

golden_tests!(
    FILES, check;
    clusterip,
    nodeport,
    loadbalancer_source_ranges,
    external_ips,
    session_affinity,
    etp_local,
    itp_local,
    no_endpoints,
    topology_hints,
    terminating_fallback,
    dual_stack,
    long_names,
);

mod cases {
    use super::*;

    pub(super) fn clusterip() -> Case {
        case("ClusterIP: a cluster listener per port (TCP and UDP on port 53 apart)", golden::clusterip())
    }

    pub(super) fn nodeport() -> Case {
        case("NodePort, TCP and UDP: node ports map to the cluster listener from everywhere", golden::nodeport())
    }

    pub(super) fn loadbalancer_source_ranges() -> Case {
        case(
            "LoadBalancer with loadBalancerSourceRanges: outside traffic to the LB IP goes to a firewall listener that admits the ranges (5.6.7.8 has ipMode Proxy and is not programmed)",
            golden::loadbalancer_source_ranges(&["203.0.113.0/25", "198.51.100.7/32", "2001:db8:1::/64"]),
        )
    }

    pub(super) fn external_ips() -> Case {
        case("externalIPs (the IPv6 one belongs to the ip6 table)", golden::external_ips())
    }

    pub(super) fn session_affinity() -> Case {
        case(
            "ClientIP session affinity: the listeners remember clients (300 s, and the 10800 s default)",
            golden::session_affinity(),
        )
    }

    pub(super) fn etp_local() -> Case {
        case(
            "externalTrafficPolicy Local: local-lb's outside traffic goes to a local listener; remote-lb has none here (outside traffic dropped, pods and the node short-circuited to the cluster listener)",
            golden::etp_local(),
        )
    }

    pub(super) fn itp_local() -> Case {
        case(
            "internalTrafficPolicy Local: itp's cluster IP goes to a local listener; itp-none has none here and drops",
            golden::itp_local(),
        )
    }

    pub(super) fn no_endpoints() -> Case {
        case(
            "No usable endpoints: empty and unready reject (cluster IP and node port); itp-remote drops; etp-remote drops outside traffic only",
            golden::empty().and(golden::unready(&[])).and(golden::itp_remote()).and(golden::etp_remote()),
        )
    }

    pub(super) fn topology_hints() -> Case {
        case(
            "Topology: zonal relays to its 2 zone-a endpoints of 3; nodal to node1's; partial (one endpoint unhinted) to both",
            golden::topology_hints(),
        )
    }

    pub(super) fn terminating_fallback() -> Case {
        case(
            "Terminating fallback: term relays to its 2 serving terminating endpoints; term-local's local listener to its terminating local one",
            golden::terminating_fallback(),
        )
    }

    pub(super) fn dual_stack() -> Case {
        case(
            "Dual stack: one table per family; dual has listeners in both, sticky6 only in IPv6",
            golden::dual().and(golden::sticky6()),
        )
    }

    pub(super) fn long_names() -> Case {
        case(
            "63-character namespace and Service names: no object text reaches the table, only the listener list",
            golden::long_names(),
        )
    }
}
