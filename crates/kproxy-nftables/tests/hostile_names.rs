//! Rendering never trusts text. Service ports whose namespace, name and port name carry
//! quotes, newlines, semicolons, braces, non-ASCII or hundreds of characters are put
//! straight into a `ProxyState` (conversion's validation would refuse them, and must not be
//! what keeps the rules sound), with ClusterIP, NodePort, external IP, load balancer with
//! source ranges, ClientIP affinity and Local traffic policies, plus endpoints. The
//! nftables dataplane's scripts, the userspace redirect table and the `iptables-restore`
//! input of the iptables dataplane are then checked:
//!
//! - every line is one of the statements the renderer writes (nothing like `-A INPUT`);
//! - the real tools accept them (`nft -c -f`, `iptables-restore --test`, legacy and nft
//!   backends where installed) and, once loaded, the kernel holds exactly the chains,
//!   rules and elements the model asks for, and nothing else.
//!
//! Each case runs in a network namespace of its own (`kpq-…`), removed afterwards, also
//! when the case fails. Needs root, `ip`, `nft` and an `iptables-*-restore`: without them
//! the test fails and says why (run it as root, as `cargo xtask test` does).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::Command;
use std::sync::Arc;

use kproxy_core::{
    Changes, Dataplane, Endpoint, IpFamily, NamespacedName, Protocol, ProxyState, ServicePort, ServicePortName,
    SessionAffinity, categorize_endpoints,
};
use kproxy_iptables::IptablesConfig;
use kproxy_netfilter::{FakeConntrack, FakeNft, nft_comment};
use kproxy_nftables::render::{TableRender, render_family, render_text};
use kproxy_nftables::{NftablesConfig, NftablesDataplane};
use kproxy_testkit::prereq::{Tool, require};
use kproxy_userspace::UserspaceConfig;
use kproxy_userspace::render::{plan, rules};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use support::{Netns, normalize_listing};

/// Proptest cases: each one creates a namespace and runs the tools some twenty times.
const CASES: u32 = 48;

/// This node's name and zone: text from objects too.
const NODE: &str = "node\"1\n-A INPUT -j ACCEPT";
const ZONE: &str = "zone; } a";
const OTHER_NODE: &str = "node 2";

/// One service port of a case: the three texts of its name and its shape.
#[derive(Debug, Clone)]
struct PortSpec {
    namespace: String,
    name: String,
    port: String,
    udp: bool,
    affinity: bool,
    internal_local: bool,
    external_local: bool,
    source_ranges: bool,
    /// Endpoints on other nodes (one more is on this node).
    remote_endpoints: u8,
}

/// A port as the case builds it.
struct Placed {
    spec: PortSpec,
    name: ServicePortName,
    port: ServicePort,
    endpoints: Vec<Endpoint>,
}

fn fragment() -> impl Strategy<Value = String> {
    let hostile = vec![
        "\"",
        "'",
        "\\",
        "\n",
        "\r",
        "\t",
        ";",
        "{",
        "}",
        " ",
        "#",
        "/",
        ":",
        "_",
        "-",
        ".",
        "@",
        "$",
        "*",
        "\0",
        "é",
        "☃",
        "\u{202e}",
        "\u{85}",
        "tcp",
        "accept",
        " -j ACCEPT\n-A INPUT -s 198.18.0.3/32 -j ACCEPT\n",
        "\"; add rule ip filter input accept; \"",
        "}\n\tchain input { type filter hook input priority 0; policy accept; }\n",
        "COMMIT\n*filter\n-A INPUT -j ACCEPT\n",
    ];
    prop_oneof![select(hostile).prop_map(str::to_owned), "[a-z0-9-]{1,12}", any::<char>().prop_map(String::from)]
}

/// A namespace, Service or port name: ordinary, hostile, long or empty.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9-]{0,14}",
        5 => vec(fragment(), 1..6).prop_map(|parts| parts.concat()),
        1 => Just("n".repeat(253)),
        1 => "[a-z]{300}",
        1 => Just(String::new()),
    ]
}

fn port_spec() -> impl Strategy<Value = PortSpec> {
    (text(), text(), text(), any::<[bool; 6]>(), 1..=2u8).prop_map(|(namespace, name, port, flags, remote)| {
        let [udp, affinity, internal_local, external_local, source_ranges, _] = flags;
        PortSpec {
            namespace,
            name,
            port,
            udp,
            affinity,
            internal_local,
            external_local,
            source_ranges,
            remote_endpoints: remote,
        }
    })
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP")
}

/// The state of a case, built directly; ports whose name repeats an earlier one are dropped.
fn build(specs: &[PortSpec]) -> (ProxyState, Vec<Placed>) {
    let mut state = ProxyState::new(NODE);
    state.node.addresses = vec![ip("192.168.0.2")];
    state.node.labels.insert("topology.kubernetes.io/zone".to_owned(), ZONE.to_owned());
    let mut placed: Vec<Placed> = Vec::new();
    for spec in specs {
        let protocol = if spec.udp { Protocol::Udp } else { Protocol::Tcp };
        let name = ServicePortName::new(NamespacedName::new(&spec.namespace, &spec.name), &spec.port, protocol);
        if placed.iter().any(|p| p.name == name) {
            continue;
        }
        let i = u8::try_from(placed.len() + 1).expect("few ports");
        let mut port = ServicePort::new(ip(&format!("172.30.0.{i}")), 80, protocol);
        port.node_port = Some(30000 + u16::from(i));
        port.external_ips = vec![ip(&format!("192.168.99.{i}"))];
        port.load_balancer_vips = vec![ip(&format!("1.2.3.{i}"))];
        if spec.source_ranges {
            port.load_balancer_source_ranges =
                vec!["203.0.113.0/25".parse().expect("CIDR"), "192.168.0.0/24".parse().expect("CIDR")];
        }
        if spec.affinity {
            port.session_affinity = SessionAffinity::ClientIp { timeout_seconds: 60 };
        }
        port.internal_policy_local = spec.internal_local;
        port.external_policy_local = spec.external_local;
        if spec.external_local {
            port.health_check_node_port = Some(32000 + u16::from(i));
        }
        let on = |node: &str, ip_text: String, local: bool| Endpoint {
            is_local: local,
            node_name: Some(node.into()),
            zone: Some(ZONE.into()),
            ..Endpoint::new(ip(&ip_text), 8080)
        };
        let mut endpoints = vec![on(NODE, format!("10.180.0.{i}"), true)];
        endpoints.extend((1..=spec.remote_endpoints).map(|j| on(OTHER_NODE, format!("10.180.{j}.{i}"), false)));
        let family = state.family_mut(IpFamily::V4);
        family.services.insert(name.clone(), port.clone());
        family.endpoints.insert(name.clone(), endpoints.clone());
        placed.push(Placed { spec: spec.clone(), name, port, endpoints });
    }
    (state, placed)
}

/// What the model asks of every dataplane, counted from the ports' shapes.
struct Expected {
    ports: usize,
    source_ranges: usize,
    /// nftables: one affinity chain per endpoint set an affinity port uses.
    affinity_chains: usize,
    /// nftables: one dynamic set per endpoint of those sets.
    affinity_sets: usize,
    /// iptables: `KUBE-SVC`, `KUBE-SVL`, `KUBE-SEP` chains.
    svc_chains: usize,
    svl_chains: usize,
    sep_chains: usize,
}

fn expected(state: &ProxyState, placed: &[Placed]) -> Expected {
    let mut e = Expected {
        ports: placed.len(),
        source_ranges: placed.iter().filter(|p| p.spec.source_ranges).count(),
        affinity_chains: 0,
        affinity_sets: 0,
        svc_chains: placed.iter().filter(|p| p.port.uses_cluster_endpoints()).count(),
        svl_chains: placed.iter().filter(|p| p.port.uses_local_endpoints()).count(),
        sep_chains: 0,
    };
    for p in placed {
        let sets = categorize_endpoints(&p.endpoints, &p.port, state.topology_node());
        e.sep_chains += sets.all_reachable.len();
        if p.spec.affinity {
            let kinds: BTreeSet<bool> = [p.spec.internal_local, p.spec.external_local].into();
            e.affinity_chains += kinds.len();
            e.affinity_sets +=
                kinds.iter().map(|local| if *local { sets.local.len() } else { sets.cluster.len() }).sum::<usize>();
        }
    }
    e
}

/// The output of `program ARGS` (with `input`) in `netns`, which must succeed.
fn run_ok(netns: &Netns, program: &str, args: &[&str], input: &str) -> String {
    let output = netns.run(program, args, input);
    assert!(
        output.status.success(),
        "{program} {} refused the input: {}\n--- input ---\n{input}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A listed table: rules (hook lines included) per chain, elements per set or map.
#[derive(Debug, Default)]
struct Listing {
    chains: BTreeMap<String, usize>,
    elements: BTreeMap<String, usize>,
}

fn listing(text: &str) -> Listing {
    let mut out = Listing::default();
    for block in normalize_listing(text) {
        let mut lines = block.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        let (kind, name) = (header[0], header[1].to_owned());
        let rest: Vec<&str> = lines.collect();
        let elements = rest.last().and_then(|l| l.trim().strip_prefix("elements:")).unwrap_or_default();
        let count = elements.split(", ").filter(|e| !e.trim().is_empty()).count();
        let body = rest[..rest.len().saturating_sub(1)].iter().filter(|l| !l.trim().is_empty()).count();
        match kind {
            "chain" => out.chains.insert(name, body),
            _ => out.elements.insert(name, count),
        };
    }
    out
}

/// Every line of an nft command script addresses our table with a command we write.
fn assert_nft_commands(script: &str, table: &str) {
    const COMMANDS: [&str; 15] = [
        "add table",
        "add counter",
        "add set",
        "add map",
        "add chain",
        "add rule",
        "add element",
        "flush table",
        "flush set",
        "flush map",
        "flush chain",
        "delete table",
        "delete chain",
        "delete set",
        "delete element",
    ];
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(words.len() >= 4, "short nft line: {line:?}");
        assert!(COMMANDS.contains(&format!("{} {}", words[0], words[1]).as_str()), "unknown nft command: {line:?}");
        assert_eq!(format!("{} {}", words[2], words[3]), table, "a command outside our table: {line:?}");
    }
}

/// The nftables dataplane: its full-sync scripts and its text pass `nft -c`; loaded, the
/// table holds the chains and rules rendered and the elements the model asks for.
fn check_nftables(netns: &Netns, state: &ProxyState, want: &Expected) {
    let config = NftablesConfig { cluster_cidrs: vec!["10.0.0.0/8".parse().expect("CIDR")], ..Default::default() };
    let nft = Arc::new(FakeNft::default());
    let mut dataplane =
        NftablesDataplane::with_runners(config.clone(), nft.clone(), Arc::new(FakeConntrack::default()));
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    runtime.block_on(dataplane.sync(state, &Changes::full_sync())).expect("sync with a fake nft");
    let scripts = nft.scripts();
    assert_eq!(scripts.len(), 2, "one full script per family");
    let render = render_family(&config, state, IpFamily::V4);
    run_ok(netns, "nft", &["-c", "-f", "-"], &render_text(&render, &config.table));
    for (script, family) in scripts.iter().zip(["ip", "ip6"]) {
        assert_nft_commands(script, &format!("{family} {}", config.table));
        run_ok(netns, "nft", &["-c", "-f", "-"], script);
        run_ok(netns, "nft", &["-f", "-"], script);
    }
    let tables = run_ok(netns, "nft", &["list", "tables"], "");
    assert_eq!(tables.lines().collect::<Vec<_>>(), ["table ip kproxy", "table ip6 kproxy"]);
    let loaded = listing(&run_ok(netns, "nft", &["list", "table", "ip", &config.table], ""));
    assert_eq!(loaded.chains, rendered_chains(&render), "chains and rule counts in the kernel");
    assert_eq!(loaded.elements["service-ips"], 3 * want.ports, "cluster, external and load-balancer IP of each port");
    assert_eq!(loaded.elements["service-nodeports"], want.ports);
    assert_eq!(loaded.elements["firewall-protected"], want.source_ranges);
    let affinity_chains = loaded.chains.keys().filter(|c| c.starts_with("affinity-")).count();
    assert_eq!(affinity_chains, want.affinity_chains);
    let affinity_sets = loaded.elements.keys().filter(|s| s.starts_with("affinity-")).count();
    assert_eq!(affinity_sets, want.affinity_sets);
}

/// Rules per chain of a render, as the kernel lists them (a base chain's hook line too).
fn rendered_chains(render: &TableRender) -> BTreeMap<String, usize> {
    let statics = render
        .statics
        .chains
        .iter()
        .map(|c| (c.chain.name.clone(), c.chain.rules.len() + 1 - usize::from(c.hook.is_none())));
    let ports = render.ports.values().flat_map(|p| &p.chains).map(|c| (c.name.clone(), c.rules.len()));
    statics.chain(ports).collect()
}

/// `nft_comment` of every text is one string nft accepts.
fn check_nft_comments(netns: &Netns, placed: &[Placed]) {
    let mut script = "add table ip kpq-comments\nadd chain ip kpq-comments c\n".to_owned();
    for p in placed {
        for text in [&p.spec.namespace, &p.spec.name, &p.spec.port, &p.name.to_string()] {
            script.push_str(&format!("add rule ip kpq-comments c counter comment {}\n", nft_comment(text)));
        }
    }
    assert_nft_commands(&script, "ip kpq-comments");
    run_ok(netns, "nft", &["-c", "-f", "-"], &script);
}

/// The userspace redirect table: its full script passes `nft -c` and, loaded, holds the
/// elements the model asks for.
fn check_userspace(netns: &Netns, state: &ProxyState, want: &Expected) {
    let config = UserspaceConfig { cluster_cidrs: vec!["10.0.0.0/8".parse().expect("CIDR")], ..Default::default() };
    let plan = plan::plan(&config, state);
    let ports: BTreeMap<_, u16> = plan.listeners.keys().cloned().zip(40000..).collect();
    let table = rules::render(&config.table, &plan.families[0], &ports);
    let script = rules::full_script(&table);
    let head = format!("ip {}", config.table);
    let mut inside = false;
    for line in script.lines() {
        match line {
            l if l == format!("table {head} {{") => inside = true,
            "}" if inside => inside = false,
            _ if inside => {}
            l => assert!(
                [format!("table {head} {{}}"), format!("delete table {head}")].contains(&l.to_owned())
                    || l.starts_with(&format!("add element {head} ")),
                "unexpected line in the userspace script: {l:?}"
            ),
        }
    }
    run_ok(netns, "nft", &["-c", "-f", "-"], &script);
    run_ok(netns, "nft", &["-f", "-"], &script);
    let loaded = listing(&run_ok(netns, "nft", &["list", "table", "ip", &config.table], ""));
    assert_eq!(loaded.elements["service-ips"], 3 * want.ports);
    assert_eq!(loaded.elements["service-nodeports"], want.ports);
    assert_eq!(loaded.elements["firewall"], want.source_ranges);
}

/// Every line of restore text is a table, a chain of ours, a rule in a chain of ours, a
/// jump from a built-in chain into ours, or `COMMIT`.
fn assert_restore_lines(text: &str) {
    for line in text.lines() {
        let ok = line.starts_with('*')
            || line.starts_with(":KUBE-")
            || line.starts_with("-A KUBE-")
            || line == "COMMIT"
            || (line.starts_with("-I ") && line.contains(" -j KUBE-"));
        assert!(ok, "unexpected restore line: {line:?}");
    }
}

/// The lines of `table` in an `iptables-save` or restore text.
fn section<'a>(text: &'a str, table: &str) -> Vec<&'a str> {
    let start = format!("*{table}");
    text.lines().skip_while(|l| *l != start).skip(1).take_while(|l| *l != "COMMIT").collect()
}

fn count(lines: &[&str], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

/// The iptables dataplane's restore text: accepted by each installed backend and, loaded,
/// every rule it wrote and nothing else, with the chains the model asks for.
fn check_iptables(netns: &Netns, state: &ProxyState, want: &Expected, backends: &[&str]) {
    let config = IptablesConfig {
        cluster_cidrs: vec!["10.0.0.0/8".parse().expect("CIDR")],
        families: vec![IpFamily::V4],
        ..Default::default()
    };
    let text =
        kproxy_iptables::render::render_text(&kproxy_iptables::render::render_family(&config, state, IpFamily::V4));
    assert_restore_lines(&text);
    for backend in backends {
        run_ok(netns, &format!("iptables-{backend}-restore"), &["--test"], &text);
        run_ok(netns, &format!("iptables-{backend}-restore"), &["--noflush"], &text);
        let saved = run_ok(netns, &format!("iptables-{backend}-save"), &[], "");
        for table in ["filter", "nat"] {
            let (wrote, holds) = (section(&text, table), section(&saved, table));
            let rules = count(&wrote, "-A ") + count(&wrote, "-I ");
            assert_eq!(count(&holds, "-A "), rules, "{backend} {table}: rules loaded");
            for rule in holds.iter().filter(|l| l.starts_with("-A ") && !l.starts_with("-A KUBE-")) {
                assert!(rule.contains(" -j KUBE-"), "{backend} {table}: a rule not ours: {rule}");
            }
        }
        let nat = section(&saved, "nat");
        assert_eq!(count(&nat, ":KUBE-SVC-"), want.svc_chains, "{backend}: KUBE-SVC chains");
        assert_eq!(count(&nat, ":KUBE-SVL-"), want.svl_chains, "{backend}: KUBE-SVL chains");
        assert_eq!(count(&nat, ":KUBE-EXT-"), want.ports, "{backend}: KUBE-EXT chains");
        assert_eq!(count(&nat, ":KUBE-FW-"), want.source_ranges, "{backend}: KUBE-FW chains");
        assert_eq!(count(&nat, ":KUBE-SEP-"), want.sep_chains, "{backend}: KUBE-SEP chains");
    }
}

/// The iptables backends installed here (`legacy`, `nft`).
fn iptables_backends() -> Vec<&'static str> {
    ["legacy", "nft"]
        .into_iter()
        .filter(|b| {
            let found = Command::new("sh").args(["-c", &format!("command -v iptables-{b}-restore")]).output();
            found.is_ok_and(|o| o.status.success())
        })
        .collect()
}

fn check_case(specs: &[PortSpec], backends: &[&str]) {
    let (state, placed) = build(specs);
    let want = expected(&state, &placed);
    let netns = Netns::create("kpq", "names").expect("a network namespace");
    check_nftables(&netns, &state, &want);
    check_nft_comments(&netns, &placed);
    check_userspace(&netns, &state, &want);
    check_iptables(&netns, &state, &want, backends);
}

#[test]
#[ignore = "packet test: needs root, ip, nft and iptables; run by cargo xtask test"]
fn hostile_names_render_to_rules_the_tools_accept_and_nothing_else() {
    require(&[Tool::Ip, Tool::Nft, Tool::IptablesLegacy, Tool::IptablesNft]);
    let backends = iptables_backends();
    assert!(!backends.is_empty(), "neither iptables-legacy-restore nor iptables-nft-restore is installed");
    let config = ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(specs in vec(port_spec(), 1..=4))| {
        check_case(&specs, &backends);
    });
}
