use std::net::IpAddr;

use kproxy_core::{NamespacedName, Protocol, ServicePortName};

use super::*;
use crate::render::plan::Role;

fn key(svc: &str, role: Role) -> ListenerKey {
    let name = ServicePortName::new(NamespacedName::new("ns", svc), "p", Protocol::Tcp);
    ListenerKey { family: IpFamily::V4, name, role }
}

fn family_plan(portal: Option<&str>) -> FamilyPlan {
    let mut elements = BTreeMap::new();
    elements.insert((Set::Internal, "172.30.0.1 . tcp . 80".to_owned()), Some(key("a", Role::Cluster)));
    elements.insert((Set::ServiceIps, "172.30.0.1 . tcp . 80".to_owned()), None);
    elements.insert((Set::ExternalNodePorts, "tcp . 30080".to_owned()), Some(key("a", Role::Local)));
    elements.insert((Set::NoEndpoints, "172.30.0.2 . udp . 53".to_owned()), None);
    FamilyPlan {
        family: IpFamily::V4,
        portal_ip: portal.map(|p| p.parse::<IpAddr>().unwrap()),
        local_detect: Default::default(),
        elements,
    }
}

fn ports(cluster: u16) -> BTreeMap<ListenerKey, u16> {
    BTreeMap::from([(key("a", Role::Cluster), cluster), (key("a", Role::Local), 40002)])
}

#[test]
fn full_script_replaces_the_table_and_fills_in_ports() {
    let rules = render("kproxy-userspace", &family_plan(Some("192.168.0.2")), &ports(40001));
    let script = full_script(&rules);
    let expected_lines = [
        "table ip kproxy-userspace {}",
        "delete table ip kproxy-userspace",
        "\tmap internal { type ipv4_addr . inet_proto . inet_service : inet_service; }",
        "\t\tmeta l4proto { tcp, udp } dnat ip to 192.168.0.2 : ip daddr . meta l4proto . th dport map @internal",
        "\t\tmeta l4proto { tcp, udp } redirect to : ip daddr . meta l4proto . th dport map @internal",
        "\t\tip daddr . meta l4proto . th dport @no-endpoints goto reject-packet",
        "add element ip kproxy-userspace internal { 172.30.0.1 . tcp . 80 : 40001 }",
        "add element ip kproxy-userspace external-nodeports { tcp . 30080 : 40002 }",
        "add element ip kproxy-userspace no-endpoints { 172.30.0.2 . udp . 53 }",
    ];
    for line in expected_lines {
        assert!(script.lines().any(|l| l == line), "missing {line:?} in\n{script}");
    }
}

#[test]
fn without_a_portal_address_prerouting_redirects() {
    let rules = render("t", &family_plan(None), &ports(40001));
    assert!(!rules.fixed.contains("dnat"), "{}", rules.fixed);
}

#[test]
fn ipv6_uses_ip6_words_and_a_bracketed_portal() {
    let plan = FamilyPlan {
        family: IpFamily::V6,
        portal_ip: Some("fd00::2".parse().unwrap()),
        local_detect: Default::default(),
        elements: BTreeMap::new(),
    };
    let rules = render("t", &plan, &BTreeMap::new());
    assert_eq!(rules.family, "ip6");
    assert!(rules.fixed.contains("dnat ip6 to [fd00::2] : ip6 daddr . meta l4proto . th dport map @internal"));
    assert!(rules.fixed.contains("reject with icmpv6 port-unreachable"));
    assert!(rules.fixed.contains("map short { type ipv6_addr . inet_proto . inet_service : inet_service; }"));
}

#[test]
fn map_elements_without_a_bound_listener_are_left_out() {
    let rules = render("t", &family_plan(None), &BTreeMap::from([(key("a", Role::Cluster), 40001)]));
    assert!(!rules.elements.iter().any(|(set, _, _)| *set == Set::ExternalNodePorts));
    assert_eq!(rules.elements.len(), 3);
}

#[test]
fn patch_moves_changed_ports_and_nothing_else() {
    let before = render("t", &family_plan(None), &ports(40001));
    assert_eq!(patch_script(&before, &before), None);
    let after = render("t", &family_plan(None), &ports(40009));
    let patch = patch_script(&before, &after).unwrap();
    assert_eq!(
        patch,
        "delete element ip t internal { 172.30.0.1 . tcp . 80 }\nadd element ip t internal { 172.30.0.1 . tcp . 80 : 40009 }\n"
    );
}

#[test]
fn long_element_lists_are_chunked() {
    let mut plan = family_plan(None);
    for i in 0..1200u32 {
        plan.elements.insert((Set::ServiceIps, format!("172.31.{}.{} . tcp . 80", i / 256, i % 256)), None);
    }
    let script = full_script(&render("t", &plan, &ports(1)));
    assert_eq!(script.lines().filter(|l| l.starts_with("add element ip t service-ips")).count(), 3);
}

#[test]
fn cleanup_tolerates_a_missing_table() {
    assert_eq!(cleanup_script("ip6", "t"), "table ip6 t {}\ndelete table ip6 t\n");
}
