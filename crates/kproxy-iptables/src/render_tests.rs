use std::net::IpAddr;

use kproxy_core::{Endpoint, IpFamily, NamespacedName, Protocol, ServicePort, ServicePortName, SessionAffinity};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("IP")
}

fn name(ns: &str, svc: &str) -> ServicePortName {
    ServicePortName::new(NamespacedName::new(ns, svc), "p80", Protocol::Tcp)
}

fn endpoint(addr: &str, local: bool) -> Endpoint {
    Endpoint { is_local: local, ..Endpoint::new(ip(addr), 80) }
}

/// Upstream's fake proxier: cluster CIDR 10.0.0.0/8, localhost node ports, no
/// `--random-fully`.
fn upstream_config() -> IptablesConfig {
    IptablesConfig {
        cluster_cidrs: vec!["10.0.0.0/8".parse().expect("CIDR")],
        random_fully: false,
        ..Default::default()
    }
}

/// The services and endpoints of upstream's `TestOverallIPTablesRules`.
fn upstream_state() -> ProxyState {
    let mut state = ProxyState::new("test-node");
    state.node.addresses = vec![ip("192.168.0.2")];
    let v4 = state.family_mut(IpFamily::V4);
    let base = |cip: &str| ServicePort::new(ip(cip), 80, Protocol::Tcp);
    let svc2 = ServicePort {
        node_port: Some(3001),
        load_balancer_vips: vec![ip("1.2.3.4")],
        external_ips: vec![ip("192.168.99.22")],
        health_check_node_port: Some(30000),
        external_policy_local: true,
        ..base("172.30.0.42")
    };
    let svc5 = ServicePort {
        node_port: Some(3002),
        load_balancer_vips: vec![ip("5.6.7.8")],
        load_balancer_source_ranges: vec!["203.0.113.0/25".parse().expect("CIDR")],
        session_affinity: SessionAffinity::ClientIp { timeout_seconds: 10800 },
        ..base("172.30.0.45")
    };
    let ports = [
        ("ns1", "svc1", base("172.30.0.41"), vec![endpoint("10.180.0.1", false)]),
        ("ns2", "svc2", svc2, vec![endpoint("10.180.0.2", false)]),
        (
            "ns3",
            "svc3",
            ServicePort { node_port: Some(3003), ..base("172.30.0.43") },
            vec![endpoint("10.180.0.3", false)],
        ),
        (
            "ns4",
            "svc4",
            ServicePort { external_ips: vec![ip("192.168.99.33")], ..base("172.30.0.44") },
            vec![endpoint("10.180.0.4", false), endpoint("10.180.0.5", true)],
        ),
        ("ns5", "svc5", svc5, vec![endpoint("10.180.0.3", false)]),
        ("ns6", "svc6", base("172.30.0.46"), vec![]),
    ];
    for (ns, svc, port, endpoints) in ports {
        v4.services.insert(name(ns, svc), port);
        v4.endpoints.insert(name(ns, svc), endpoints);
    }
    state
}

/// Lines of upstream's expected output for `TestOverallIPTablesRules` (one per rule
/// shape), which kproxy must write byte for byte.
const UPSTREAM_LINES: &[&str] = &[
    "-A KUBE-NODEPORTS -m comment --comment \"ns2/svc2:p80 health check node port\" -m tcp -p tcp --dport 30000 -j ACCEPT",
    "-A KUBE-SERVICES -m comment --comment \"ns6/svc6:p80 has no endpoints\" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT",
    "-A KUBE-EXTERNAL-SERVICES -m comment --comment \"ns2/svc2:p80 has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP",
    "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT",
    "-A KUBE-PROXY-FIREWALL -m comment --comment \"ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C\" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP",
    "-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK",
    "-A KUBE-SERVICES -m comment --comment \"ns5/svc5:p80 loadbalancer IP\" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C",
    "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    "-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment \"pod traffic for ns2/svc2:p80 external destinations\" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT",
    "-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment \"other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL\"",
    "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
    "-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80",
    "-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment \"ns4/svc4:p80 -> 10.180.0.4:80\" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC",
    "-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment \"ns5/svc5:p80 -> 10.180.0.3:80\" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN",
    "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ",
];

/// The nat chains upstream's expected output declares for the same state.
const UPSTREAM_NAT_CHAINS: &str = "KUBE-NODEPORTS KUBE-SERVICES KUBE-EXT-4SW47YFZTEDKD3PK KUBE-EXT-GNZBNJ2PO5MGZ6GT \
    KUBE-EXT-NUKIZ6OKUXPJNT4C KUBE-EXT-X27LE4BHSL4DOUIK KUBE-FW-NUKIZ6OKUXPJNT4C KUBE-MARK-MASQ KUBE-POSTROUTING \
    KUBE-SEP-C6EBXVWJJZMIWKLZ KUBE-SEP-I77PXRDZVX7PMWMN KUBE-SEP-OYPFS5VJICHGATKP KUBE-SEP-RS4RBKLTHTF2IUXJ \
    KUBE-SEP-SXIVWICOYRO3J4NJ KUBE-SEP-UKSFD7AGPMPPLUHC KUBE-SVC-4SW47YFZTEDKD3PK KUBE-SVC-GNZBNJ2PO5MGZ6GT \
    KUBE-SVC-NUKIZ6OKUXPJNT4C KUBE-SVC-X27LE4BHSL4DOUIK KUBE-SVC-XPGD46QRK7WJZT7O";

fn without_jumps_and_canaries(render: &FamilyRender) -> String {
    let input = RestoreInput {
        statics: &render.statics,
        shared: render.ports.values().map(|p| p.shared.as_slice()).collect(),
        chains: render.ports.values().flat_map(|p| &p.chains).collect(),
        stale: Vec::new(),
        jumps: Vec::new(),
        canary: false,
    };
    restore_text(&input)
}

#[test]
fn overall_rules_match_upstreams_test() {
    let render = render_family(&upstream_config(), &upstream_state(), IpFamily::V4);
    let text = without_jumps_and_canaries(&render);
    let lines: Vec<&str> = text.lines().collect();
    for expected in UPSTREAM_LINES {
        assert!(lines.contains(expected), "missing upstream line\n{expected}\nin\n{text}");
    }
    let nat = text.split("*nat\n").nth(1).expect("nat section");
    let declared: Vec<&str> =
        nat.lines().filter_map(|l| l.strip_prefix(':')).map(|l| l.trim_end_matches(" - [0:0]")).collect();
    assert_eq!(declared, UPSTREAM_NAT_CHAINS.split_whitespace().collect::<Vec<_>>());
    // Upstream's dump has 55 nat rules, 3 of them nfacct counters for localhost node ports
    // that kproxy leaves out, and 10 filter rules (kproxy's INVALID drop has no nfacct).
    assert_eq!(nat.lines().filter(|l| l.starts_with("-A ")).count(), 52);
    let filter = text.split("*nat\n").next().expect("filter section");
    assert_eq!(filter.lines().filter(|l| l.starts_with("-A ")).count(), 10);
}

#[test]
fn full_text_adds_canaries_and_jumps() {
    let render = render_family(&upstream_config(), &upstream_state(), IpFamily::V4);
    let text = render_text(&render);
    assert!(text.starts_with("*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n*filter\n"));
    assert!(text.contains(
        "-I INPUT 1 -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n"
    ));
    assert!(text.contains("-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"));
    assert!(text.contains("-I INPUT 1 -j KUBE-FIREWALL\n"));
    assert_eq!(text.matches(":KUBE-PROXY-CANARY - [0:0]").count(), 3);
}

#[test]
fn probabilities_split_evenly_and_the_last_rule_is_unconditional() {
    let mut state = ProxyState::new("node1");
    let v4 = state.family_mut(IpFamily::V4);
    v4.services.insert(name("ns", "svc"), ServicePort::new(ip("172.30.0.9"), 80, Protocol::Tcp));
    let endpoints = (1..=3).map(|i| endpoint(&format!("10.0.0.{i}"), false)).collect();
    v4.endpoints.insert(name("ns", "svc"), endpoints);
    let render = render_family(&IptablesConfig::default(), &state, IpFamily::V4);
    let svc = &render.ports[&name("ns", "svc")].chains[0];
    assert!(svc.name.starts_with("KUBE-SVC-"));
    assert!(svc.rules[0].contains("--probability 0.3333333333 -j KUBE-SEP-"));
    assert!(svc.rules[1].contains("--probability 0.5000000000 -j KUBE-SEP-"));
    assert!(!svc.rules[2].contains("statistic"));
    // No cluster CIDR, no masqueradeAll: no masquerade rule in KUBE-SVC.
    assert_eq!(svc.rules.len(), 3);
}

#[test]
fn ipv6_uses_brackets_for_dnat_and_no_loopback_node_ports() {
    let mut state = ProxyState::new("node1");
    let v6 = state.family_mut(IpFamily::V6);
    v6.services.insert(
        name("ns", "svc6"),
        ServicePort { node_port: Some(30080), ..ServicePort::new(ip("fd00::9"), 80, Protocol::Udp) },
    );
    v6.endpoints.insert(name("ns", "svc6"), vec![Endpoint::new(ip("fd00:10::1"), 53)]);
    let render = render_family(&IptablesConfig::default(), &state, IpFamily::V6);
    let text = render_text(&render);
    assert!(text.contains("-m tcp -p tcp -j DNAT --to-destination [fd00:10::1]:53"));
    assert!(text.contains("-d fd00::9 --dport 80"));
    assert!(text.contains("-m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS"));
    assert!(!text.contains("KUBE-FIREWALL"), "localhost node ports are IPv4 only");
}

#[test]
fn large_clusters_drop_endpoint_comments() {
    let mut state = ProxyState::new("node1");
    let v4 = state.family_mut(IpFamily::V4);
    for s in 0..101 {
        let svc = name("ns", &format!("svc{s}"));
        v4.services.insert(svc.clone(), ServicePort::new(ip(&format!("172.30.1.{s}")), 80, Protocol::Tcp));
        v4.endpoints.insert(svc, (0..10).map(|e| endpoint(&format!("10.1.{s}.{e}"), false)).collect());
    }
    let render = render_family(&IptablesConfig::default(), &state, IpFamily::V4);
    let chains = &render.ports[&name("ns", "svc0")].chains;
    assert!(chains.iter().all(|c| c.rules.iter().all(|r| !r.contains("--comment"))), "{chains:?}");
    let (_, cluster_ip) = &render.ports[&name("ns", "svc0")].shared[0];
    assert!(cluster_ip.contains("--comment \"ns/svc0:p80 cluster IP\""));
}

#[test]
fn masquerade_all_marks_every_cluster_ip_packet() {
    let config = IptablesConfig { masquerade_all: true, ..upstream_config() };
    let render = render_family(&config, &upstream_state(), IpFamily::V4);
    let svc = &render.ports[&name("ns1", "svc1")].chains[0];
    assert_eq!(
        svc.rules[0],
        "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ"
    );
}

#[test]
fn detect_local_modes_pick_what_is_pod_traffic() {
    use kproxy_netfilter::{InterfaceName, LocalDetect};
    let svc1 = |config: &IptablesConfig, state: &ProxyState| {
        render_family(config, state, IpFamily::V4).ports[&name("ns1", "svc1")].chains[0].rules[0].clone()
    };
    let expected = |matcher: &str| {
        format!(
            "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 {matcher} -j KUBE-MARK-MASQ"
        )
    };
    let state = upstream_state();
    assert_eq!(svc1(&upstream_config(), &state), expected("! -s 10.0.0.0/8"));
    let bridge = LocalDetect::BridgeInterface(InterfaceName::parse("cbr0").expect("name"));
    assert_eq!(svc1(&IptablesConfig { local_detect: bridge, ..upstream_config() }, &state), expected("! -i cbr0"));
    let prefix = LocalDetect::InterfaceNamePrefix(InterfaceName::parse("veth").expect("name"));
    assert_eq!(svc1(&IptablesConfig { local_detect: prefix, ..upstream_config() }, &state), expected("! -i veth+"));

    // NodeCIDR: the node's pod CIDR of the family, resolved when the dataplane syncs.
    let mut state = upstream_state();
    state.node.pod_cidrs = vec!["10.180.0.0/24".parse().expect("CIDR"), "fd00:10:180::/64".parse().expect("CIDR")];
    let config = IptablesConfig { local_detect: LocalDetect::NodeCidr, ..upstream_config() };
    let on_node = crate::dataplane::on_node(&config, &state.node);
    assert_eq!(svc1(&on_node, &state), expected("! -s 10.180.0.0/24"));
}

/// A Service whose name carries a quote and a newline once wrote `-A INPUT … -j ACCEPT`
/// into the filter table: every rule now appends to a chain of ours, on one line.
#[test]
fn hostile_names_never_leave_their_comment() {
    let mut state = upstream_state();
    let hostile = "x\" -j ACCEPT\n-A INPUT -s 198.18.0.3/32 -j ACCEPT\n#";
    let name = ServicePortName::new(NamespacedName::new("a;b", hostile), "p\"\\", Protocol::Tcp);
    let port = ServicePort { node_port: Some(3009), ..ServicePort::new(ip("172.30.0.49"), 80, Protocol::Tcp) };
    state.family_mut(IpFamily::V4).services.insert(name.clone(), port);
    state.family_mut(IpFamily::V4).endpoints.insert(name, vec![endpoint("10.180.0.9", false)]);
    let text = render_text(&render_family(&upstream_config(), &state, IpFamily::V4));
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-A ") {
            assert!(rest.starts_with("KUBE-"), "a rule outside our chains: {line}");
        } else {
            let known = ["*", ":", "-I ", "COMMIT"];
            assert!(known.iter().any(|k| line.starts_with(k)), "unexpected line: {line}");
        }
    }
    assert!(text.contains(r#"--comment "a;b/x\" -j ACCEPT?-A INPUT -s 198.18.0.3/32 -j ACCEPT?#:p\"\\ cluster IP""#));
}

#[test]
fn a_liberal_conntrack_needs_no_invalid_drop() {
    let strict = render_statics(&upstream_config(), IpFamily::V4);
    assert_eq!(strict.filter_rules.iter().filter(|r| r.contains("--ctstate INVALID")).count(), 1);
    let liberal = IptablesConfig { conntrack_tcp_liberal: true, ..upstream_config() };
    let liberal = render_statics(&liberal, IpFamily::V4);
    assert!(!liberal.filter_rules.iter().any(|r| r.contains("INVALID")), "{:?}", liberal.filter_rules);
}
