use super::*;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, UNIX_EPOCH};

use kproxy_testkit::ip_plan::{NODE_IP, NODE_NAME};
use kproxy_testkit::{node, service, slice};

use crate::error::ObjectKind;
use crate::names::{Protocol, ServicePortName};

fn nsn(namespace: &str, name: &str) -> NamespacedName {
    NamespacedName::new(namespace, name)
}

fn tcp(namespace: &str, name: &str, port: &str) -> ServicePortName {
    ServicePortName::new(nsn(namespace, name), port, Protocol::Tcp)
}

fn udp(namespace: &str, name: &str, port: &str) -> ServicePortName {
    ServicePortName::new(nsn(namespace, name), port, Protocol::Udp)
}

fn ports<const N: usize>(names: [ServicePortName; N]) -> BTreeSet<ServicePortName> {
    names.into_iter().collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A tracker and the state it checks out into, past the initial full sync.
fn synced() -> (ChangeTracker, ProxyState) {
    let mut tracker = ChangeTracker::new(NODE_NAME, UNIX_EPOCH);
    let mut state = ProxyState::new(NODE_NAME);
    assert!(tracker.checkout_into(&mut state).full());
    (tracker, state)
}

fn svc1() -> Service {
    service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build()
}

fn dual_stack_svc1() -> Service {
    service("ns1", "svc1").cluster_ips(&["172.30.0.41", "fd00:172:30::41"]).tcp("p80", 80).build()
}

fn v4_slice(name: &str, ips: &[&str]) -> EndpointSlice {
    ips.iter().fold(slice("ns1", "svc1", name).tcp("p80", 8080), |b, ip| b.ready(ip)).build()
}

fn v6_slice(name: &str, ips: &[&str]) -> EndpointSlice {
    ips.iter().fold(slice("ns1", "svc1", name).address_type("IPv6").tcp("p80", 8080), |b, ip| b.ready(ip)).build()
}

fn endpoint_addrs(state: &ProxyState, family: IpFamily, name: &ServicePortName) -> Vec<SocketAddr> {
    state.family(family).endpoints.get(name).iter().map(|e| e.socket_addr()).collect()
}

fn addrs(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn first_checkout_is_full_later_ones_only_when_requested() {
    let mut tracker = ChangeTracker::new(NODE_NAME, UNIX_EPOCH);
    let mut state = ProxyState::new(NODE_NAME);
    assert!(tracker.pending(), "the first sync is always due");
    tracker.on_service_update(&svc1()).unwrap();

    let first = tracker.checkout_into(&mut state);
    assert!(first.full());
    assert_eq!(first.family(IpFamily::V4).service_ports, ports([tcp("ns1", "svc1", "p80")]));
    assert!(!tracker.pending());

    let idle = tracker.checkout_into(&mut state);
    assert!(!idle.full());
    assert!(idle.is_empty());

    tracker.on_slice_update(&v4_slice("svc1-a", &["10.180.0.1"])).unwrap();
    let later = tracker.checkout_into(&mut state);
    assert!(!later.full(), "changes alone do not ask for a full sync");
    assert_eq!(later.family(IpFamily::V4).service_ports, ports([tcp("ns1", "svc1", "p80")]));

    tracker.request_full_sync();
    assert!(tracker.pending());
    let requested = tracker.checkout_into(&mut state);
    assert!(requested.full());
    assert!(requested.family(IpFamily::V4).service_ports.is_empty(), "nothing changed besides the request");
    assert!(!tracker.checkout_into(&mut state).full(), "a request is good for one checkout");
}

#[test]
fn checkout_gives_changed_ports_per_family() {
    let (mut tracker, mut state) = synced();
    let name = tcp("ns1", "svc1", "p80");
    tracker.on_service_update(&dual_stack_svc1()).unwrap();
    tracker.on_slice_update(&v4_slice("svc1-v4", &["10.180.0.1"])).unwrap();
    tracker.on_slice_update(&v6_slice("svc1-v6", &["fd00:10:180::1"])).unwrap();

    let changes = tracker.checkout_into(&mut state);
    for family in IpFamily::ALL {
        assert_eq!(changes.family(family).service_ports, ports([name.clone()]), "{family}");
    }
    assert_eq!(state.family(IpFamily::V4).services.get(&name).map(|p| p.cluster_ip), Some(ip("172.30.0.41")));
    assert_eq!(state.family(IpFamily::V6).services.get(&name).map(|p| p.cluster_ip), Some(ip("fd00:172:30::41")));
    assert_eq!(endpoint_addrs(&state, IpFamily::V4, &name), addrs(&["10.180.0.1:8080"]));
    assert_eq!(endpoint_addrs(&state, IpFamily::V6, &name), addrs(&["[fd00:10:180::1]:8080"]));

    // Only the IPv6 endpoints change: only the IPv6 view reports the port.
    tracker.on_slice_update(&v6_slice("svc1-v6", &["fd00:10:180::2"])).unwrap();
    let changes = tracker.checkout_into(&mut state);
    assert!(changes.family(IpFamily::V4).service_ports.is_empty());
    assert_eq!(changes.family(IpFamily::V6).service_ports, ports([name.clone()]));
    assert_eq!(endpoint_addrs(&state, IpFamily::V6, &name), addrs(&["[fd00:10:180::2]:8080"]));
    assert_eq!(endpoint_addrs(&state, IpFamily::V4, &name), addrs(&["10.180.0.1:8080"]));

    // Back to single-stack IPv4: the IPv6 service port goes away (its endpoints stay until
    // their slice goes, as upstream's maps are independent).
    tracker.on_service_update(&svc1()).unwrap();
    let changes = tracker.checkout_into(&mut state);
    assert!(changes.family(IpFamily::V4).service_ports.is_empty());
    assert_eq!(changes.family(IpFamily::V6).service_ports, ports([name.clone()]));
    assert!(state.family(IpFamily::V6).services.is_empty());
    assert_eq!(endpoint_addrs(&state, IpFamily::V6, &name), addrs(&["[fd00:10:180::2]:8080"]));
}

#[test]
fn single_stack_service_only_changes_its_family() {
    let (mut tracker, mut state) = synced();
    tracker.on_service_update(&svc1()).unwrap();
    assert_eq!(tracker.service_changes_pending(), 1);
    let changes = tracker.checkout_into(&mut state);
    assert_eq!(changes.family(IpFamily::V4).service_ports.len(), 1);
    assert!(changes.family(IpFamily::V6).service_ports.is_empty());
    assert!(state.family(IpFamily::V6).services.is_empty());
}

#[test]
fn pending_counts_are_summed_over_families() {
    let (mut tracker, _) = synced();
    assert!(!tracker.pending());
    assert!(tracker.on_service_update(&dual_stack_svc1()).unwrap());
    assert_eq!(tracker.service_changes_pending(), 2, "one per family");
    tracker.on_slice_update(&v4_slice("svc1-v4", &["10.180.0.1"])).unwrap();
    tracker.on_slice_update(&v6_slice("svc1-v6", &["fd00:10:180::1"])).unwrap();
    assert_eq!(tracker.endpoint_changes_pending(), 2);
    let mut state = ProxyState::new(NODE_NAME);
    tracker.checkout_into(&mut state);
    assert_eq!(tracker.service_changes_pending(), 0);
    assert_eq!(tracker.endpoint_changes_pending(), 0);
    assert!(!tracker.pending());
}

#[test]
fn changes_that_cancel_out_leave_nothing_to_do() {
    let (mut tracker, mut state) = synced();
    let s = v4_slice("svc1-a", &["10.180.0.1"]);
    tracker.on_service_update(&svc1()).unwrap();
    tracker.on_slice_update(&s).unwrap();
    tracker.on_service_delete(&nsn("ns1", "svc1"));
    assert!(!tracker.on_slice_delete(&s), "add then delete of both: nothing pending");
    let changes = tracker.checkout_into(&mut state);
    assert!(changes.is_empty());
    assert_eq!(state, ProxyState::new(NODE_NAME));
}

#[test]
fn service_delete_removes_both_families() {
    let (mut tracker, mut state) = synced();
    tracker.on_service_update(&dual_stack_svc1()).unwrap();
    tracker.checkout_into(&mut state);
    assert!(tracker.on_service_delete(&nsn("ns1", "svc1")));
    let changes = tracker.checkout_into(&mut state);
    for family in IpFamily::ALL {
        assert_eq!(changes.family(family).service_ports, ports([tcp("ns1", "svc1", "p80")]), "{family}");
        assert!(state.family(family).services.is_empty(), "{family}");
    }
}

#[test]
fn slice_delete_uses_the_service_label() {
    let (mut tracker, mut state) = synced();
    let s = v4_slice("svc1-a", &["10.180.0.1"]);
    tracker.on_slice_update(&s).unwrap();
    tracker.checkout_into(&mut state);

    // Without its label the deleted slice cannot be tied to a Service.
    let unlabelled = slice("ns1", "svc1", "svc1-a").with(|s| s.metadata.labels = None).build();
    assert!(!tracker.on_slice_delete(&unlabelled));

    assert!(tracker.on_slice_delete(&s));
    let changes = tracker.checkout_into(&mut state);
    assert_eq!(changes.family(IpFamily::V4).service_ports, ports([tcp("ns1", "svc1", "p80")]));
    assert_eq!(state.family(IpFamily::V4).endpoints.iter().count(), 0);
}

#[test]
fn slices_not_for_proxies_are_ignored() {
    let (mut tracker, mut state) = synced();
    let fqdn = slice("ns1", "svc1", "svc1-fqdn").address_type("FQDN").tcp("p80", 80).ready("example.com").build();
    let unlabelled =
        slice("ns1", "svc1", "svc1-x").tcp("p80", 80).ready("10.180.0.1").with(|s| s.metadata.labels = None).build();
    assert_eq!(tracker.on_slice_update(&fqdn), Ok(false));
    assert_eq!(tracker.on_slice_update(&unlabelled), Ok(false));
    assert!(tracker.checkout_into(&mut state).is_empty());
}

#[test]
fn stale_udp_endpoints_and_trigger_times_reach_the_changes() {
    let start = UNIX_EPOCH + Duration::from_secs(1_514_764_800); // 2018-01-01T00:00:00Z
    let mut tracker = ChangeTracker::new(NODE_NAME, start);
    let mut state = ProxyState::new(NODE_NAME);
    let dns = service("ns1", "dns").cluster_ip("172.30.0.10").udp("dns", 53).build();
    let before = slice("ns1", "dns", "dns-a").udp("dns", 53).ready("10.180.0.1").ready("10.180.0.2");
    let after = slice("ns1", "dns", "dns-a").udp("dns", 53).ready("10.180.0.1");
    tracker.on_service_update(&dns).unwrap();
    tracker.on_slice_update(&before.trigger_time("2017-12-31T23:59:59Z").build()).unwrap();
    let first = tracker.checkout_into(&mut state);
    assert!(first.family(IpFamily::V4).trigger_times.is_empty(), "changes from before the start are not measured");

    tracker.on_slice_update(&after.trigger_time("2018-01-01T00:00:05Z").build()).unwrap();
    let changes = tracker.checkout_into(&mut state);
    let v4 = changes.family(IpFamily::V4);
    assert_eq!(v4.service_ports, ports([udp("ns1", "dns", "dns")]));
    let stale: Vec<_> = v4.stale_udp_endpoints.iter().map(|(n, e)| (n.clone(), e.socket_addr())).collect();
    assert_eq!(stale, [(udp("ns1", "dns", "dns"), "10.180.0.2:53".parse().unwrap())]);
    assert!(changes.family(IpFamily::V6).stale_udp_endpoints.is_empty());
    assert_eq!(changes.family(IpFamily::V4).trigger_times, [start + Duration::from_secs(5)]);
    assert!(changes.family(IpFamily::V6).trigger_times.is_empty());
    assert!(!changes.is_empty());
}

#[test]
fn node_changes_force_a_full_sync() {
    let (mut tracker, mut state) = synced();

    // New addresses are recorded and resync everything (NodePorts may depend on them).
    assert_eq!(tracker.on_node_update(&node(NODE_NAME).internal_ip(NODE_IP).build()), Ok(true));
    let changes = tracker.checkout_into(&mut state);
    assert!(changes.full());
    assert_eq!(state.node.addresses, [ip(NODE_IP)]);

    // The same node again is no change.
    assert_eq!(tracker.on_node_update(&node(NODE_NAME).internal_ip(NODE_IP).build()), Ok(false));

    // A topology label change is.
    let zoned = node(NODE_NAME).internal_ip(NODE_IP).zone("zone-a").build();
    assert_eq!(tracker.on_node_update(&zoned), Ok(true));
    let changes = tracker.checkout_into(&mut state);
    assert!(changes.full());
    assert_eq!(state.node.zone(), Some("zone-a"));
    assert_eq!(state.topology_node().zone, Some("zone-a"));

    let relabelled = node(NODE_NAME).internal_ip(NODE_IP).zone("zone-a").label("role", "edge").build();
    tracker.on_node_update(&relabelled).unwrap();
    assert!(tracker.checkout_into(&mut state).full(), "any label change");
}

#[test]
fn services_relist_deletes_what_is_gone_and_keeps_malformed_state() {
    let (mut tracker, mut state) = synced();
    let a = service("ns1", "a").cluster_ip("172.30.0.1").tcp("p", 80).build();
    let b = service("ns1", "b").cluster_ips(&["172.30.0.2", "fd00:172:30::2"]).tcp("p", 80).build();
    let c = service("ns1", "c").cluster_ip("172.30.0.3").tcp("p", 80).build();
    tracker.on_service_update(&a).unwrap();
    tracker.on_service_update(&b).unwrap();
    tracker.checkout_into(&mut state);

    // b is gone (in both families).
    assert!(tracker.on_services_reset(std::slice::from_ref(&a)).is_empty());
    let changes = tracker.checkout_into(&mut state);
    for family in IpFamily::ALL {
        assert_eq!(changes.family(family).service_ports, ports([tcp("ns1", "b", "p")]), "{family}");
    }
    assert_eq!(
        state.family(IpFamily::V4).services.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        [tcp("ns1", "a", "p")]
    );
    assert!(state.family(IpFamily::V6).services.is_empty());

    // a is now malformed: it keeps its previous state and its error is returned; c is new.
    let broken_a = service("ns1", "a").cluster_ip("172.30.0.1").port("p", 80, "QUIC", None).build();
    let errors = tracker.on_services_reset(&[broken_a, c]);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].kind, &errors[0].object), (ObjectKind::Service, &nsn("ns1", "a")));
    let changes = tracker.checkout_into(&mut state);
    assert_eq!(changes.family(IpFamily::V4).service_ports, ports([tcp("ns1", "c", "p")]));
    let names: Vec<_> = state.family(IpFamily::V4).services.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, [tcp("ns1", "a", "p"), tcp("ns1", "c", "p")]);

    // A relist identical to the state changes nothing.
    assert!(
        tracker.on_services_reset(&[a, service("ns1", "c").cluster_ip("172.30.0.3").tcp("p", 80).build()]).is_empty()
    );
    assert!(tracker.checkout_into(&mut state).is_empty());
}

#[test]
fn slices_relist_deletes_what_is_gone_and_keeps_malformed_state() {
    let (mut tracker, mut state) = synced();
    let name = tcp("ns1", "svc1", "p80");
    let s1 = v4_slice("svc1-a", &["10.180.0.1"]);
    let s2 = v4_slice("svc1-b", &["10.180.0.2"]);
    let s3 = v4_slice("svc1-c", &["10.180.0.3"]);
    let v6 = v6_slice("svc1-v6", &["fd00:10:180::1"]);
    for s in [&s1, &s2, &s3, &v6] {
        tracker.on_slice_update(s).unwrap();
    }
    tracker.checkout_into(&mut state);

    // svc1-b and the IPv6 slice are gone; svc1-c is listed but now malformed.
    let broken_s3 = slice("ns1", "svc1", "svc1-c").tcp("p80", 8080).ready("10.180.0.300").build();
    let errors = tracker.on_slices_reset(&[s1.clone(), broken_s3]);
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].kind, &errors[0].object), (ObjectKind::EndpointSlice, &nsn("ns1", "svc1-c")));

    let changes = tracker.checkout_into(&mut state);
    assert_eq!(changes.family(IpFamily::V4).service_ports, ports([name.clone()]));
    assert_eq!(changes.family(IpFamily::V6).service_ports, ports([name.clone()]));
    assert_eq!(endpoint_addrs(&state, IpFamily::V4, &name), addrs(&["10.180.0.1:8080", "10.180.0.3:8080"]));
    assert!(endpoint_addrs(&state, IpFamily::V6, &name).is_empty());

    // A relist identical to the state changes nothing.
    assert!(tracker.on_slices_reset(&[s1, s3]).is_empty());
    assert!(tracker.checkout_into(&mut state).is_empty());
}

#[test]
fn malformed_updates_return_an_error_and_change_nothing() {
    let (mut tracker, mut state) = synced();
    tracker.on_service_update(&svc1()).unwrap();
    tracker.on_slice_update(&v4_slice("svc1-a", &["10.180.0.1"])).unwrap();
    tracker.on_node_update(&node(NODE_NAME).internal_ip(NODE_IP).zone("zone-a").build()).unwrap();
    tracker.checkout_into(&mut state);
    let before = state.clone();

    let bad_service = service("ns1", "svc1").cluster_ip("172.30.0.41").port("p80", 80, "HTTP", None).build();
    let err = tracker.on_service_update(&bad_service).unwrap_err();
    assert_eq!((err.kind, err.object), (ObjectKind::Service, nsn("ns1", "svc1")));

    let bad_slice = slice("ns1", "svc1", "svc1-a").tcp("p80", 8080).ready("not-an-ip").build();
    let err = tracker.on_slice_update(&bad_slice).unwrap_err();
    assert_eq!((err.kind, err.object), (ObjectKind::EndpointSlice, nsn("ns1", "svc1-a")));

    let bad_node = node(NODE_NAME).internal_ip("192.168.0.300").zone("zone-b").build();
    let err = tracker.on_node_update(&bad_node).unwrap_err();
    assert_eq!(err.kind, ObjectKind::Node);

    assert!(!tracker.pending());
    assert_eq!(tracker.service_changes_pending(), 0);
    assert_eq!(tracker.endpoint_changes_pending(), 0);
    assert!(tracker.checkout_into(&mut state).is_empty());
    assert_eq!(state, before);
}

#[test]
fn malformed_update_keeps_pending_changes() {
    let (mut tracker, mut state) = synced();
    tracker.on_service_update(&svc1()).unwrap();
    let bad_service = service("ns1", "svc1").cluster_ip("bogus").tcp("p80", 80).build();
    assert!(tracker.on_service_update(&bad_service).is_err());
    assert_eq!(tracker.service_changes_pending(), 1, "the earlier, valid update is still pending");
    let changes = tracker.checkout_into(&mut state);
    assert_eq!(changes.family(IpFamily::V4).service_ports, ports([tcp("ns1", "svc1", "p80")]));
    assert_eq!(state.family(IpFamily::V4).services.len(), 1);
}

#[test]
fn a_relist_keeps_the_state_of_objects_listed_but_unreadable() {
    let (mut tracker, mut state) = synced();
    tracker.on_services_relisted(&[svc1()], &[]);
    tracker.on_slices_relisted(&[v4_slice("svc1-a", &["10.180.0.1"])], &[]);
    tracker.checkout_into(&mut state);
    let port = tcp("ns1", "svc1", "p80");
    assert_eq!(endpoint_addrs(&state, IpFamily::V4, &port).len(), 1);
    // The next relist could not read either object: both keep their state.
    tracker.on_services_relisted(&[], &[nsn("ns1", "svc1")]);
    tracker.on_slices_relisted(&[], &[nsn("ns1", "svc1-a")]);
    tracker.checkout_into(&mut state);
    assert!(state.family(IpFamily::V4).services.get(&port).is_some(), "the Service is kept");
    assert_eq!(endpoint_addrs(&state, IpFamily::V4, &port).len(), 1, "the slice is kept");
    // Gone from the list altogether: deleted.
    tracker.on_services_relisted(&[], &[]);
    tracker.on_slices_relisted(&[], &[]);
    tracker.checkout_into(&mut state);
    assert!(state.family(IpFamily::V4).services.get(&port).is_none());
}
