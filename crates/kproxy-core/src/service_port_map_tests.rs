use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::claims::{Claim, ClaimKind};
use crate::names::Protocol;

fn name(ns: &str, svc: &str) -> ServicePortName {
    ServicePortName::new(NamespacedName::new(ns, svc), "http", Protocol::Tcp)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn at(seconds: u64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

fn port(cluster_ip: &str, created: Option<SystemTime>) -> ServicePort {
    ServicePort { created, ..ServicePort::new(ip(cluster_ip), 80, Protocol::Tcp) }
}

fn with_external(mut p: ServicePort, ips: &[&str]) -> ServicePort {
    p.external_ips = ips.iter().map(|i| ip(i)).collect();
    p
}

#[test]
fn older_service_wins_a_shared_external_ip_and_the_other_keeps_its_cluster_ip() {
    let mut map = ServicePortMap::default();
    map.insert(name("b", "new"), with_external(port("10.0.0.2", at(200)), &["192.0.2.10"]));
    map.insert(name("a", "old"), with_external(port("10.0.0.1", at(100)), &["192.0.2.10"]));
    assert_eq!(map.get(&name("a", "old")).unwrap().external_ips, vec![ip("192.0.2.10")]);
    let loser = map.get(&name("b", "new")).unwrap();
    assert!(loser.external_ips.is_empty());
    assert_eq!(loser.cluster_ip, ip("10.0.0.2"));
    let conflicts = map.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].winner, name("a", "old"));
    assert_eq!(conflicts[0].loser, name("b", "new"));
    assert_eq!(conflicts[0].kind, ClaimKind::ExternalIp);
    assert_eq!(conflicts[0].claim, Claim::Address { ip: ip("192.0.2.10"), protocol: Protocol::Tcp, port: 80 });
}

#[test]
fn same_age_falls_back_to_namespace_and_name() {
    let mut map = ServicePortMap::default();
    map.insert(name("ns", "zeta"), with_external(port("10.0.0.2", at(5)), &["192.0.2.10"]));
    map.insert(name("ns", "alpha"), with_external(port("10.0.0.1", at(5)), &["192.0.2.10"]));
    assert_eq!(map.conflicts()[0].winner, name("ns", "alpha"));
    // Without creation times, the name decides too; a Service with one is older than one without.
    let mut map = ServicePortMap::default();
    map.insert(name("ns", "alpha"), with_external(port("10.0.0.1", None), &["192.0.2.10"]));
    map.insert(name("ns", "zeta"), with_external(port("10.0.0.2", at(5)), &["192.0.2.10"]));
    assert_eq!(map.conflicts()[0].winner, name("ns", "zeta"));
}

#[test]
fn the_next_claimant_takes_over_when_the_winner_is_deleted() {
    let mut map = ServicePortMap::default();
    map.insert(name("a", "old"), with_external(port("10.0.0.1", at(1)), &["192.0.2.10"]));
    map.insert(name("b", "new"), with_external(port("10.0.0.2", at(2)), &["192.0.2.10"]));
    let changed = map.remove(&name("a", "old"));
    assert_eq!(changed, [name("a", "old"), name("b", "new")].into());
    assert_eq!(map.get(&name("b", "new")).unwrap().external_ips, vec![ip("192.0.2.10")]);
    assert!(map.conflicts().is_empty());
}

#[test]
fn apply_reports_the_loser_as_changed_when_it_regains_a_claim() {
    let old = name("a", "old");
    let new = name("b", "new");
    let old_port = with_external(port("10.0.0.1", at(1)), &["192.0.2.10"]);
    let new_port = with_external(port("10.0.0.2", at(2)), &["192.0.2.10"]);
    let mut map = ServicePortMap::default();
    let added = map.apply(&[
        (
            old.service.clone(),
            ServiceChange { previous: Default::default(), current: [(old.clone(), old_port.clone())].into() },
        ),
        (
            new.service.clone(),
            ServiceChange { previous: Default::default(), current: [(new.clone(), new_port.clone())].into() },
        ),
    ]);
    assert_eq!(added, [old.clone(), new.clone()].into());
    let deleted = map.apply(&[(
        old.service.clone(),
        ServiceChange { previous: [(old.clone(), old_port)].into(), current: Default::default() },
    )]);
    assert_eq!(deleted, [old, new.clone()].into(), "the loser's programmed form changed");
    assert_eq!(map.get(&new), Some(&new_port));
}

#[test]
fn a_node_port_conflict_costs_only_the_node_port() {
    let mut map = ServicePortMap::default();
    map.insert(name("a", "old"), ServicePort { node_port: Some(30080), ..port("10.0.0.1", at(1)) });
    map.insert(name("b", "new"), ServicePort { node_port: Some(30080), ..port("10.0.0.2", at(2)) });
    assert_eq!(map.get(&name("a", "old")).unwrap().node_port, Some(30080));
    assert_eq!(map.get(&name("b", "new")).unwrap().node_port, None);
    assert_eq!(map.conflicts().len(), 1);
}

#[test]
fn a_lost_cluster_ip_leaves_the_port_out() {
    let mut map = ServicePortMap::default();
    map.insert(name("a", "old"), port("10.0.0.1", at(1)));
    map.insert(name("b", "copy"), with_external(port("10.0.0.1", at(2)), &["192.0.2.10"]));
    assert_eq!(map.len(), 1);
    assert!(map.get(&name("b", "copy")).is_none());
    map.remove(&name("a", "old"));
    assert_eq!(map.get(&name("b", "copy")).unwrap().external_ips, vec![ip("192.0.2.10")]);
}

#[test]
fn an_address_claimed_twice_by_one_port_is_kept_once_and_is_no_conflict() {
    let mut map = ServicePortMap::default();
    let mut p = with_external(port("10.0.0.1", at(1)), &["192.0.2.10", "192.0.2.10", "10.0.0.1"]);
    p.load_balancer_vips = vec![ip("192.0.2.10"), ip("192.0.2.20")];
    map.insert(name("a", "svc"), p);
    let programmed = map.get(&name("a", "svc")).unwrap();
    assert_eq!(programmed.external_ips, vec![ip("192.0.2.10")]);
    assert_eq!(programmed.load_balancer_vips, vec![ip("192.0.2.20")]);
    assert!(map.conflicts().is_empty());
}

#[test]
fn different_ports_or_protocols_on_one_address_do_not_conflict() {
    let mut map = ServicePortMap::default();
    map.insert(name("a", "one"), with_external(port("10.0.0.1", at(1)), &["192.0.2.10"]));
    let udp = ServicePortName::new(NamespacedName::new("b", "two"), "dns", Protocol::Udp);
    let udp_port =
        ServicePort { external_ips: vec![ip("192.0.2.10")], ..ServicePort::new(ip("10.0.0.2"), 80, Protocol::Udp) };
    map.insert(udp.clone(), udp_port);
    let other_port = ServicePort { port: 81, ..with_external(port("10.0.0.3", at(3)), &["192.0.2.10"]) };
    map.insert(name("c", "three"), other_port);
    assert!(map.conflicts().is_empty());
    assert_eq!(map.get(&udp).unwrap().external_ips.len(), 1);
}

#[test]
fn conflicts_resolve_the_same_whatever_the_order_of_arrival() {
    let ports = [
        (name("a", "one"), with_external(port("10.0.0.1", at(3)), &["192.0.2.10", "192.0.2.11"])),
        (name("b", "two"), with_external(port("10.0.0.2", at(1)), &["192.0.2.11"])),
        (name("c", "three"), with_external(port("10.0.0.3", at(2)), &["192.0.2.10", "192.0.2.11"])),
    ];
    let forward = ports.iter().cloned().fold(ServicePortMap::default(), |mut m, (n, p)| {
        m.insert(n, p);
        m
    });
    let backward = ports.iter().rev().cloned().fold(ServicePortMap::default(), |mut m, (n, p)| {
        m.insert(n, p);
        m
    });
    assert_eq!(forward.iter().collect::<Vec<_>>(), backward.iter().collect::<Vec<_>>());
    assert_eq!(forward.conflicts(), backward.conflicts());
    assert_eq!(forward.get(&name("c", "three")).unwrap().external_ips, vec![ip("192.0.2.10")]);
    assert!(forward.get(&name("a", "one")).unwrap().external_ips.is_empty());
}
