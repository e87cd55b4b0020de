use super::*;

use k8s_openapi::api::core::v1::NodeAddress;
use kproxy_testkit::node;

use crate::convert::{LABEL_TOPOLOGY_ZONE, NameRule};
use crate::error::Invalid;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IP")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test CIDR")
}

fn address(type_: &str, address: &str) -> NodeAddress {
    NodeAddress { type_: type_.to_owned(), address: address.to_owned() }
}

fn with_addresses(mut n: Node, addresses: Vec<NodeAddress>) -> Node {
    n.status.get_or_insert_with(Default::default).addresses = Some(addresses);
    n
}

#[test]
fn named_node_has_nothing_else() {
    let info = NodeInfo::named("node1");
    assert_eq!(info.name, "node1");
    assert_eq!(info.zone(), None);
    assert!(info.labels.is_empty() && info.addresses.is_empty() && info.pod_cidrs.is_empty());
}

#[test]
fn full_node() {
    let n = node("node1")
        .zone("zone-a")
        .label("kubernetes.io/hostname", "node1")
        .internal_ip("192.168.0.2")
        .internal_ip("fd00:192:168::2")
        .pod_cidr("10.0.1.0/24")
        .pod_cidr("fd00:10:0:1::/64")
        .build();
    let info = NodeInfo::from_node(&n).expect("valid node");
    assert_eq!(info.name, "node1");
    assert_eq!(info.zone(), Some("zone-a"));
    assert_eq!(info.labels.get("kubernetes.io/hostname").map(String::as_str), Some("node1"));
    assert_eq!(info.addresses, vec![ip("192.168.0.2"), ip("fd00:192:168::2")]);
    assert_eq!(info.pod_cidrs, vec![net("10.0.1.0/24"), net("fd00:10:0:1::/64")]);
}

#[test]
fn only_ip_typed_addresses_are_parsed() {
    let n = with_addresses(
        node("node1").build(),
        vec![
            address("Hostname", "node1"),
            address("InternalDNS", "node1.cluster.local"),
            address("InternalIP", "192.168.0.2"),
            address("ExternalIP", " 203.0.113.7 "),
            address("ExternalDNS", "node1.example.com"),
        ],
    );
    let info = NodeInfo::from_node(&n).expect("valid node");
    assert_eq!(info.addresses, vec![ip("192.168.0.2"), ip("203.0.113.7")]);
}

#[test]
fn pod_cidr_host_bits_are_dropped() {
    let info = NodeInfo::from_node(&node("node1").pod_cidr(" 10.0.1.7/24 ").build()).expect("valid node");
    assert_eq!(info.pod_cidrs, vec![net("10.0.1.0/24")]);
}

#[test]
fn node_without_spec_status_or_labels() {
    let mut n = node("node1").build();
    n.spec = None;
    n.status = None;
    let info = NodeInfo::from_node(&n).expect("valid node");
    assert_eq!(info, NodeInfo::named("node1"));
}

#[test]
fn malformed_nodes_name_the_field() {
    let mut unnamed = node("node1").build();
    unnamed.metadata.name = None;
    let cases: Vec<(&str, Node, &str, &str, Invalid)> = vec![
        ("missing name", unnamed, "", "metadata.name", Invalid::Missing),
        ("empty name", node("").build(), "", "metadata.name", Invalid::Missing),
        (
            "bad pod CIDR",
            node("node1").pod_cidr("10.0.1.0/24").pod_cidr("fd00::/129").build(),
            "node1",
            "spec.podCIDRs[1]",
            Invalid::Cidr("fd00::/129".into()),
        ),
        (
            "garbage pod CIDR",
            node("node1").pod_cidr("ten-dot-zero").build(),
            "node1",
            "spec.podCIDRs[0]",
            Invalid::Cidr("ten-dot-zero".into()),
        ),
        (
            "bad IP address",
            with_addresses(
                node("node1").build(),
                vec![address("Hostname", "node1"), address("InternalIP", "192.168.0")],
            ),
            "node1",
            "status.addresses[1].address",
            Invalid::Ip("192.168.0".into()),
        ),
    ];
    for (desc, n, object, field, reason) in cases {
        let err = NodeInfo::from_node(&n).expect_err(desc);
        assert_eq!(err.kind, ObjectKind::Node, "{desc}");
        assert_eq!(err.object, NamespacedName::new("", object), "{desc}");
        assert_eq!(err.field, field, "{desc}");
        assert_eq!(err.reason, reason, "{desc}");
        assert!(err.to_string().starts_with("Node /"), "{desc}: {err}");
    }
}

fn error_of(n: &Node) -> (String, Invalid) {
    let err = NodeInfo::from_node(n).expect_err("malformed");
    (err.field, err.reason)
}

fn name_error(field: &str, rule: NameRule, value: &str) -> (String, Invalid) {
    (field.to_owned(), Invalid::Name { rule, value: value.to_owned() })
}

fn hostile() -> Vec<String> {
    let mut values: Vec<String> =
        ["a\"b", "x;y", "a\nb", "a}", "{a", "a b", "nöde", "Node1", "node_1", "-a", "a-", "a..b"]
            .map(String::from)
            .to_vec();
    values.push("a".repeat(254));
    values
}

#[test]
fn node_names_are_dns1123_subdomains() {
    for bad in hostile() {
        let err = NodeInfo::from_node(&node(&bad).build()).expect_err("malformed");
        assert_eq!(err.object, NamespacedName::new("", bad.as_str()));
        assert_eq!((err.field, err.reason), name_error("metadata.name", NameRule::Dns1123Subdomain, &bad), "{bad:?}");
    }
    let fqdn = "node-1.example.com";
    assert_eq!(NodeInfo::from_node(&node(fqdn).build()).map(|n| n.name), Ok(fqdn.to_owned()));
}

#[test]
fn zone_label_is_a_label_value() {
    let field = format!("metadata.labels[{LABEL_TOPOLOGY_ZONE}]");
    for bad in ["a\"b", "x;y", "a\nb", "zöne", "-a", "a/b", "a b"].map(String::from).into_iter().chain(["z".repeat(64)])
    {
        assert_eq!(error_of(&node("node1").zone(&bad).build()), name_error(&field, NameRule::LabelValue, &bad));
    }
    for good in ["", "EU_West.1", "zone-a"] {
        let info = NodeInfo::from_node(&node("node1").zone(good).build()).expect("valid zone");
        assert_eq!(info.zone(), Some(good));
    }
}

#[test]
fn other_labels_follow_the_apiserver_rules() {
    let bad_key = node("node1").label("a\nb", "x").build();
    assert_eq!(error_of(&bad_key), name_error("metadata.labels", NameRule::LabelKey, "a\nb"));
    let bad_value = node("node1").label("role", "x;y").build();
    assert_eq!(error_of(&bad_value), name_error("metadata.labels[role]", NameRule::LabelValue, "x;y"));
    let fine = node("node1").label("example.com/Role_1", "Edge.1").build();
    assert!(NodeInfo::from_node(&fine).is_ok());
}

#[test]
fn primary_addresses_are_the_first_internal_ip_of_each_family_else_the_first_external() {
    let n = with_addresses(
        node("node1").build(),
        vec![
            address("Hostname", "node1"),
            address("ExternalIP", "203.0.113.7"),
            address("InternalIP", "192.168.0.2"),
            address("InternalIP", "192.168.0.50"),
            address("ExternalIP", "2001:db8::7"),
        ],
    );
    let info = NodeInfo::from_node(&n).expect("valid");
    assert_eq!(info.primary_addresses, [ip("192.168.0.2"), ip("2001:db8::7")]);
    assert_eq!(info.addresses.len(), 4);
}
