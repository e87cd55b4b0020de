//! Golden tests: representative states rendered to nft text and compared with
//! `tests/golden/<case>.nft`.
//!
//! The states are built as the daemon builds them: testkit Services, EndpointSlices and
//! this node (`node1`, zone `zone-a`) go through a `ChangeTracker` into a `ProxyState`.
//! On a mismatch the test prints a unified diff. `KPROXY_BLESS=1` (what
//! `cargo xtask golden --bless` sets) rewrites the files instead; read the diff in review.
//!
//! `golden_files_load_into_the_kernel` loads every file into a network namespace it
//! creates: a packet test (root, `ip` and `nft`), ignored by a plain `cargo test`, run by
//! `cargo xtask test` (and by `cargo xtask golden` as root).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::{Dataplane, IpFamily};
use kproxy_netfilter::{FakeConntrack, FakeNft};
use kproxy_nftables::render::{render_family, render_text};
use kproxy_nftables::{NftablesConfig, NftablesDataplane, NodePortAddresses};
use kproxy_testkit::ip_plan::{EXTERNAL_IP, LB_IP, NODE_NAME, OTHER_NODE_NAME};
use kproxy_testkit::{EndpointBuilder, service, slice};
use support::{Cluster, Netns, OTHER_ZONE, ZONE, pod_cidr_v4, pod_cidr_v6, require_kernel, unified_diff};

/// A third node, for endpoints that are neither here nor on node2.
const NODE3: &str = "node3";

/// One golden case: what it shows, the dataplane configuration and the state.
struct Case {
    about: &'static str,
    config: NftablesConfig,
    cluster: Cluster,
    families: &'static [IpFamily],
}

fn config() -> NftablesConfig {
    NftablesConfig { cluster_cidrs: vec![pod_cidr_v4(), pod_cidr_v6()], ..NftablesConfig::default() }
}

fn case(about: &'static str, services: &[Service], slices: &[EndpointSlice]) -> Case {
    Case { about, config: config(), cluster: Cluster::with(services, slices), families: &[IpFamily::V4] }
}

fn on(node: &'static str) -> impl FnOnce(EndpointBuilder) -> EndpointBuilder {
    move |e| e.node(node)
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The text of a case: a comment header, then one table per family.
fn render_case(name: &str, case: &Case) -> String {
    let mut text = format!(
        "# kproxy nftables golden file: {name}\n# {}\n# Regenerate with `cargo xtask golden --bless`; review the diff.\n",
        case.about
    );
    for family in case.families {
        text.push_str(&render_text(&render_family(&case.config, &case.cluster.state, *family), &case.config.table));
    }
    text
}

/// Compares `case` with its golden file, or rewrites the file under `KPROXY_BLESS=1`.
fn check(name: &str, case: Case) {
    let actual = render_case(name, &case);
    let path = golden_dir().join(format!("{name}.nft"));
    if std::env::var("KPROXY_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).expect("golden directory");
        std::fs::write(&path, &actual).expect("golden file written");
        println!("blessed {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask golden --bless` to create it", path.display()));
    if expected != actual {
        let diff = unified_diff(&expected, &actual, &format!("{} (golden)", path.display()), "rendered");
        panic!(
            "{name}: rendering differs from the golden file:\n{diff}\nIf the change is intended, run `cargo xtask golden --bless` and review the diff."
        );
    }
}

macro_rules! golden_cases {
    ($($name:ident),* $(,)?) => {
        /// Every case name, to find golden files no case writes any more.
        const CASES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name), cases::$name());
            }
        )*
    };
}

golden_cases!(
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
        let dns = service("kube-system", "dns").cluster_ip("172.30.0.10").udp("dns", 53).tcp("dns-tcp", 53).build();
        let dns_eps = slice("kube-system", "dns", "dns-1")
            .udp("dns", 53)
            .tcp("dns-tcp", 53)
            .endpoint("10.180.0.1", on(NODE_NAME))
            .endpoint("10.180.1.1", on(OTHER_NODE_NAME))
            .build();
        let web = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).tcp("p443", 443).build();
        let web_eps = slice("ns1", "svc1", "svc1-a")
            .tcp("p80", 8080)
            .tcp("p443", 8443)
            .endpoint("10.180.0.2", on(NODE_NAME))
            .endpoint("10.180.1.2", on(OTHER_NODE_NAME))
            .endpoint("10.180.2.2", on(NODE3))
            .build();
        case(
            "ClusterIP: multi-port (p80/p443 share cluster-tcp-3), TCP and UDP on the same port 53",
            &[dns, web],
            &[dns_eps, web_eps],
        )
    }

    pub(super) fn nodeport() -> Case {
        let svc = service("ns2", "np")
            .cluster_ip("172.30.0.42")
            .node_port("p80", 80, 30080)
            .port("dns", 53, "UDP", Some(30053))
            .build();
        let eps = slice("ns2", "np", "np-1")
            .tcp("p80", 8080)
            .udp("dns", 5353)
            .endpoint("10.180.0.3", on(NODE_NAME))
            .endpoint("10.180.1.3", on(OTHER_NODE_NAME))
            .build();
        case("NodePort, TCP and UDP, externalTrafficPolicy Cluster", &[svc], &[eps])
    }

    pub(super) fn loadbalancer_source_ranges() -> Case {
        let svc = service("ns3", "lb")
            .type_("LoadBalancer")
            .cluster_ip("172.30.0.43")
            .port("p80", 80, "TCP", Some(30081))
            .lb_ingress(LB_IP, None)
            .lb_ingress("5.6.7.8", Some("Proxy"))
            .source_ranges(&["203.0.113.0/25", "198.51.100.7/32", "2001:db8:1::/64"])
            .build();
        let eps = slice("ns3", "lb", "lb-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.4", on(NODE_NAME))
            .endpoint("10.180.1.4", on(OTHER_NODE_NAME))
            .build();
        case(
            "LoadBalancer with loadBalancerSourceRanges (the IPv6 range is ignored here; 5.6.7.8 has ipMode Proxy and is not programmed)",
            &[svc],
            &[eps],
        )
    }

    pub(super) fn external_ips() -> Case {
        let svc = service("ns4", "ext")
            .cluster_ip("172.30.0.44")
            .tcp("p80", 80)
            .external_ips(&[EXTERNAL_IP, "192.168.99.12", "fd00:192:168:99::11"])
            .build();
        let eps = slice("ns4", "ext", "ext-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.5", on(NODE_NAME))
            .endpoint("10.180.1.5", on(OTHER_NODE_NAME))
            .build();
        case("externalIPs (the IPv6 one belongs to the other table)", &[svc], &[eps])
    }

    pub(super) fn session_affinity() -> Case {
        let sticky = service("ns5", "sticky")
            .type_("NodePort")
            .cluster_ip("172.30.0.45")
            .port("p80", 80, "TCP", Some(30082))
            .client_ip_affinity(Some(300))
            .build();
        let sticky_eps = slice("ns5", "sticky", "sticky-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.6", on(NODE_NAME))
            .endpoint("10.180.1.6", on(OTHER_NODE_NAME))
            .build();
        let default =
            service("ns5", "sticky-default").cluster_ip("172.30.0.46").udp("dns", 53).client_ip_affinity(None).build();
        let default_eps =
            slice("ns5", "sticky-default", "sd-1").udp("dns", 5353).endpoint("10.180.1.7", on(OTHER_NODE_NAME)).build();
        case(
            "ClientIP session affinity: per-port chains and dynamic sets (timeout 300 s, and the 10800 s default)",
            &[sticky, default],
            &[sticky_eps, default_eps],
        )
    }

    pub(super) fn etp_local() -> Case {
        let local = service("ns6", "local-lb")
            .type_("LoadBalancer")
            .cluster_ip("172.30.0.47")
            .port("p80", 80, "TCP", Some(30083))
            .lb_ingress("1.2.3.5", None)
            .external_traffic_policy("Local")
            .health_check_node_port(32000)
            .build();
        let local_eps = slice("ns6", "local-lb", "local-lb-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.8", on(NODE_NAME))
            .endpoint("10.180.0.9", on(NODE_NAME))
            .endpoint("10.180.1.8", on(OTHER_NODE_NAME))
            .build();
        let remote = service("ns6", "remote-lb")
            .type_("LoadBalancer")
            .cluster_ip("172.30.0.48")
            .port("p80", 80, "TCP", Some(30084))
            .lb_ingress("1.2.3.6", None)
            .external_traffic_policy("Local")
            .health_check_node_port(32001)
            .build();
        let remote_eps = slice("ns6", "remote-lb", "remote-lb-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.9", on(OTHER_NODE_NAME))
            .endpoint("10.180.2.9", on(NODE3))
            .build();
        case(
            "externalTrafficPolicy Local: local-lb has 2 local endpoints of 3; remote-lb has none here (external traffic dropped, pods and the node short-circuited)",
            &[local, remote],
            &[local_eps, remote_eps],
        )
    }

    pub(super) fn itp_local() -> Case {
        let local =
            service("ns7", "itp").cluster_ip("172.30.0.49").tcp("p80", 80).internal_traffic_policy("Local").build();
        let local_eps = slice("ns7", "itp", "itp-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.10", on(NODE_NAME))
            .endpoint("10.180.1.10", on(OTHER_NODE_NAME))
            .build();
        let none = service("ns7", "itp-none")
            .cluster_ip("172.30.0.50")
            .tcp("p80", 80)
            .internal_traffic_policy("Local")
            .build();
        let none_eps = slice("ns7", "itp-none", "itp-none-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.11", on(OTHER_NODE_NAME))
            .build();
        case(
            "internalTrafficPolicy Local: itp uses its local endpoint; itp-none has none here and drops",
            &[local, none],
            &[local_eps, none_eps],
        )
    }

    pub(super) fn no_endpoints() -> Case {
        let empty = service("ns8", "empty").cluster_ip("172.30.0.51").node_port("p80", 80, 30085).build();
        let unready = service("ns8", "unready").cluster_ip("172.30.0.52").tcp("p80", 80).build();
        let unready_eps = slice("ns8", "unready", "unready-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.12", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, false, false))
            .endpoint("10.180.1.13", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, false, true))
            .build();
        let itp = service("ns8", "itp-remote")
            .cluster_ip("172.30.0.53")
            .tcp("p80", 80)
            .internal_traffic_policy("Local")
            .build();
        let itp_eps = slice("ns8", "itp-remote", "itp-remote-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.14", on(OTHER_NODE_NAME))
            .build();
        let etp = service("ns8", "etp-remote")
            .cluster_ip("172.30.0.54")
            .node_port("p80", 80, 30086)
            .external_traffic_policy("Local")
            .build();
        let etp_eps = slice("ns8", "etp-remote", "etp-remote-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.15", on(OTHER_NODE_NAME))
            .build();
        case(
            "No usable endpoints: empty and unready reject (cluster IP and node port); itp-remote drops; etp-remote drops external traffic only",
            &[empty, unready, itp, etp],
            &[unready_eps, itp_eps, etp_eps],
        )
    }

    pub(super) fn topology_hints() -> Case {
        let zonal = service("ns9", "zonal").cluster_ip("172.30.0.55").tcp("p80", 80).build();
        let zonal_eps = slice("ns9", "zonal", "zonal-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.16", |e| e.node(NODE_NAME).zone(ZONE).zone_hints(&[ZONE]))
            .endpoint("10.180.1.16", |e| e.node(OTHER_NODE_NAME).zone(ZONE).zone_hints(&[ZONE]))
            .endpoint("10.180.2.16", |e| e.node(NODE3).zone(OTHER_ZONE).zone_hints(&[OTHER_ZONE]))
            .build();
        let nodal = service("ns9", "nodal").cluster_ip("172.30.0.56").tcp("p80", 80).build();
        let nodal_eps = slice("ns9", "nodal", "nodal-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.17", |e| e.node(NODE_NAME).node_hints(&[NODE_NAME]))
            .endpoint("10.180.1.17", |e| e.node(OTHER_NODE_NAME).node_hints(&[OTHER_NODE_NAME]))
            .build();
        let partial = service("ns9", "partial").cluster_ip("172.30.0.57").tcp("p80", 80).build();
        let partial_eps = slice("ns9", "partial", "partial-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.18", |e| e.node(OTHER_NODE_NAME).zone(ZONE).zone_hints(&[ZONE]))
            .endpoint("10.180.2.18", |e| e.node(NODE3).zone(OTHER_ZONE))
            .build();
        case(
            "Topology: zonal keeps its 2 zone-a endpoints of 3; nodal keeps node1's; partial (one endpoint unhinted) uses both",
            &[zonal, nodal, partial],
            &[zonal_eps, nodal_eps, partial_eps],
        )
    }

    pub(super) fn terminating_fallback() -> Case {
        let term = service("ns10", "term").cluster_ip("172.30.0.58").tcp("p80", 80).build();
        let term_eps = slice("ns10", "term", "term-1")
            .tcp("p80", 8080)
            .endpoint("10.180.1.19", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, true, true))
            .endpoint("10.180.2.19", |e| e.node(NODE3).conditions_rst(false, true, true))
            .endpoint("10.180.2.20", |e| e.node(NODE3).conditions_rst(false, false, true))
            .build();
        let local = service("ns10", "term-local")
            .cluster_ip("172.30.0.59")
            .node_port("p80", 80, 30087)
            .external_traffic_policy("Local")
            .build();
        let local_eps = slice("ns10", "term-local", "term-local-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.21", |e| e.node(NODE_NAME).conditions_rst(false, true, true))
            .endpoint("10.180.1.21", on(OTHER_NODE_NAME))
            .build();
        case(
            "Terminating fallback: term has no ready endpoint and uses its 2 serving terminating ones; term-local's local set falls back to its terminating local endpoint, its cluster set is the ready remote one",
            &[term, local],
            &[term_eps, local_eps],
        )
    }

    pub(super) fn dual_stack() -> Case {
        let dual = service("ns11", "dual")
            .cluster_ips(&["172.30.0.60", "fd00:172:30::60"])
            .node_port("p80", 80, 30088)
            .external_ips(&["192.168.99.13", "fd00:192:168:99::13"])
            .build();
        let v4 = slice("ns11", "dual", "dual-v4")
            .tcp("p80", 8080)
            .endpoint("10.180.0.22", on(NODE_NAME))
            .endpoint("10.180.1.22", on(OTHER_NODE_NAME))
            .build();
        let v6 = slice("ns11", "dual", "dual-v6")
            .address_type("IPv6")
            .tcp("p80", 8080)
            .endpoint("fd00:10::22", on(NODE_NAME))
            .endpoint("fd00:10::1:22", on(OTHER_NODE_NAME))
            .build();
        let sticky6 = service("ns11", "sticky6")
            .cluster_ip("fd00:172:30::61")
            .udp("dns", 53)
            .client_ip_affinity(Some(60))
            .build();
        let sticky6_eps = slice("ns11", "sticky6", "sticky6-1")
            .address_type("IPv6")
            .udp("dns", 5353)
            .endpoint("fd00:10::1:23", on(OTHER_NODE_NAME))
            .build();
        Case {
            families: &[IpFamily::V4, IpFamily::V6],
            ..case(
                "Dual stack: one table per family; dual is in both, sticky6 (affinity, IPv6 endpoint names) only in ip6",
                &[dual, sticky6],
                &[v4, v6, sticky6_eps],
            )
        }
    }

    pub(super) fn masquerade_all() -> Case {
        let masq = service("ns12", "masq").cluster_ip("172.30.0.62").tcp("p80", 80).build();
        let masq_eps = slice("ns12", "masq", "masq-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.24", on(NODE_NAME))
            .endpoint("10.180.1.24", on(OTHER_NODE_NAME))
            .build();
        let local = service("ns12", "masq-local")
            .type_("LoadBalancer")
            .cluster_ip("172.30.0.63")
            .port("p80", 80, "TCP", Some(30089))
            .lb_ingress("1.2.3.7", None)
            .external_traffic_policy("Local")
            .build();
        let local_eps = slice("ns12", "masq-local", "masq-local-1")
            .tcp("p80", 8080)
            .endpoint("10.180.0.25", on(NODE_NAME))
            .endpoint("10.180.1.25", on(OTHER_NODE_NAME))
            .build();
        let mut case =
            case("masqueradeAll: every packet to a cluster IP is marked", &[masq, local], &[masq_eps, local_eps]);
        case.config.masquerade_all = true;
        case
    }

    pub(super) fn nodeport_addresses_cidrs() -> Case {
        let np =
            service("ns13", "np").cluster_ips(&["172.30.0.64", "fd00:172:30::64"]).node_port("p80", 80, 30090).build();
        let v4 = slice("ns13", "np", "np-v4")
            .tcp("p80", 8080)
            .endpoint("10.180.0.26", on(NODE_NAME))
            .endpoint("10.180.1.26", on(OTHER_NODE_NAME))
            .build();
        let v6 = slice("ns13", "np", "np-v6")
            .address_type("IPv6")
            .tcp("p80", 8080)
            .endpoint("fd00:10::26", on(NODE_NAME))
            .build();
        let mut case = Case {
            families: &[IpFamily::V4, IpFamily::V6],
            ..case(
                "nodePortAddresses 192.168.0.0/24 (IPv4 only): node ports on local addresses in it; the ip6 table accepts none",
                &[np],
                &[v4, v6],
            )
        };
        case.config.nodeport_addresses = NodePortAddresses::Cidrs(vec!["192.168.0.0/24".parse().expect("CIDR")]);
        case
    }

    pub(super) fn long_names() -> Case {
        let namespace = "a-namespace-with-a-rather-long-name-0123456789-0123456789-abcde";
        let name = "a-service-with-a-rather-long-name-as-generated-names-get-012345";
        let svc = service(namespace, name)
            .type_("LoadBalancer")
            .cluster_ip("172.30.0.65")
            .port("long-port-name1", 80, "TCP", Some(30091))
            .lb_ingress("1.2.3.8", None)
            .external_traffic_policy("Local")
            .client_ip_affinity(None)
            .build();
        let eps = slice(namespace, name, "long-1")
            .port("long-port-name1", 8080, "TCP")
            .endpoint("10.180.0.27", on(NODE_NAME))
            .endpoint("10.180.1.27", on(OTHER_NODE_NAME))
            .build();
        case(
            "63-character namespace and Service names, affinity and externalTrafficPolicy Local: chain names beyond nft's 255 characters are cut and hashed",
            &[svc],
            &[eps],
        )
    }
}

/// Every golden file belongs to a case.
#[test]
fn no_stale_golden_files() {
    let Ok(dir) = std::fs::read_dir(golden_dir()) else {
        return;
    };
    let stale: Vec<String> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|f| !CASES.iter().any(|c| format!("{c}.nft") == *f))
        .collect();
    assert!(stale.is_empty(), "golden files without a case: {stale:?}");
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
    let text = render_case("dual_stack", &case);
    let body: String = text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect();
    assert_eq!(dataplane.render(&case.cluster.state), body);
}

/// Every golden file is valid nft that the kernel accepts: loaded for real into a
/// namespace created for the purpose, then removed with it.
#[test]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
fn golden_files_load_into_the_kernel() {
    assert!(
        std::env::var("KPROXY_BLESS").ok().as_deref() != Some("1"),
        "KPROXY_BLESS=1 rewrites the golden files: load them in a comparing run"
    );
    require_kernel();
    let netns = Netns::create("golden").expect("a network namespace");
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "nft"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden files; run `cargo xtask golden --bless`");
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

#[test]
fn mismatches_print_a_unified_diff() {
    let expected = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
    let actual = "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n";
    assert_eq!(
        unified_diff(expected, actual, "golden", "rendered"),
        "--- golden\n+++ rendered\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
    );
    assert_eq!(unified_diff(expected, expected, "golden", "rendered"), "--- golden\n+++ rendered\n");
}
