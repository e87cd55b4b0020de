use std::time::SystemTime;

use k8s_openapi::api::core::v1::Service;
use kproxy_testkit::{node, service, slice};

use crate::error::Invalid;
use crate::event::{ObjectEvent, SourceEvent};
use crate::names::IpFamily;
use crate::{ConversionError, NamespacedName, ObjectKind, ProxyLoop};

fn good() -> Service {
    service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build()
}

fn bad() -> Service {
    service("ns1", "svc1").cluster_ip("not-an-ip").tcp("p80", 80).build()
}

fn new_loop() -> ProxyLoop {
    ProxyLoop::new("node1", SystemTime::UNIX_EPOCH)
}

/// Folds `event` in; returns how many malformed objects it reported for the first time.
fn first_reports(proxy: &mut ProxyLoop, event: SourceEvent) -> usize {
    proxy.on_event(event).iter().filter(|m| m.first_report).count()
}

/// The IPv4 service ports after checking the pending changes out.
fn ports(proxy: &mut ProxyLoop) -> usize {
    proxy.checkout(false);
    proxy.state().family(IpFamily::V4).services.len()
}

#[test]
fn no_sync_is_wanted_before_every_initial_list() {
    let mut proxy = new_loop();
    proxy.on_event(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![])));
    assert!(!proxy.initialized());
    assert!(!proxy.wants_sync(), "changes wait, but not every list has arrived");
    proxy.on_event(SourceEvent::Node(ObjectEvent::reset(vec![node("node1").build()])));
    assert!(proxy.initialized());
    assert!(proxy.wants_sync());
    assert_eq!(proxy.service_changes_pending(), 1);
    proxy.checkout(false);
    assert!(!proxy.wants_sync(), "nothing waits after a checkout");
}

#[test]
fn malformed_object_is_reported_once_and_keeps_previous_state() {
    let mut proxy = new_loop();
    let mut reports = 0;
    reports += first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::Apply(good())));
    reports += first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::Apply(bad())));
    let again = proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(bad())));
    assert_eq!(again.len(), 1, "every malformed object of an event is returned");
    assert!(!again[0].first_report, "but reported only once");
    assert_eq!(again[0].error.object, NamespacedName::new("ns1", "svc1"));
    reports += first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::reset(vec![bad()])));
    assert_eq!(reports, 1, "reported once");
    assert_eq!(ports(&mut proxy), 1, "previous good state kept");
    reports += first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::Apply(good())));
    reports += first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::Apply(bad())));
    assert_eq!(reports, 2, "reported again after it was fixed and broke again");
}

#[test]
fn malformed_slice_among_good_ones_does_not_stop_the_others() {
    let mut proxy = new_loop();
    let good_slice = slice("ns1", "svc1", "a").tcp("p80", 8080).ready("10.0.0.1").build();
    let bad_slice = slice("ns1", "svc1", "b").tcp("p80", 8080).ready("10.0.0.300").build();
    proxy.on_event(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    let malformed = proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![bad_slice, good_slice])));
    assert_eq!(malformed.len(), 1);
    assert_eq!(malformed[0].error.object, NamespacedName::new("ns1", "b"));
    proxy.checkout(false);
    assert_eq!(proxy.state().family(IpFamily::V4).endpoints.iter().count(), 1);
}

/// `svc1` as a source reports it when it does not decode.
fn undecodable(field: &str) -> ConversionError {
    let name = NamespacedName::new("ns1", "svc1");
    ConversionError::new(ObjectKind::Service, &name, field, Invalid::Value("eighty".into()))
}

#[test]
fn undecodable_object_is_reported_once_across_relists_and_again_after_a_fix() {
    let mut proxy = new_loop();
    let mut reports = first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    let event = SourceEvent::Service(ObjectEvent::Undecodable(undecodable("spec.ports[0].port")));
    reports += first_reports(&mut proxy, event);
    assert_eq!(reports, 1);
    // The source lists the last good state in its place.
    let relist = || {
        let undecodable = vec![undecodable("spec.ports[0].port")];
        SourceEvent::Service(ObjectEvent::Reset { objects: vec![good()], undecodable })
    };
    reports += first_reports(&mut proxy, relist());
    reports += first_reports(&mut proxy, relist());
    assert_eq!(reports, 1, "reported once");
    assert_eq!(ports(&mut proxy), 1, "previous good state kept");
    let event = SourceEvent::Service(ObjectEvent::Undecodable(undecodable("spec.ports[1].port")));
    reports += first_reports(&mut proxy, event);
    assert_eq!(reports, 2, "another problem is reported");
    reports += first_reports(&mut proxy, SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    reports += first_reports(&mut proxy, relist());
    assert_eq!(reports, 3, "reported again after it was fixed and broke again");
}

#[test]
fn undecodable_object_whose_last_state_does_not_convert_is_reported_once() {
    let mut proxy = new_loop();
    let relist = || {
        let undecodable = vec![undecodable("spec.ports[0].port")];
        SourceEvent::Service(ObjectEvent::Reset { objects: vec![bad()], undecodable })
    };
    let first = proxy.on_event(relist());
    assert_eq!(first.len(), 1, "only the decoding error is reported: {first:?}");
    assert_eq!(first[0].error.field, "spec.ports[0].port");
    assert_eq!(first_reports(&mut proxy, relist()), 0);
    assert_eq!(ports(&mut proxy), 0);
}

#[test]
fn deletes_fold_in_and_a_deleted_node_keeps_its_last_state() {
    let mut proxy = new_loop();
    proxy.on_event(SourceEvent::Node(ObjectEvent::Apply(node("node1").zone("zone-a").build())));
    proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(good())));
    assert_eq!(ports(&mut proxy), 1);
    proxy.on_event(SourceEvent::Service(ObjectEvent::Delete(good())));
    proxy.on_event(SourceEvent::Node(ObjectEvent::Delete(node("node1").build())));
    assert_eq!(ports(&mut proxy), 0);
    assert_eq!(proxy.state().node.zone(), Some("zone-a"));
}

#[test]
fn the_node_is_ineligible_while_deleted_tainted_for_deletion_or_gone() {
    use k8s_openapi::api::core::v1::Taint;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    let mut proxy = new_loop();
    assert!(proxy.node_eligible(), "eligible until the Node says otherwise");
    let plain = node("node1").internal_ip("192.168.0.2").build();
    proxy.on_event(SourceEvent::Node(ObjectEvent::reset(vec![plain.clone()])));
    assert!(proxy.node_eligible());
    let mut tainted = plain.clone();
    tainted.spec.get_or_insert_default().taints = Some(vec![Taint {
        key: crate::convert::TAINT_TO_BE_DELETED.to_owned(),
        effect: "NoSchedule".to_owned(),
        ..Taint::default()
    }]);
    proxy.on_event(SourceEvent::Node(ObjectEvent::Apply(tainted)));
    assert!(!proxy.node_eligible(), "tainted ToBeDeletedByClusterAutoscaler");
    proxy.on_event(SourceEvent::Node(ObjectEvent::Apply(plain.clone())));
    assert!(proxy.node_eligible(), "the taint was removed");
    let mut deleting = plain.clone();
    deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
    proxy.on_event(SourceEvent::Node(ObjectEvent::Apply(deleting)));
    assert!(!proxy.node_eligible(), "being deleted");
    proxy.on_event(SourceEvent::Node(ObjectEvent::Apply(plain.clone())));
    proxy.on_event(SourceEvent::Node(ObjectEvent::Delete(plain)));
    assert!(!proxy.node_eligible(), "deleted");
}

fn service_cidrs(proxy: &ProxyLoop) -> Vec<String> {
    proxy.state().service_cidrs.iter().map(ToString::to_string).collect()
}

#[test]
fn service_cidrs_fold_into_the_state_with_a_full_sync_and_do_not_gate_the_first_sync() {
    use kproxy_testkit::service_cidr;
    let mut proxy = new_loop();
    proxy.on_event(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![])));
    proxy.on_event(SourceEvent::Node(ObjectEvent::reset(vec![node("node1").build()])));
    assert!(proxy.initialized(), "no ServiceCIDR list is waited for (older apiservers serve none)");
    proxy.checkout(false);
    assert!(service_cidrs(&proxy).is_empty());

    let kubernetes = service_cidr("kubernetes", &["172.30.0.0/16", "fd00:172:30::/112"]);
    let reset = SourceEvent::ServiceCidr(ObjectEvent::reset(vec![kubernetes.clone()]));
    assert_eq!(first_reports(&mut proxy, reset), 0);
    assert!(proxy.wants_sync());
    assert!(proxy.checkout(false).full(), "the service CIDRs shape every table: full sync");
    assert_eq!(service_cidrs(&proxy), ["172.30.0.0/16", "fd00:172:30::/112"]);
    assert_eq!(proxy.state().service_cidrs_of(IpFamily::V6).count(), 1);

    let unchanged = service_cidr("again", &["172.30.0.0/16"]);
    proxy.on_event(SourceEvent::ServiceCidr(ObjectEvent::Apply(unchanged.clone())));
    assert!(!proxy.wants_sync(), "a CIDR already covered changes nothing");

    let bad = service_cidr("bad", &["172.31.0.0/33"]);
    assert_eq!(first_reports(&mut proxy, SourceEvent::ServiceCidr(ObjectEvent::Apply(bad.clone()))), 1);
    assert_eq!(first_reports(&mut proxy, SourceEvent::ServiceCidr(ObjectEvent::Apply(bad))), 0, "reported once");
    let malformed = proxy.on_event(SourceEvent::ServiceCidr(ObjectEvent::Apply(service_cidr("x", &["nope"]))));
    assert_eq!(malformed[0].error.kind, ObjectKind::ServiceCidr);
    assert_eq!(malformed[0].error.reason, Invalid::Cidr("nope".to_owned()));

    proxy.on_event(SourceEvent::ServiceCidr(ObjectEvent::Delete(kubernetes)));
    assert!(proxy.checkout(false).full());
    assert_eq!(service_cidrs(&proxy), ["172.30.0.0/16"], "still allocated by `again`");
    proxy.on_event(SourceEvent::ServiceCidr(ObjectEvent::Delete(unchanged)));
    proxy.checkout(false);
    assert!(service_cidrs(&proxy).is_empty());
}

fn svc(name: &str, ip: &str) -> Service {
    service("ns1", name).cluster_ip(ip).tcp("p80", 80).build()
}

fn listed(objects: Vec<Service>) -> SourceEvent {
    SourceEvent::Service(ObjectEvent::Listed { objects, undecodable: Vec::new() })
}

/// Every initial list but the Services' has arrived.
fn all_lists_but_services(proxy: &mut ProxyLoop) {
    proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![])));
    proxy.on_event(SourceEvent::Node(ObjectEvent::reset(vec![node("node1").build()])));
}

#[test]
fn a_relist_in_pieces_ends_where_a_whole_one_does() {
    let mut whole = new_loop();
    let mut pieces = new_loop();
    for proxy in [&mut whole, &mut pieces] {
        all_lists_but_services(proxy);
        proxy.on_event(SourceEvent::Service(ObjectEvent::reset(vec![
            svc("old", "172.30.0.1"),
            svc("kept", "172.30.0.2"),
        ])));
        proxy.checkout(false);
    }
    let now = vec![svc("kept", "172.30.0.2"), svc("new1", "172.30.0.3"), svc("new2", "172.30.0.4")];
    whole.on_event(SourceEvent::Service(ObjectEvent::reset(now.clone())));
    pieces.on_event(SourceEvent::Service(ObjectEvent::ListStart));
    pieces.on_event(listed(now[..1].to_vec()));
    pieces.on_event(listed(now[1..].to_vec()));
    assert_eq!(ports(&mut pieces), 4, "nothing is deleted before the relist ends");
    pieces.on_event(SourceEvent::Service(ObjectEvent::ListEnd));
    assert_eq!(ports(&mut pieces), 3);
    assert_eq!(ports(&mut whole), 3);
    assert_eq!(whole.state(), pieces.state());
}

#[test]
fn the_initial_list_in_pieces_counts_at_its_end_and_a_restart_voids_the_first_attempt() {
    let mut proxy = new_loop();
    all_lists_but_services(&mut proxy);
    proxy.on_event(SourceEvent::Service(ObjectEvent::ListStart));
    proxy.on_event(listed(vec![svc("gone-meanwhile", "172.30.0.1")]));
    assert!(!proxy.initialized(), "a list in progress is not the initial list");
    // The watch failed and relisted: the first attempt's objects count for nothing.
    proxy.on_event(SourceEvent::Service(ObjectEvent::ListStart));
    proxy.on_event(listed(vec![svc("svc1", "172.30.0.2")]));
    proxy.on_event(SourceEvent::Service(ObjectEvent::ListEnd));
    assert!(proxy.initialized());
    assert_eq!(ports(&mut proxy), 1, "only what the completed relist listed");
}

#[test]
fn unreadable_objects_of_a_relist_in_pieces_keep_their_state_and_are_reported_at_its_end() {
    let mut proxy = new_loop();
    all_lists_but_services(&mut proxy);
    proxy.on_event(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    assert_eq!(proxy.on_event(SourceEvent::Service(ObjectEvent::ListStart)).len(), 0);
    let piece = ObjectEvent::Listed { objects: vec![bad()], undecodable: Vec::new() };
    assert!(proxy.on_event(SourceEvent::Service(piece)).is_empty(), "reported at the end");
    let reported = proxy.on_event(SourceEvent::Service(ObjectEvent::ListEnd));
    assert_eq!(reported.len(), 1);
    assert_eq!(ports(&mut proxy), 1, "its previous state stays");
    let slices = [
        ObjectEvent::ListStart,
        ObjectEvent::Listed {
            objects: vec![slice("ns1", "svc1", "svc1-a").build()],
            undecodable: vec![ConversionError::new(
                ObjectKind::EndpointSlice,
                &NamespacedName::new("ns1", "svc1-b"),
                "endpoints",
                Invalid::Missing,
            )],
        },
        ObjectEvent::ListEnd,
    ];
    let reported: usize = slices.into_iter().map(|e| proxy.on_event(SourceEvent::EndpointSlice(e)).len()).sum();
    assert_eq!(reported, 1, "the undecodable slice");
}
