//! Tests of `explain`: matching, endpoint eligibility (through `categorize_endpoints`),
//! verdicts and masquerade decisions.

use std::net::IpAddr;

use super::*;
use crate::names::{NamespacedName, Protocol};
use crate::service_port::SessionAffinity;

const NODE: &str = "node1";
const NODE_IP: &str = "192.168.0.2";
const CLUSTER_IP: &str = "172.30.0.41";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

fn name(svc: &str) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns1", svc), "p80", Protocol::Tcp)
}

fn port() -> ServicePort {
    ServicePort::new(ip(CLUSTER_IP), 80, Protocol::Tcp)
}

/// An endpoint `ip:8080` on `node` (local when it is this node).
fn ep(addr: &str, node: &str) -> Endpoint {
    Endpoint { is_local: node == NODE, node_name: Some(node.into()), ..Endpoint::new(ip(addr), 8080) }
}

fn state(port: ServicePort, endpoints: Vec<Endpoint>) -> ProxyState {
    let mut state = ProxyState::new(NODE);
    state.node.addresses = vec![ip(NODE_IP)];
    state.node.labels.insert(crate::convert::LABEL_TOPOLOGY_ZONE.to_owned(), "zone-a".to_owned());
    let view = state.family_mut(IpFamily::of(&port.cluster_ip));
    view.services.insert(name("svc1"), port);
    view.endpoints.insert(name("svc1"), endpoints);
    state
}

fn netfilter(masquerade_all: bool, cidrs: &[&str]) -> ModeProfile {
    ModeProfile {
        mode: "nftables".to_owned(),
        masquerade: MasqueradeModel::Netfilter { masquerade_all },
        pods: PodDetection::ClusterCidrs(cidrs.iter().map(|c| c.parse().expect("cidr")).collect()),
    }
}

fn ask(state: &ProxyState, dst: &str, from: Option<&str>, profile: &ModeProfile) -> Explanation {
    let query = Query { destination: dst.parse().expect("destination"), source: from.map(ip) };
    explain(state, &query, profile, |_| Vec::new())
}

fn eligible(x: &Explanation) -> Vec<&str> {
    x.endpoints.iter().filter(|e| e.eligible).map(|e| e.address.as_str()).collect()
}

fn reason_of<'a>(x: &'a Explanation, address: &str) -> &'a str {
    x.endpoints.iter().find(|e| e.address == address).map(|e| e.reason.as_str()).expect("endpoint listed")
}

fn two_endpoints() -> Vec<Endpoint> {
    vec![ep("10.180.0.1", "node2"), ep("10.180.1.1", NODE)]
}

fn node_port_local() -> ServicePort {
    ServicePort { node_port: Some(30080), external_policy_local: true, ..port() }
}

#[test]
fn a_cluster_ip_matches_and_forwards_to_every_ready_endpoint() {
    let state = state(port(), two_endpoints());
    let x = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &netfilter(false, &["10.244.0.0/16"]));
    let service = x.service.as_ref().expect("matched");
    assert_eq!(service.service_port, "ns1/svc1:p80");
    assert_eq!(service.matched_by, MatchKind::ClusterIp);
    assert_eq!((service.traffic_policy.as_str(), service.endpoint_set), ("Cluster", EndpointSet::Cluster));
    assert_eq!(x.verdict, Verdict::Forward);
    assert_eq!(eligible(&x), ["10.180.0.1:8080", "10.180.1.1:8080"]);
    assert_eq!(x.source_kind, SourceKind::Pod);
    assert_eq!(x.masquerade.decision, Decision::No, "{:?}", x.masquerade);
}

#[test]
fn another_port_or_protocol_of_the_cluster_ip_does_not_match() {
    let state = state(port(), two_endpoints());
    let profile = netfilter(false, &[]);
    for dst in ["172.30.0.41:81", "172.30.0.41:80/udp", "172.30.0.42:80", "[fd00::41]:80"] {
        let x = ask(&state, dst, None, &profile);
        assert_eq!(x.verdict, Verdict::NotAService, "{dst}");
        assert!(x.service.is_none() && x.endpoints.is_empty() && x.rules.is_empty(), "{dst}: {x:?}");
        assert!(x.verdict_reason.contains("no service port"), "{}", x.verdict_reason);
    }
}

#[test]
fn a_node_port_matches_on_a_node_address_only() {
    let state = state(ServicePort { node_port: Some(30080), ..port() }, two_endpoints());
    let profile = netfilter(false, &[]);
    let x = ask(&state, "192.168.0.2:30080", None, &profile);
    let service = x.service.as_ref().expect("matched");
    assert_eq!((service.matched_by, service.external_traffic), (MatchKind::NodePort, true));
    assert_eq!(x.verdict, Verdict::Forward);
    assert_eq!(x.masquerade.decision, Decision::Yes, "external traffic with policy Cluster");
    assert_eq!(ask(&state, "127.0.0.1:30080", None, &profile).verdict, Verdict::Forward);
    assert_eq!(ask(&state, "192.168.0.99:30080", None, &profile).verdict, Verdict::NotAService);
}

#[test]
fn external_and_load_balancer_ips_match_as_external_traffic() {
    let port =
        ServicePort { external_ips: vec![ip("192.168.99.11")], load_balancer_vips: vec![ip("1.2.3.4")], ..port() };
    let state = state(port, two_endpoints());
    let profile = netfilter(false, &[]);
    let external = ask(&state, "192.168.99.11:80", None, &profile);
    assert_eq!(external.service.map(|s| s.matched_by), Some(MatchKind::ExternalIp));
    let lb = ask(&state, "1.2.3.4:80", None, &profile);
    assert_eq!(lb.service.map(|s| s.matched_by), Some(MatchKind::LoadBalancerIp));
}

#[test]
fn local_policy_uses_only_local_endpoints_and_keeps_the_source() {
    let state = state(node_port_local(), two_endpoints());
    let x = ask(&state, "192.168.0.2:30080", Some("203.0.113.7"), &netfilter(false, &["10.244.0.0/16"]));
    let service = x.service.as_ref().expect("matched");
    assert_eq!((service.traffic_policy.as_str(), service.endpoint_set), ("Local", EndpointSet::Local));
    assert!(!service.short_circuit);
    assert_eq!(x.verdict, Verdict::Forward);
    assert_eq!(eligible(&x), ["10.180.1.1:8080"]);
    assert!(reason_of(&x, "10.180.0.1:8080").contains("runs on node2"), "{x:?}");
    assert_eq!(x.masquerade.decision, Decision::No);
    assert!(x.masquerade.reasons[0].contains("externalTrafficPolicy Local"), "{:?}", x.masquerade);
}

#[test]
fn local_policy_without_a_local_endpoint_drops_outside_traffic() {
    let state = state(node_port_local(), vec![ep("10.180.0.1", "node2")]);
    let x = ask(&state, "192.168.0.2:30080", None, &netfilter(false, &["10.244.0.0/16"]));
    assert_eq!(x.verdict, Verdict::Drop);
    assert!(x.verdict_reason.contains("externalTrafficPolicy Local"), "{}", x.verdict_reason);
    assert!(eligible(&x).is_empty());
    assert!(x.notes.iter().any(|n| n.contains("no --from")), "{:?}", x.notes);
}

#[test]
fn pods_and_the_node_short_circuit_a_local_policy_to_every_endpoint() {
    let state = state(node_port_local(), vec![ep("10.180.0.1", "node2")]);
    let profile = netfilter(false, &["10.244.0.0/16"]);
    let pod = ask(&state, "192.168.0.2:30080", Some("10.244.1.5"), &profile);
    let service = pod.service.as_ref().expect("matched");
    assert!(service.short_circuit);
    assert_eq!(service.endpoint_set, EndpointSet::Cluster);
    assert_eq!((pod.verdict, eligible(&pod)), (Verdict::Forward, vec!["10.180.0.1:8080"]));
    assert_eq!(pod.masquerade.decision, Decision::No, "a pod keeps its address: {:?}", pod.masquerade);
    let node = ask(&state, "192.168.0.2:30080", Some(NODE_IP), &profile);
    assert_eq!((node.source_kind, node.verdict), (SourceKind::Node, Verdict::Forward));
    assert_eq!(node.masquerade.decision, Decision::Yes, "{:?}", node.masquerade);
}

#[test]
fn internal_policy_local_without_a_local_endpoint_drops() {
    let state = state(ServicePort { internal_policy_local: true, ..port() }, vec![ep("10.180.0.1", "node2")]);
    let x = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &netfilter(false, &["10.244.0.0/16"]));
    assert_eq!(x.verdict, Verdict::Drop);
    assert!(x.verdict_reason.contains("internalTrafficPolicy Local"), "{}", x.verdict_reason);
}

#[test]
fn no_endpoint_anywhere_is_refused() {
    let unready = Endpoint { ready: false, serving: false, ..ep("10.180.0.1", "node2") };
    let state = state(port(), vec![unready]);
    let x = ask(&state, "172.30.0.41:80", None, &netfilter(false, &[]));
    assert_eq!(x.verdict, Verdict::Reject);
    assert_eq!(reason_of(&x, "10.180.0.1:8080"), "not ready");
    assert_eq!(x.masquerade.decision, Decision::No);
}

#[test]
fn topology_hints_narrow_the_cluster_set() {
    let hinted = |addr: &str, node: &str, zone: &str| Endpoint {
        zone_hints: [zone.to_owned()].into_iter().collect(),
        ..ep(addr, node)
    };
    let endpoints = vec![hinted("10.180.0.1", "node2", "zone-a"), hinted("10.180.2.1", "node3", "zone-b")];
    let state = state(port(), endpoints);
    let x = ask(&state, "172.30.0.41:80", None, &netfilter(false, &[]));
    assert_eq!(eligible(&x), ["10.180.0.1:8080"]);
    assert!(reason_of(&x, "10.180.2.1:8080").contains("topology hints exclude it"), "{x:?}");
    assert!(reason_of(&x, "10.180.2.1:8080").contains("zones [zone-b]"), "{x:?}");
    assert!(x.notes.iter().any(|n| n.contains("topology-aware routing")), "{:?}", x.notes);
}

#[test]
fn serving_terminating_endpoints_are_the_fallback_when_none_is_ready() {
    let terminating =
        |addr: &str, node: &str| Endpoint { ready: false, serving: true, terminating: true, ..ep(addr, node) };
    let all_terminating = state(port(), vec![terminating("10.180.0.1", "node2")]);
    let x = ask(&all_terminating, "172.30.0.41:80", None, &netfilter(false, &[]));
    assert_eq!((x.verdict, eligible(&x)), (Verdict::Forward, vec!["10.180.0.1:8080"]));
    assert!(reason_of(&x, "10.180.0.1:8080").contains("no endpoint is ready"), "{x:?}");
    let mixed = state(port(), vec![terminating("10.180.0.1", "node2"), ep("10.180.0.2", "node2")]);
    let x = ask(&mixed, "172.30.0.41:80", None, &netfilter(false, &[]));
    assert_eq!(eligible(&x), ["10.180.0.2:8080"]);
    assert!(reason_of(&x, "10.180.0.1:8080").starts_with("terminating: not used"), "{x:?}");
}

#[test]
fn load_balancer_source_ranges_drop_other_sources() {
    let port = ServicePort {
        load_balancer_vips: vec![ip("1.2.3.4")],
        load_balancer_source_ranges: vec!["203.0.113.0/24".parse().expect("cidr")],
        ..port()
    };
    let state = state(port, two_endpoints());
    let profile = netfilter(false, &[]);
    assert_eq!(ask(&state, "1.2.3.4:80", Some("203.0.113.7"), &profile).verdict, Verdict::Forward);
    let blocked = ask(&state, "1.2.3.4:80", Some("198.51.100.1"), &profile);
    assert_eq!(blocked.verdict, Verdict::Drop);
    assert!(blocked.verdict_reason.contains("loadBalancerSourceRanges"));
    let unknown = ask(&state, "1.2.3.4:80", None, &profile);
    assert!(unknown.notes.iter().any(|n| n.contains("203.0.113.0/24")), "{:?}", unknown.notes);
}

#[test]
fn cluster_ip_masquerading_follows_masquerade_all_and_the_cluster_cidr() {
    let state = state(port(), two_endpoints());
    let decide = |from: Option<&str>, profile: &ModeProfile| ask(&state, "172.30.0.41:80", from, profile).masquerade;
    let detect = netfilter(false, &["10.244.0.0/16"]);
    assert_eq!(decide(Some("10.244.1.5"), &detect).decision, Decision::No);
    assert_eq!(decide(Some("203.0.113.7"), &detect).decision, Decision::Yes);
    assert_eq!(decide(Some(NODE_IP), &detect).decision, Decision::Yes);
    assert_eq!(decide(None, &detect).decision, Decision::Depends);
    let all = decide(Some("10.244.1.5"), &netfilter(true, &["10.244.0.0/16"]));
    assert_eq!(all.decision, Decision::Yes);
    assert!(all.reasons[0].contains("--masquerade-all"), "{all:?}");
    let off = decide(Some("203.0.113.7"), &netfilter(false, &[]));
    assert_eq!(off.decision, Decision::No);
    assert!(off.reasons[0].contains("detection is off"), "{off:?}");
}

#[test]
fn hairpin_traffic_is_masqueraded() {
    let state = state(port(), vec![ep("10.244.1.5", NODE)]);
    let x = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &netfilter(false, &["10.244.0.0/16"]));
    assert_eq!(x.masquerade.decision, Decision::Yes);
    assert!(x.masquerade.reasons.iter().any(|r| r.starts_with("hairpin")), "{:?}", x.masquerade);
    let two = state_with_two_pods();
    let x = ask(&two, "172.30.0.41:80", Some("10.244.1.5"), &netfilter(false, &["10.244.0.0/16"]));
    assert_eq!(x.masquerade.decision, Decision::Depends, "{:?}", x.masquerade);
}

fn state_with_two_pods() -> ProxyState {
    state(port(), vec![ep("10.244.1.5", NODE), ep("10.244.2.5", "node2")])
}

#[test]
fn relay_and_socket_level_modes_say_how_they_treat_the_source() {
    let state = state(port(), two_endpoints());
    let profile =
        |masquerade| ModeProfile { mode: "m".to_owned(), masquerade, pods: PodDetection::ClusterCidrs(Vec::new()) };
    let relay = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &profile(MasqueradeModel::Relay));
    assert_eq!(relay.masquerade.decision, Decision::Yes);
    let kept = ask(&state, "172.30.0.41:80", Some("203.0.113.7"), &profile(MasqueradeModel::SourceKept));
    assert_eq!(kept.masquerade.decision, Decision::No);
    let unknown = ask(&state, "172.30.0.41:80", None, &ModeProfile::unknown("m"));
    assert_eq!(unknown.masquerade.decision, Decision::Depends);
}

#[test]
fn session_affinity_is_reported() {
    let port = ServicePort { session_affinity: SessionAffinity::ClientIp { timeout_seconds: 300 }, ..port() };
    let state = state(port, two_endpoints());
    let x = ask(&state, "172.30.0.41:80", None, &netfilter(false, &[]));
    assert_eq!(x.service.as_ref().and_then(|s| s.session_affinity_seconds), Some(300));
    assert!(x.notes.iter().any(|n| n.contains("ClientIP session affinity") && n.contains("300s")), "{:?}", x.notes);
}

#[test]
fn the_mode_names_its_rules_for_the_matched_path() {
    let state = state(node_port_local(), two_endpoints());
    let query = Query { destination: "192.168.0.2:30080".parse().expect("dst"), source: None };
    let x = explain(&state, &query, &netfilter(false, &[]), |target| {
        assert_eq!((target.matched_by, target.endpoint_set), (MatchKind::NodePort, EndpointSet::Local));
        assert_eq!(target.entry.name, &name("svc1"));
        vec![RuleRef::new("chain", "ip kproxy", "local-1", None)]
    });
    assert_eq!(x.rules, [RuleRef::new("chain", "ip kproxy", "local-1", None)]);
}

#[test]
fn ipv6_destinations_use_the_ipv6_view() {
    let v6 = ServicePort::new(ip("fd00::41"), 53, Protocol::Udp);
    let mut state = state(v6, vec![Endpoint::new(ip("fd00:10::1"), 5353)]);
    state.family_mut(IpFamily::V6).services.insert(
        ServicePortName::new(NamespacedName::new("ns1", "dns"), "", Protocol::Udp),
        ServicePort::new(ip("fd00::53"), 53, Protocol::Udp),
    );
    let x = ask(&state, "[fd00::41]:53/udp", None, &netfilter(false, &[]));
    assert_eq!(x.service.as_ref().map(|s| s.family), Some(IpFamily::V6));
    assert_eq!(eligible(&x), ["[fd00:10::1]:5353"]);
}

#[test]
fn the_json_field_names_are_stable() {
    let state = state(port(), two_endpoints());
    let x = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &netfilter(false, &["10.244.0.0/16"]));
    let json = serde_json::to_value(&x).expect("serializable");
    let keys: Vec<&str> = json.as_object().expect("object").keys().map(String::as_str).collect();
    let mut expected = [
        "destination",
        "source",
        "source_kind",
        "node",
        "mode",
        "service",
        "verdict",
        "verdict_reason",
        "endpoints",
        "masquerade",
        "rules",
        "notes",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(json["destination"], serde_json::json!({"ip": "172.30.0.41", "port": 80, "protocol": "TCP"}));
    assert_eq!(json["service"]["matched_by"], "cluster_ip");
    assert_eq!(json["service"]["family"], "IPv4");
    assert_eq!(json["verdict"], "forward");
    assert_eq!(json["masquerade"]["decision"], "no");
    assert_eq!(json["source_kind"], "pod");
    assert_eq!(json["endpoints"][0]["eligible"], true);
    let back: Explanation = serde_json::from_value(json).expect("deserializable");
    assert_eq!(back, x);
}

#[test]
fn interface_detection_cannot_tell_a_pod_by_its_address() {
    let state = state(port(), two_endpoints());
    let profile = ModeProfile {
        mode: "iptables".to_owned(),
        masquerade: MasqueradeModel::Netfilter { masquerade_all: false },
        pods: PodDetection::Interface("bridge cbr0".to_owned()),
    };
    let x = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &profile);
    assert_eq!(x.source_kind, SourceKind::Unknown, "an address does not say which interface it came through");
    assert_eq!(x.masquerade.decision, Decision::Depends);
    assert!(x.masquerade.reasons[0].contains("arrives through bridge cbr0"), "{:?}", x.masquerade.reasons);
    let from_node = ask(&state, "172.30.0.41:80", Some(NODE_IP), &profile);
    assert_eq!(from_node.masquerade.decision, Decision::Yes, "{:?}", from_node.masquerade.reasons);
}

#[test]
fn node_cidr_detection_uses_the_nodes_pod_cidrs() {
    let mut state = state(port(), two_endpoints());
    let profile = ModeProfile {
        mode: "nftables".to_owned(),
        masquerade: MasqueradeModel::Netfilter { masquerade_all: false },
        pods: PodDetection::NodeCidrs,
    };
    let before = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &profile);
    assert_eq!(before.masquerade.decision, Decision::No, "no pod CIDR yet: detection off");
    state.node.pod_cidrs = vec!["10.244.1.0/24".parse().expect("cidr")];
    let pod = ask(&state, "172.30.0.41:80", Some("10.244.1.5"), &profile);
    assert_eq!((pod.source_kind, pod.masquerade.decision), (SourceKind::Pod, Decision::No));
    let other = ask(&state, "172.30.0.41:80", Some("10.244.2.5"), &profile);
    assert_eq!((other.source_kind, other.masquerade.decision), (SourceKind::Other, Decision::Yes));
}
