//! Golden tests: representative states rendered to `iptables-restore` text (what a full
//! sync into empty tables writes) and compared with `tests/golden/<case>.iptables`.
//!
//! States are built as the daemon builds them: testkit Services, EndpointSlices and this
//! node (`node1`, zone `zone-a`, 192.168.0.2) through a `ChangeTracker`. `KPROXY_BLESS=1`
//! (what `cargo xtask golden --bless` sets) rewrites the files instead; review the diff.
//!
//! `golden_files_load_into_the_kernel` restores every file with iptables-legacy and
//! iptables-nft into network namespaces it creates: a packet test (root, `ip`, iptables),
//! ignored by a plain `cargo test`, run by `cargo xtask test` (and `cargo xtask golden` as
//! root).

mod support;

use std::sync::Arc;

use kproxy_conformance::OfflineNode;
use kproxy_core::{Dataplane, IpFamily};
use kproxy_iptables::{IptablesConfig, IptablesDataplane, NodePortAddresses};
use kproxy_netfilter::{FakeConntrack, FakeIptables};
use kproxy_testkit::golden::{self, GoldenFiles, Objects};
use kproxy_testkit::golden_tests;
use kproxy_testkit::prereq::{Tool, require};
use support::{netns, pod_cidrs};

const FILES: GoldenFiles =
    GoldenFiles { crate_dir: env!("CARGO_MANIFEST_DIR"), mode: "iptables", extension: "iptables" };

/// One golden case: what it shows, the configuration and the state.
struct Case {
    about: &'static str,
    config: IptablesConfig,
    node: OfflineNode,
}

fn case(about: &'static str, objects: Objects) -> Case {
    let config =
        IptablesConfig { cluster_cidrs: pod_cidrs(), families: vec![IpFamily::V4], ..IptablesConfig::default() };
    Case { about, config, node: OfflineNode::with(&golden::node(), &objects.services, &objects.slices) }
}

/// What `kproxy render` prints for a case, from a dataplane on fake runners.
fn render(case: &Case) -> String {
    let fake = || Arc::new(FakeIptables::default());
    let dataplane =
        IptablesDataplane::with_runners(case.config.clone(), fake(), fake(), Arc::new(FakeConntrack::default()));
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
    dual_stack,
    masquerade_all,
    nodeport_addresses_cidrs,
);

mod cases {
    use super::*;

    pub(super) fn clusterip() -> Case {
        case(
            "ClusterIP: multi-port with 3 endpoints (probabilities 1/3, 1/2), TCP and UDP on port 53",
            golden::clusterip(),
        )
    }

    pub(super) fn nodeport() -> Case {
        case("NodePort, TCP and UDP, externalTrafficPolicy Cluster", golden::nodeport())
    }

    pub(super) fn loadbalancer_source_ranges() -> Case {
        case(
            "LoadBalancer with loadBalancerSourceRanges: KUBE-FW admits the ranges and, as the node's 192.168.0.2 is in one, the LB IP itself; KUBE-PROXY-FIREWALL drops the rest (5.6.7.8 has ipMode Proxy and is not programmed)",
            golden::loadbalancer_source_ranges(&["203.0.113.0/25", "192.168.0.0/24", "2001:db8:1::/64"]),
        )
    }

    pub(super) fn external_ips() -> Case {
        case("externalIPs (the IPv6 one belongs to ip6tables)", golden::external_ips())
    }

    pub(super) fn session_affinity() -> Case {
        case(
            "ClientIP session affinity: -m recent --rcheck per endpoint before the random rules, --set in KUBE-SEP (300 s, and the 10800 s default)",
            golden::session_affinity(),
        )
    }

    pub(super) fn etp_local() -> Case {
        case(
            "externalTrafficPolicy Local: local-lb has KUBE-SVL with its 2 local endpoints of 3; remote-lb has none here (external traffic dropped in KUBE-EXTERNAL-SERVICES, pods and the node short-circuited to KUBE-SVC)",
            golden::etp_local(),
        )
    }

    pub(super) fn itp_local() -> Case {
        case(
            "internalTrafficPolicy Local: itp jumps to KUBE-SVL with its local endpoint; itp-none has none here and drops in filter KUBE-SERVICES",
            golden::itp_local(),
        )
    }

    pub(super) fn no_endpoints() -> Case {
        case(
            "No usable endpoints: empty and unready REJECT (cluster IP, external IP, node port); etp-remote DROPs external traffic only",
            golden::empty().and(golden::unready(&["192.168.99.13"])).and(golden::etp_remote()),
        )
    }

    pub(super) fn dual_stack() -> Case {
        let mut case = case(
            "Dual stack: iptables and ip6tables; IPv6 DNATs to [addr]:port, excludes ::1 from node ports and has no KUBE-FIREWALL",
            golden::dual(),
        );
        case.config.families = IpFamily::ALL.to_vec();
        case
    }

    pub(super) fn masquerade_all() -> Case {
        let mut case =
            case("masqueradeAll: the first rule of KUBE-SVC marks every packet to the cluster IP", golden::masq());
        case.config.masquerade_all = true;
        case
    }

    pub(super) fn nodeport_addresses_cidrs() -> Case {
        let mut case = case(
            "nodePortAddresses 192.168.0.0/24 and 127.0.0.0/8: one KUBE-NODEPORTS jump per CIDR (local addresses only), localhost node ports on",
            golden::nodeport_v4(),
        );
        let cidrs = ["192.168.0.0/24", "127.0.0.0/8"].map(|c| c.parse().expect("CIDR"));
        case.config.nodeport_addresses = NodePortAddresses::Cidrs(cidrs.to_vec());
        case
    }
}

/// Splits a golden file into its per-family restore texts (`# IPv4: …` headers).
fn per_family(text: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with("# IPv4:") {
            out.push(("iptables", String::new()));
        } else if line.starts_with("# IPv6:") {
            out.push(("ip6tables", String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// Every golden file is restore text both iptables flavours accept: restored for real into
/// namespaces created for the purpose, then removed with them.
#[test]
#[ignore = "packet test: needs root, ip and iptables; run by cargo xtask test"]
fn golden_files_load_into_the_kernel() {
    let files = FILES.to_load();
    require(&[Tool::Ip, Tool::IptablesLegacy, Tool::IptablesNft]);
    let mut failures = Vec::new();
    for backend in ["legacy", "nft"] {
        for file in &files {
            let text = std::fs::read_to_string(file).expect("golden file");
            let netns = netns(&format!("golden-{backend}"));
            for (prefix, body) in per_family(&text) {
                let output = netns.run(&format!("{prefix}-{backend}-restore"), &["--noflush", "-w", "30"], &body);
                if !output.status.success() {
                    failures.push(format!(
                        "{} ({prefix}-{backend}): {}",
                        file.display(),
                        String::from_utf8_lossy(&output.stderr)
                    ));
                    continue;
                }
                let saved = netns.run_ok(&format!("{prefix}-{backend}-save"), &["-t", "nat"], "");
                assert!(saved.contains(":KUBE-SERVICES"), "{}: nothing loaded", file.display());
            }
        }
    }
    assert!(failures.is_empty(), "iptables-restore refused golden files:\n{}", failures.join("\n"));
    println!("restored {} golden files with iptables-legacy and iptables-nft", files.len());
}

/// `Dataplane::render` (what `kproxy render` prints) of IPv4 and IPv6 together.
#[test]
fn render_prints_one_restore_text_per_family() {
    let text = render(&cases::dual_stack());
    assert_eq!(per_family(&text).iter().map(|(tool, _)| *tool).collect::<Vec<_>>(), ["iptables", "ip6tables"]);
}
