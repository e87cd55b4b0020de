//! Golden tests: representative states rendered to nft text and compared with
//! `tests/golden/<case>.nft`.
//!
//! The states are built as the daemon builds them: testkit Services, EndpointSlices, the
//! ServiceCIDR and this node (`node1`, zone `zone-a`) go through a `ChangeTracker` into a
//! `ProxyState`.
//! On a mismatch the test prints a unified diff. `KPROXY_BLESS=1` (what
//! `cargo xtask golden --bless` sets) rewrites the files instead; read the diff in review.
//!
//! `golden_files_load_into_the_kernel` loads every file into a network namespace it
//! creates: a packet test (root, `ip` and `nft`), ignored by a plain `cargo test`, run by
//! `cargo xtask test` (and by `cargo xtask golden` as root).

mod support;

use std::sync::Arc;

use kproxy_conformance::OfflineNode;
use kproxy_core::{Dataplane, IpFamily};
use kproxy_netfilter::{FakeConntrack, FakeNft};
use kproxy_nftables::render::{render_family, render_text};
use kproxy_nftables::{NftablesConfig, NftablesDataplane, NodePortAddresses};
use kproxy_testkit::golden::{self, GoldenFiles, Objects};
use kproxy_testkit::golden_tests;
use support::{netns, pod_cidrs, require_kernel};

const FILES: GoldenFiles = GoldenFiles { crate_dir: env!("CARGO_MANIFEST_DIR"), mode: "nftables", extension: "nft" };

/// One golden case: what it shows, the dataplane configuration and the state.
struct Case {
    about: &'static str,
    config: NftablesConfig,
    node: OfflineNode,
    families: &'static [IpFamily],
}

/// A case of `objects` in a cluster with the ServiceCIDR [`golden::service_cidr`].
fn case(about: &'static str, objects: Objects) -> Case {
    let config = NftablesConfig { cluster_cidrs: pod_cidrs(), ..NftablesConfig::default() };
    let mut node = OfflineNode::with(&golden::node(), &objects.services, &objects.slices);
    node.apply_service_cidr(&golden::service_cidr());
    node.checkout();
    Case { about, config, node, families: &[IpFamily::V4] }
}

/// The tables of a case, one per family.
fn render(case: &Case) -> String {
    let table = &case.config.table;
    case.families.iter().map(|f| render_text(&render_family(&case.config, &case.node.state, *f), table)).collect()
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
    masquerade_all,
    nodeport_addresses_cidrs,
    long_names,
);

mod cases {
    use super::*;

    pub(super) fn clusterip() -> Case {
        case(
            "ClusterIP: multi-port (p80/p443 share cluster-tcp-3), TCP and UDP on the same port 53",
            golden::clusterip(),
        )
    }

    pub(super) fn nodeport() -> Case {
        case("NodePort, TCP and UDP, externalTrafficPolicy Cluster", golden::nodeport())
    }

    pub(super) fn loadbalancer_source_ranges() -> Case {
        case(
            "LoadBalancer with loadBalancerSourceRanges (the IPv6 range is ignored here; 5.6.7.8 has ipMode Proxy and is not programmed)",
            golden::loadbalancer_source_ranges(&["203.0.113.0/25", "198.51.100.7/32", "2001:db8:1::/64"]),
        )
    }

    pub(super) fn external_ips() -> Case {
        case("externalIPs (the IPv6 one belongs to the other table)", golden::external_ips())
    }

    pub(super) fn session_affinity() -> Case {
        case(
            "ClientIP session affinity: per-port chains and dynamic sets (timeout 300 s, and the 10800 s default)",
            golden::session_affinity(),
        )
    }

    pub(super) fn etp_local() -> Case {
        case(
            "externalTrafficPolicy Local: local-lb has 2 local endpoints of 3; remote-lb has none here (external traffic dropped, pods and the node short-circuited)",
            golden::etp_local(),
        )
    }

    pub(super) fn itp_local() -> Case {
        case(
            "internalTrafficPolicy Local: itp uses its local endpoint; itp-none has none here and drops",
            golden::itp_local(),
        )
    }

    pub(super) fn no_endpoints() -> Case {
        case(
            "No usable endpoints: empty and unready reject (cluster IP and node port); itp-remote drops; etp-remote drops external traffic only",
            golden::empty().and(golden::unready(&[])).and(golden::itp_remote()).and(golden::etp_remote()),
        )
    }

    pub(super) fn topology_hints() -> Case {
        case(
            "Topology: zonal keeps its 2 zone-a endpoints of 3; nodal keeps node1's; partial (one endpoint unhinted) uses both",
            golden::topology_hints(),
        )
    }

    pub(super) fn terminating_fallback() -> Case {
        case(
            "Terminating fallback: term has no ready endpoint and uses its 2 serving terminating ones; term-local's local set falls back to its terminating local endpoint, its cluster set is the ready remote one",
            golden::terminating_fallback(),
        )
    }

    pub(super) fn dual_stack() -> Case {
        Case {
            families: &[IpFamily::V4, IpFamily::V6],
            ..case(
                "Dual stack: one table per family; dual is in both, sticky6 (affinity, IPv6 endpoint names) only in ip6",
                golden::dual().and(golden::sticky6()),
            )
        }
    }

    pub(super) fn masquerade_all() -> Case {
        let mut case =
            case("masqueradeAll: every packet to a cluster IP is marked", golden::masq().and(golden::masq_local()));
        case.config.masquerade_all = true;
        case
    }

    pub(super) fn nodeport_addresses_cidrs() -> Case {
        let mut case = Case {
            families: &[IpFamily::V4, IpFamily::V6],
            ..case(
                "nodePortAddresses 192.168.0.0/24 (IPv4 only): node ports on local addresses in it; the ip6 table accepts none",
                golden::nodeport_dual(),
            )
        };
        case.config.nodeport_addresses = NodePortAddresses::Cidrs(vec!["192.168.0.0/24".parse().expect("CIDR")]);
        case
    }

    pub(super) fn long_names() -> Case {
        case(
            "63-character namespace and Service names, affinity and externalTrafficPolicy Local: chain names beyond nft's 255 characters are cut and hashed",
            golden::long_names(),
        )
    }
}

/// `Dataplane::render` (what `kproxy render` prints) is the tables of both families.
#[test]
fn dataplane_render_is_both_tables() {
    let case = cases::dual_stack();
    let dataplane = NftablesDataplane::with_runners(
        case.config.clone(),
        Arc::new(FakeNft::default()),
        Arc::new(FakeConntrack::default()),
    );
    assert_eq!(dataplane.render(&case.node.state), render(&case));
}

/// Every golden file is valid nft that the kernel accepts: loaded for real into a
/// namespace created for the purpose, then removed with it.
#[test]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
fn golden_files_load_into_the_kernel() {
    let files = FILES.to_load();
    require_kernel();
    let netns = netns("golden");
    let mut failures = Vec::new();
    for file in &files {
        let path = file.to_str().expect("UTF-8 path");
        netns.nft_ok(&["flush", "ruleset"], "");
        let output = netns.nft(&["-f", path], "");
        if !output.status.success() {
            failures.push(format!("{path}:\n{}", String::from_utf8_lossy(&output.stderr)));
            continue;
        }
        let listing = netns.nft_ok(&["list", "ruleset"], "");
        assert!(listing.contains("table ip kproxy"), "{path}: nothing loaded");
    }
    assert!(failures.is_empty(), "nft refused golden files:\n{}", failures.join("\n"));
    println!("loaded {} golden files into {}", files.len(), netns.name);
}
