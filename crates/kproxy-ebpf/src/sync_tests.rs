use std::net::SocketAddr;

use kproxy_core::{IpFamily, NamespacedName, Protocol, ServicePortName};

use super::*;
use crate::layout::KpRangeKey;
use crate::maps::{FakeMaps, Write};
use crate::plan::{Entry, ExternalEntry};

fn name(service: &str) -> PortKey {
    (IpFamily::V4, ServicePortName::new(NamespacedName::new("ns", service), "http", Protocol::Tcp))
}

fn key(addr: &str) -> KpServiceKey {
    let addr: SocketAddr = addr.parse().unwrap();
    KpServiceKey::new(addr.ip(), addr.port(), Protocol::Tcp)
}

fn plan(vip: &str, endpoints: &[&str]) -> PortPlan {
    let set = endpoints.iter().map(|e| KpAddr::new(e.parse().unwrap())).collect();
    PortPlan {
        sets: [(Role::Cluster, set)].into(),
        entries: [(key(vip), Entry { role: Role::Cluster, flags: 0, affinity_secs: 0 })].into(),
        ..PortPlan::default()
    }
}

fn seen(maps: &FakeMaps, vip: &str) -> Option<Vec<String>> {
    maps.snapshot().endpoints_of(&key(vip)).map(|v| v.iter().map(ToString::to_string).collect())
}

fn apply(committed: &mut Committed, maps: &mut FakeMaps, port: &PortKey, plan: Option<&PortPlan>) -> Written {
    let mut written = Written::default();
    committed.apply(maps, port, plan, false, &mut written).unwrap();
    written
}

#[test]
fn growing_writes_slots_before_the_count_and_shrinking_deletes_them_after() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    let port = name("web");
    apply(&mut committed, &mut maps, &port, Some(&plan("172.30.0.1:80", &["10.0.0.1:80"])));
    apply(
        &mut committed,
        &mut maps,
        &port,
        Some(&plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])),
    );
    assert_eq!(seen(&maps, "172.30.0.1:80").unwrap(), ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
    apply(&mut committed, &mut maps, &port, Some(&plan("172.30.0.1:80", &["10.0.0.3:80"])));
    assert_eq!(seen(&maps, "172.30.0.1:80").unwrap(), ["10.0.0.3:80"]);
    let tables = maps.snapshot();
    assert!(tables.holes.is_empty(), "a lookup could have hit a hole: {:?}", tables.holes);
    assert_eq!(tables.endpoints.len(), 1, "slots past the count are removed");
}

#[test]
fn an_unchanged_port_writes_nothing_and_one_endpoint_change_writes_one_slot() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    let port = name("web");
    let first = plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80"]);
    assert_eq!(apply(&mut committed, &mut maps, &port, Some(&first)).writes, 3);
    assert_eq!(apply(&mut committed, &mut maps, &port, Some(&first)).writes, 0);
    let second = plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.9:80"]);
    assert_eq!(apply(&mut committed, &mut maps, &port, Some(&second)).writes, 1);
    let log = maps.snapshot().log;
    assert!(matches!(log.last(), Some(Write::PutEndpoint(k, _)) if k.slot == 1), "{log:?}");
}

#[test]
fn removing_a_port_removes_its_address_before_its_slots() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    let port = name("web");
    apply(&mut committed, &mut maps, &port, Some(&plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80"])));
    apply(&mut committed, &mut maps, &port, None);
    let tables = maps.snapshot();
    assert!(tables.services.is_empty() && tables.endpoints.is_empty(), "{tables:?}");
    assert!(tables.holes.is_empty(), "{:?}", tables.holes);
    assert_eq!(committed.ports().count(), 0);
}

#[test]
fn an_address_moving_to_another_port_is_not_removed_by_the_loser() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    let (older, newer) = (name("older"), name("newer"));
    apply(&mut committed, &mut maps, &newer, Some(&plan("192.168.99.11:80", &["10.0.0.2:80"])));
    // The older port wins the address first, then the newer one is written without it.
    apply(&mut committed, &mut maps, &older, Some(&plan("192.168.99.11:80", &["10.0.0.1:80"])));
    apply(&mut committed, &mut maps, &newer, Some(&plan("172.30.0.2:80", &["10.0.0.2:80"])));
    assert_eq!(seen(&maps, "192.168.99.11:80").unwrap(), ["10.0.0.1:80"]);
    assert_eq!(seen(&maps, "172.30.0.2:80").unwrap(), ["10.0.0.2:80"]);
    assert_eq!(committed.service_addresses(), 2);
}

#[test]
fn after_a_failed_write_a_full_rewrite_converges_and_removes_what_was_half_written() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    let port = name("web");
    maps.fail_after(Some(2));
    let mut written = Written::default();
    let big = plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
    assert!(committed.apply(&mut maps, &port, Some(&big), false, &mut written).is_err());
    maps.fail_after(None);
    assert!(maps.snapshot().services.is_empty(), "the address is written only after its slots");
    committed.apply(&mut maps, &port, None, true, &mut written).unwrap();
    let tables = maps.snapshot();
    assert!(tables.services.is_empty() && tables.endpoints.is_empty(), "{tables:?}");
}

/// `plan` with `vip` also for traffic from outside, guarded by `ranges`.
fn guarded(vip: &str, endpoints: &[&str], ranges: &[&str]) -> PortPlan {
    let mut plan = plan(vip, endpoints);
    let entry = Entry { role: Role::Cluster, flags: crate::layout::SVC_SNAT, affinity_secs: 0 };
    let external = ExternalEntry { entry, snat: Some("192.168.0.2".parse().unwrap()), source_ranges: true };
    plan.external.insert(key(vip), external);
    plan.source_ranges = ranges.iter().map(|r| r.parse().unwrap()).collect();
    plan
}

#[test]
fn source_ranges_are_written_before_the_address_they_guard_and_removed_after_it() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    let port = name("lb");
    apply(&mut committed, &mut maps, &port, Some(&guarded("1.2.3.4:80", &["10.0.0.1:80"], &["192.168.0.10/32"])));
    let tables = maps.snapshot();
    let value = tables.external[&key("1.2.3.4:80")];
    assert_eq!(value.ranges_id, value.service.id, "ranges live under the set's id");
    let range = KpRangeKey::new(value.ranges_id, "192.168.0.10/32".parse().unwrap());
    assert!(tables.ranges.contains(&range));
    let position = |w: &Write| tables.log.iter().position(|x| x == w).unwrap();
    assert!(position(&Write::PutRange(range)) < position(&Write::PutExternal(key("1.2.3.4:80"), value)));
    assert_eq!(tables.external_endpoints_of(&key("1.2.3.4:80")).unwrap().len(), 1);

    apply(&mut committed, &mut maps, &port, Some(&guarded("1.2.3.4:80", &["10.0.0.1:80"], &["192.168.0.0/24"])));
    let tables = maps.snapshot();
    assert_eq!(tables.ranges.len(), 1, "the old range is gone: {:?}", tables.ranges);
    apply(&mut committed, &mut maps, &port, None);
    let tables = maps.snapshot();
    assert!(tables.external.is_empty() && tables.ranges.is_empty() && tables.endpoints.is_empty());
    let (removed_address, removed_range) = (
        tables.log.iter().rposition(|w| matches!(w, Write::DeleteExternal(_))).unwrap(),
        tables.log.iter().rposition(|w| matches!(w, Write::DeleteRange(_))).unwrap(),
    );
    assert!(removed_address < removed_range, "the address goes before the range that guards it");
    assert!(tables.holes.is_empty(), "{:?}", tables.holes);
}

/// The set id behind each service address.
fn ids(maps: &FakeMaps) -> std::collections::BTreeMap<SocketAddr, u32> {
    maps.snapshot().services.iter().map(|(k, v)| (k.socket_addr(), v.id)).collect()
}

/// Writes `plans` in full over maps taken over from a previous kproxy, then sweeps.
fn take_over(maps: &mut FakeMaps, plans: &[(PortKey, PortPlan)]) -> Committed {
    let mut committed = Committed::new();
    committed.adopt(maps.contents().unwrap());
    let mut written = Written::default();
    for (port, plan) in plans {
        committed.apply(maps, port, Some(plan), true, &mut written).unwrap();
    }
    committed.sweep(maps, &mut written).unwrap();
    assert!(!committed.has_leftovers());
    committed
}

#[test]
fn maps_of_a_previous_kproxy_are_taken_over_in_place_and_what_is_gone_is_swept() {
    let (mut before, mut maps) = (Committed::new(), FakeMaps::new());
    let (web, api, old, new) = (name("web"), name("api"), name("old"), name("new"));
    apply(&mut before, &mut maps, &web, Some(&plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80"])));
    apply(&mut before, &mut maps, &api, Some(&plan("172.30.0.2:80", &["10.0.0.3:80"])));
    apply(&mut before, &mut maps, &old, Some(&plan("172.30.0.3:80", &["10.0.0.4:80"])));
    let ids_before = ids(&maps);

    // The next kproxy: web lost an endpoint, api is unchanged, old is gone, new is new.
    let plans = [
        (web, plan("172.30.0.1:80", &["10.0.0.2:80"])),
        (api, plan("172.30.0.2:80", &["10.0.0.3:80"])),
        (new, plan("172.30.0.4:80", &["10.0.0.5:80"])),
    ];
    take_over(&mut maps, &plans);
    let tables = maps.snapshot();
    assert!(tables.holes.is_empty(), "a lookup could have hit a hole: {:?}", tables.holes);
    assert_eq!(seen(&maps, "172.30.0.1:80").unwrap(), ["10.0.0.2:80"]);
    assert_eq!(seen(&maps, "172.30.0.2:80").unwrap(), ["10.0.0.3:80"]);
    assert_eq!(seen(&maps, "172.30.0.4:80").unwrap(), ["10.0.0.5:80"]);
    assert_eq!(seen(&maps, "172.30.0.3:80"), None, "a service gone while no kproxy ran is removed");
    assert_eq!(tables.endpoints.len(), 3, "no slot is left behind: {:?}", tables.endpoints);
    let ids_after = ids(&maps);
    let addr = |a: &str| a.parse::<SocketAddr>().unwrap();
    for vip in ["172.30.0.1:80", "172.30.0.2:80"] {
        assert_eq!(ids_after[&addr(vip)], ids_before[&addr(vip)], "{vip}'s slots are rewritten in place");
    }
    assert!(ids_after[&addr("172.30.0.4:80")] > *ids_before.values().max().unwrap(), "new ids never collide");
}

#[test]
fn a_set_id_another_address_used_is_not_taken_over() {
    let (mut before, mut maps) = (Committed::new(), FakeMaps::new());
    let (web, other) = (name("web"), name("other"));
    let mut both = plan("172.30.0.1:80", &["10.0.0.1:80"]);
    both.entries.insert(key("192.168.99.11:80"), Entry { role: Role::Cluster, flags: 0, affinity_secs: 0 });
    apply(&mut before, &mut maps, &web, Some(&both));
    let shared = ids(&maps)[&"172.30.0.1:80".parse().unwrap()];

    // The external IP moved to another service while no kproxy ran.
    let plans = [(web, plan("172.30.0.1:80", &["10.0.0.1:80"])), (other, plan("192.168.99.11:80", &["10.0.0.9:80"]))];
    take_over(&mut maps, &plans);
    let tables = maps.snapshot();
    assert!(tables.holes.is_empty(), "{:?}", tables.holes);
    assert!(ids(&maps).values().all(|id| *id != shared), "neither port may write into the shared set");
    assert_eq!(seen(&maps, "172.30.0.1:80").unwrap(), ["10.0.0.1:80"]);
    assert_eq!(seen(&maps, "192.168.99.11:80").unwrap(), ["10.0.0.9:80"]);
    assert_eq!(tables.endpoints.len(), 2, "the shared set's slots are swept: {:?}", tables.endpoints);
}

#[test]
fn a_port_that_would_overflow_a_map_is_not_written_and_the_others_are() {
    let sizes = crate::config::MapSizes { services: 2, endpoints: 3, ..crate::config::MapSizes::default() };
    let (mut committed, mut maps) = (Committed::with_sizes(&sizes), FakeMaps::new());
    let (web, api, db) = (name("web"), name("api"), name("db"));
    apply(&mut committed, &mut maps, &web, Some(&plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80"])));

    let mut written = Written::default();
    let two = plan("172.30.0.2:80", &["10.0.0.3:80", "10.0.0.4:80"]);
    let error = committed.apply(&mut maps, &api, Some(&two), false, &mut written).unwrap_err();
    assert!(matches!(&error, WriteError::Full(full) if full.map == "kp_endpoints" && full.needed == 1), "{error}");
    assert!(error.to_string().contains("ns/api"), "the message names the port: {error}");
    assert_eq!((seen(&maps, "172.30.0.2:80"), written.writes), (None, 0), "nothing of it is written");
    assert_eq!(committed.usage(), Usage { services: 1, external: 0, endpoints: 2, ranges: 0 });

    // Once web shrinks, api fits; a third address does not fit kp_services.
    apply(&mut committed, &mut maps, &web, Some(&plan("172.30.0.1:80", &["10.0.0.1:80"])));
    apply(&mut committed, &mut maps, &api, Some(&two));
    assert_eq!(seen(&maps, "172.30.0.2:80").unwrap(), ["10.0.0.3:80", "10.0.0.4:80"]);
    assert_eq!(committed.usage(), Usage { services: 2, external: 0, endpoints: 3, ranges: 0 });
    let error = committed.apply(&mut maps, &db, Some(&plan("172.30.0.3:80", &[])), false, &mut written).unwrap_err();
    assert!(matches!(&error, WriteError::Full(full) if full.map == "kp_services"), "{error}");
    // Removing always works.
    apply(&mut committed, &mut maps, &web, None);
    assert_eq!(committed.usage(), Usage { services: 1, external: 0, endpoints: 2, ranges: 0 });
    assert!(maps.snapshot().holes.is_empty());
}

#[test]
fn endpoints_in_use_are_found_among_few_and_among_many() {
    let (mut committed, mut maps) = (Committed::new(), FakeMaps::new());
    apply(&mut committed, &mut maps, &name("web"), Some(&plan("172.30.0.1:80", &["10.0.0.1:80", "10.0.0.2:80"])));
    apply(&mut committed, &mut maps, &name("api"), Some(&plan("172.30.0.2:80", &["10.0.0.3:80"])));
    let addrs = |list: &[&str]| -> BTreeSet<KpAddr> { list.iter().map(|a| KpAddr::new(a.parse().unwrap())).collect() };
    assert_eq!(committed.in_use(&addrs(&["10.0.0.1:80", "10.0.0.9:80"])), addrs(&["10.0.0.1:80"]));
    let many: Vec<String> = (1..=12).map(|i| format!("10.0.0.{i}:80")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(committed.in_use(&addrs(&many)), addrs(&["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]));
}
