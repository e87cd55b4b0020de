use super::*;

use std::collections::{BTreeMap, BTreeSet};

use kproxy_core::{Endpoint, NamespacedName, Protocol, ServicePort, ServicePortName, SessionAffinity};

use crate::config::NodePortAddresses;
use crate::render::names::{
    CLUSTER_IPS, CLUSTER_IPS_CHECK, NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, SHORT_CIRCUIT_OR_DROP,
};
use crate::render::static_table::StaticChain;

fn config() -> NftablesConfig {
    NftablesConfig { cluster_cidrs: vec!["10.0.0.0/8".parse().unwrap()], ..NftablesConfig::default() }
}

fn endpoint(ip: &str, local: bool) -> Endpoint {
    Endpoint { is_local: local, ..Endpoint::new(ip.parse().unwrap(), 8080) }
}

fn port_name(namespace: &str, service: &str) -> ServicePortName {
    ServicePortName::new(NamespacedName::new(namespace, service), "p80", Protocol::Tcp)
}

/// Every combination of policies, affinity, external access and endpoint placement, one
/// service port each.
fn every_shape() -> ProxyState {
    let mut state = ProxyState::new("node1");
    let placements: [&[(&str, bool)]; 4] =
        [&[], &[("10.180.1.1", false)], &[("10.180.0.1", true)], &[("10.180.0.2", true), ("10.180.1.2", false)]];
    let mut n = 0u8;
    for etp_local in [false, true] {
        for itp_local in [false, true] {
            for affinity in [false, true] {
                for external in [false, true] {
                    for placement in placements {
                        n += 1;
                        let name = port_name("ns1", &format!("svc{n}"));
                        let mut port = ServicePort::new(format!("172.30.0.{n}").parse().unwrap(), 80, Protocol::Tcp);
                        port.external_policy_local = etp_local;
                        port.internal_policy_local = itp_local;
                        if affinity {
                            port.session_affinity = SessionAffinity::ClientIp { timeout_seconds: 60 };
                        }
                        if external {
                            port.node_port = Some(30000 + u16::from(n));
                            port.load_balancer_vips = vec![format!("1.2.3.{n}").parse().unwrap()];
                            port.load_balancer_source_ranges = vec!["203.0.113.0/25".parse().unwrap()];
                        }
                        let endpoints = placement.iter().map(|(ip, local)| endpoint(ip, *local)).collect();
                        state.family_mut(IpFamily::V4).services.insert(name.clone(), port);
                        state.family_mut(IpFamily::V4).endpoints.insert(name, endpoints);
                    }
                }
            }
        }
    }
    state
}

/// Names following `word` (`goto`, `jump`) or `@` in `text`.
fn references(text: &str, word: &str) -> Vec<String> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    tokens.windows(2).filter(|w| w[0] == word).map(|w| w[1].trim_end_matches([',', '}']).to_owned()).collect()
}

fn set_references(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|t| t.strip_prefix('@'))
        .map(|t| t.trim_end_matches([',', '}']).to_owned())
        .collect()
}

/// Every chain and set a rule or element names exists, and a chain name always carries the
/// same rules (what `Committed`'s sharing relies on).
fn assert_consistent(table: &TableRender) {
    let mut chains: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
    for chain in table.statics.chains.iter().map(|c| &c.chain).chain(table.ports.values().flat_map(|p| &p.chains)) {
        if let Some(rules) = chains.insert(&chain.name, &chain.rules) {
            assert_eq!(rules, &chain.rules, "chain {} rendered with two rule sets", chain.name);
        }
        assert!(chain.name.len() <= 255, "nft refuses chain names over 255 characters: {}", chain.name);
    }
    let sets: BTreeSet<&str> = table
        .statics
        .sets
        .iter()
        .map(|s| s.name)
        .chain(table.ports.values().flat_map(|p| &p.sets).map(|s| s.name.as_str()))
        .collect();
    let rules = chains.values().flat_map(|r| r.iter().cloned());
    let values = table.ports.values().flat_map(|p| &p.elements).filter_map(|e| e.value.clone());
    for text in rules.chain(values) {
        for target in references(&text, "goto").into_iter().chain(references(&text, "jump")) {
            assert!(chains.contains_key(target.as_str()), "`{text}` names a missing chain {target}");
        }
        for set in set_references(&text) {
            assert!(sets.contains(set.as_str()), "`{text}` names a missing set {set}");
        }
    }
}

#[test]
fn every_shape_references_only_what_exists() {
    let state = every_shape();
    for config in [
        config(),
        NftablesConfig::default(),
        NftablesConfig { masquerade_all: true, ..config() },
        NftablesConfig {
            nodeport_addresses: NodePortAddresses::Cidrs(vec!["192.168.0.0/24".parse().unwrap()]),
            ..config()
        },
    ] {
        let table = render_family(&config, &state, IpFamily::V4);
        assert_eq!(table.ports.len(), 64);
        assert_consistent(&table);
    }
}

#[test]
fn primary_node_ports_are_the_nodes_primary_ips() {
    let config = NftablesConfig { nodeport_addresses: NodePortAddresses::Primary, ..config() };
    let mut state = ProxyState::new("node1");
    state.node.addresses = ["192.168.0.2", "192.168.0.50"].map(|ip| ip.parse().unwrap()).to_vec();
    state.node.primary_addresses = vec!["192.168.0.2".parse().unwrap()];
    let on_node = kproxy_netfilter::config_for_node(&config, &config.nodeport_addresses, &state.node, |c| {
        &mut c.nodeport_addresses
    });
    let table = render_family(&on_node, &state, IpFamily::V4);
    let text = render_text(&table, "kproxy");
    assert!(text.contains("192.168.0.2/32"), "{text}");
    assert!(!text.contains("192.168.0.50"), "a secondary address takes no node ports:\n{text}");
    assert!(text.contains("ip daddr @nodeport-ips"), "{text}");
}

#[test]
fn detect_local_modes_pick_what_is_pod_traffic() {
    use kproxy_netfilter::{InterfaceName, LocalDetect};
    let text = |config: &NftablesConfig, state: &ProxyState| {
        render_text(&render_family(config, state, IpFamily::V4), "kproxy")
    };
    let state = every_shape();
    let cidr = text(&config(), &state);
    assert!(cidr.contains("ip saddr != @cluster-cidrs jump mark-for-masquerade"), "{cidr}");
    assert!(cidr.contains("ip saddr @cluster-cidrs goto "), "{cidr}");
    assert!(cidr.contains("ip saddr @cluster-cidrs return"), "{cidr}");

    let bridge = LocalDetect::BridgeInterface(InterfaceName::parse("cbr0").unwrap());
    let by_bridge = text(&NftablesConfig { local_detect: bridge, ..config() }, &state);
    assert!(by_bridge.contains("iifname != \"cbr0\" jump mark-for-masquerade"), "{by_bridge}");
    assert!(by_bridge.contains("iifname \"cbr0\" goto "), "{by_bridge}");
    assert!(by_bridge.contains("iifname \"cbr0\" return"), "{by_bridge}");
    assert!(!by_bridge.contains("saddr != @cluster-cidrs"), "{by_bridge}");

    let prefix = LocalDetect::InterfaceNamePrefix(InterfaceName::parse("veth").unwrap());
    let by_prefix = text(&NftablesConfig { local_detect: prefix, ..config() }, &state);
    assert!(by_prefix.contains("iifname != \"veth*\" jump mark-for-masquerade"), "{by_prefix}");

    // NodeCIDR: the cluster-cidrs set holds the node's pod CIDRs, resolved at sync.
    let mut state = every_shape();
    state.node.pod_cidrs = vec!["10.180.0.0/24".parse().unwrap()];
    let config = NftablesConfig { local_detect: LocalDetect::NodeCidr, ..config() };
    let on_node = crate::dataplane::on_node(&config, &state.node);
    let by_node = text(&on_node, &state);
    assert!(by_node.contains("10.180.0.0/24"), "{by_node}");
    assert!(!by_node.contains("10.0.0.0/8"), "{by_node}");
    assert!(by_node.contains("ip saddr != @cluster-cidrs jump mark-for-masquerade"), "{by_node}");
}

#[test]
fn restricted_node_ports_match_only_local_addresses() {
    let config = NftablesConfig {
        nodeport_addresses: NodePortAddresses::Cidrs(vec!["192.168.0.0/24".parse().unwrap()]),
        ..config()
    };
    let table = render_family(&config, &ProxyState::new("node1"), IpFamily::V4);
    let services = table.statics.chains.iter().find(|c| c.chain.name == "services").unwrap();
    assert_eq!(
        services.chain.rules[1],
        "fib daddr type local ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
    );
    // No CIDR of this family: no node port at all.
    let v6 = render_family(&config, &ProxyState::new("node1"), IpFamily::V6);
    let services = v6.statics.chains.iter().find(|c| c.chain.name == "services").unwrap();
    assert_eq!(services.chain.rules.len(), 1);
    let check = v6.statics.chains.iter().find(|c| c.chain.name == "nodeport-endpoints-check").unwrap();
    assert!(check.chain.rules.is_empty());
}

fn etp_local_without_local_endpoints(itp_local: bool) -> PortRender {
    let mut state = ProxyState::new("node1");
    let name = port_name("ns1", "remote");
    let mut port = ServicePort::new("172.30.0.1".parse().unwrap(), 80, Protocol::Tcp);
    port.external_policy_local = true;
    port.internal_policy_local = itp_local;
    port.node_port = Some(30001);
    port.load_balancer_vips = vec!["1.2.3.4".parse().unwrap()];
    state.family_mut(IpFamily::V4).services.insert(name.clone(), port);
    state.family_mut(IpFamily::V4).endpoints.insert(name.clone(), vec![endpoint("10.180.1.1", false)]);
    let mut table = render_family(&config(), &state, IpFamily::V4);
    table.ports.remove(&name).unwrap()
}

fn verdict<'a>(render: &'a PortRender, set: &str, key: &str) -> Option<&'a str> {
    render.elements.iter().find(|e| e.set == set && e.key == key).and_then(|e| e.value.as_deref())
}

#[test]
fn external_traffic_without_local_endpoints_spares_short_circuited_traffic() {
    let render = etp_local_without_local_endpoints(false);
    let spare = format!("goto {SHORT_CIRCUIT_OR_DROP}");
    assert_eq!(verdict(&render, NO_ENDPOINT_SERVICES, "1.2.3.4 . tcp . 80"), Some(spare.as_str()));
    assert_eq!(verdict(&render, NO_ENDPOINT_NODEPORTS, "tcp . 30001"), Some(spare.as_str()));
    assert_eq!(verdict(&render, NO_ENDPOINT_SERVICES, "172.30.0.1 . tcp . 80"), None, "the cluster IP has endpoints");
    assert_eq!(
        verdict(&render, "service-ips", "1.2.3.4 . tcp . 80"),
        Some("goto external-local-to-none-via-internal-to-cluster-tcp-1")
    );
    let table = render_family(&config(), &ProxyState::new("node1"), IpFamily::V4);
    let chain = table.statics.chains.iter().find(|c| c.chain.name == SHORT_CIRCUIT_OR_DROP).unwrap();
    assert_eq!(chain.chain.rules, ["ip saddr @cluster-cidrs return", "fib saddr type local return", "drop"]);
    // Without a local-traffic detector only the node's own traffic is short-circuited.
    let table = render_family(&NftablesConfig::default(), &ProxyState::new("node1"), IpFamily::V4);
    let chain = table.statics.chains.iter().find(|c| c.chain.name == SHORT_CIRCUIT_OR_DROP).unwrap();
    assert_eq!(chain.chain.rules, ["fib saddr type local return", "drop"]);
}

#[test]
fn nothing_to_short_circuit_to_drops_plainly() {
    // Internal policy Local without local endpoints: no cluster-IP path to short-circuit to.
    let render = etp_local_without_local_endpoints(true);
    assert_eq!(verdict(&render, NO_ENDPOINT_SERVICES, "1.2.3.4 . tcp . 80"), Some("drop"));
    assert_eq!(verdict(&render, NO_ENDPOINT_SERVICES, "172.30.0.1 . tcp . 80"), Some("drop"));
    assert_eq!(verdict(&render, "service-ips", "1.2.3.4 . tcp . 80"), None);
}

#[test]
fn overlong_chain_names_are_cut_and_hashed_consistently() {
    let long = "x".repeat(63);
    let mut state = ProxyState::new("node1");
    for (i, service) in [format!("{long}a"), format!("{long}b")].into_iter().enumerate() {
        let name = port_name(&long, &service[..63]);
        let name = ServicePortName { service: NamespacedName::new(&long, &service), ..name };
        // Distinct claims: two ports on one address and port would leave the younger out.
        let mut port = ServicePort::new(format!("172.30.0.{}", i + 1).parse().unwrap(), 80, Protocol::Tcp);
        port.external_policy_local = true;
        port.node_port = Some(30001 + u16::try_from(i).unwrap());
        port.session_affinity = SessionAffinity::ClientIp { timeout_seconds: 60 };
        state.family_mut(IpFamily::V4).services.insert(name.clone(), port);
        state.family_mut(IpFamily::V4).endpoints.insert(name, vec![endpoint("10.180.0.1", true)]);
    }
    let table = render_family(&config(), &state, IpFamily::V4);
    assert_consistent(&table);
    let external: Vec<&str> = table
        .ports
        .values()
        .flat_map(|p| &p.chains)
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("external-local-"))
        .collect();
    assert_eq!(external.len(), 2);
    assert_ne!(external[0], external[1], "the hash keeps cut names apart");
    assert!(external.iter().all(|n| n.len() == 255));
    // Rendering again gives the same names.
    let again = render_family(&config(), &state, IpFamily::V4);
    assert_eq!(again, table);
}

/// Whether nft reads `name` unquoted, as one identifier.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c))
        && name.len() <= 255
}

#[test]
fn hostile_names_become_identifiers_and_stay_apart() {
    let texts = ["a;b", "a:b", "a_b", "x\"}\n\tchain input { accept", "ünï ☃", "y".repeat(300).leak(), ""];
    let mut state = ProxyState::new("node1");
    let mut n = 0u8;
    for text in texts {
        n += 1;
        let name = ServicePortName::new(NamespacedName::new(text, text), text, Protocol::Tcp);
        let mut port = ServicePort::new(format!("172.30.0.{n}").parse().unwrap(), 80, Protocol::Tcp);
        port.external_policy_local = true;
        port.node_port = Some(30000 + u16::from(n));
        port.session_affinity = SessionAffinity::ClientIp { timeout_seconds: 60 };
        let endpoints = vec![endpoint(&format!("10.180.0.{n}"), true), endpoint(&format!("10.180.1.{n}"), false)];
        state.family_mut(IpFamily::V4).services.insert(name.clone(), port);
        state.family_mut(IpFamily::V4).endpoints.insert(name, endpoints);
    }
    let table = render_family(&config(), &state, IpFamily::V4);
    assert_consistent(&table);
    let chains: BTreeSet<&str> = table.ports.values().flat_map(|p| &p.chains).map(|c| c.name.as_str()).collect();
    let sets: BTreeSet<&str> = table.ports.values().flat_map(|p| &p.sets).map(|s| s.name.as_str()).collect();
    for name in chains.iter().chain(&sets) {
        assert!(is_identifier(name), "not an nft identifier: {name:?}");
    }
    // Per port: a cluster and a local affinity chain, and a set per endpoint of each.
    assert_eq!(chains.iter().filter(|c| c.starts_with("affinity-")).count(), 2 * texts.len());
    assert_eq!(sets.len(), 3 * texts.len());
}

fn static_chain<'a>(table: &'a TableRender, name: &str) -> &'a StaticChain {
    table.statics.chains.iter().find(|c| c.chain.name == name).unwrap()
}

#[test]
fn cluster_ips_check_refuses_unknown_ports_and_drops_unallocated_addresses_of_its_family() {
    let mut state = ProxyState::new("node1");
    state.service_cidrs =
        ["172.30.0.0/16", "172.30.5.0/24", "172.31.0.0/16", "fd00:172:30::/112"].map(|c| c.parse().unwrap()).to_vec();
    let v4 = render_family(&config(), &state, IpFamily::V4);
    assert_eq!(
        static_chain(&v4, CLUSTER_IPS_CHECK).chain.rules,
        ["ip daddr @cluster-ips reject", "ip daddr { 172.30.0.0/15 } drop"],
        "overlapping and adjacent CIDRs merge (nft refuses overlapping intervals)"
    );
    let v6 = render_family(&config(), &state, IpFamily::V6);
    assert_eq!(
        static_chain(&v6, CLUSTER_IPS_CHECK).chain.rules,
        ["ip6 daddr @cluster-ips reject", "ip6 daddr { fd00:172:30::/112 } drop"]
    );
    // No ServiceCIDR known: unknown ports of active cluster IPs are still refused.
    let none = render_family(&config(), &ProxyState::new("node1"), IpFamily::V4);
    assert_eq!(static_chain(&none, CLUSTER_IPS_CHECK).chain.rules, ["ip daddr @cluster-ips reject"]);
}

#[test]
fn cluster_ips_check_runs_after_dnat_on_forwarded_and_local_traffic() {
    let table = render_family(&config(), &ProxyState::new("node1"), IpFamily::V4);
    let jump = format!("ct state new jump {CLUSTER_IPS_CHECK}");
    let forward = static_chain(&table, "filter-forward");
    assert_eq!(forward.hook, Some("type filter hook forward priority -110; policy accept;"));
    assert!(forward.chain.rules.contains(&jump));
    let output = static_chain(&table, "filter-output-post-dnat");
    assert_eq!(output.hook, Some("type filter hook output priority -90; policy accept;"), "after nat-output (-100)");
    assert_eq!(output.chain.rules, [jump.as_str()]);
    for pre_dnat in ["filter-prerouting", "filter-output"] {
        assert!(!static_chain(&table, pre_dnat).chain.rules.contains(&jump), "{pre_dnat} sees the service VIPs");
    }
}

#[test]
fn every_port_marks_its_cluster_ip_active() {
    let mut state = ProxyState::new("node1");
    for (service, port) in [("a", 80), ("a", 443), ("b", 53)] {
        let cluster_ip = if service == "a" { "172.30.0.1" } else { "172.30.0.2" };
        let name = ServicePortName::new(NamespacedName::new("ns1", service), port.to_string(), Protocol::Tcp);
        state
            .family_mut(IpFamily::V4)
            .services
            .insert(name, ServicePort::new(cluster_ip.parse().unwrap(), port, Protocol::Tcp));
    }
    let table = render_family(&config(), &state, IpFamily::V4);
    let active: BTreeSet<&str> = table
        .ports
        .values()
        .flat_map(|p| &p.elements)
        .filter(|e| e.set == CLUSTER_IPS)
        .map(|e| e.key.as_str())
        .collect();
    assert_eq!(active, BTreeSet::from(["172.30.0.1", "172.30.0.2"]), "no-endpoint ports included");
    assert!(table.statics.sets.iter().any(|s| s.name == CLUSTER_IPS && s.spec == "type ipv4_addr;"));
}

#[test]
fn invalid_packets_are_dropped_and_counted_unless_conntrack_is_liberal() {
    let strict = render_family(&config(), &ProxyState::new("node1"), IpFamily::V4);
    let drop = "ct state invalid counter name ct-state-invalid-dropped drop";
    assert!(static_chain(&strict, "filter-forward").chain.rules.iter().any(|r| r == drop));
    let liberal = NftablesConfig { conntrack_tcp_liberal: true, ..config() };
    let liberal = render_family(&liberal, &ProxyState::new("node1"), IpFamily::V4);
    assert!(!static_chain(&liberal, "filter-forward").chain.rules.iter().any(|r| r.contains("invalid")));
}

#[test]
fn loopback_node_port_connections_are_counted_unless_the_relay_serves_them() {
    let count = "ip daddr 127.0.0.0/8 meta l4proto . th dport @service-nodeports ct state new counter name localhost-nodeports-rejected";
    let off = render_family(&config(), &ProxyState::new("node1"), IpFamily::V4);
    assert_eq!(static_chain(&off, "nat-output").chain.rules, [count, "jump services"], "counted, then the services");
    assert!(off.statics.counters.contains(&"localhost-nodeports-rejected"));
    let served = NftablesConfig { localhost_nodeports_served: true, ..config() };
    let on = render_family(&served, &ProxyState::new("node1"), IpFamily::V4);
    assert_eq!(static_chain(&on, "nat-output").chain.rules, ["jump services"]);
    assert!(!on.statics.counters.contains(&"localhost-nodeports-rejected"));
}
