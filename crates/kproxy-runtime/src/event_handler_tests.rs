use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use kproxy_core::{IpFamily, ProxyState};
use kproxy_testkit::{node, service, slice};

use super::*;

fn handler() -> (EventHandler, Arc<Mutex<ChangeTracker>>, Arc<AtomicUsize>) {
    let tracker = Arc::new(Mutex::new(ChangeTracker::new("node1", SystemTime::UNIX_EPOCH)));
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let hook: MalformedHook = Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (EventHandler::new(tracker.clone(), hook), tracker, count)
}

fn good() -> k8s_openapi::api::core::v1::Service {
    service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build()
}

fn bad() -> k8s_openapi::api::core::v1::Service {
    service("ns1", "svc1").cluster_ip("not-an-ip").tcp("p80", 80).build()
}

#[test]
fn no_sync_is_requested_before_every_initial_list() {
    let (mut h, _, _) = handler();
    assert!(!h.handle(SourceEvent::Service(ObjectEvent::reset(vec![good()]))));
    assert!(!h.handle(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![]))));
    assert!(!h.initialized());
    assert!(h.handle(SourceEvent::Node(ObjectEvent::reset(vec![node("node1").build()]))));
    assert!(h.initialized());
}

#[test]
fn malformed_object_is_reported_once_and_keeps_previous_state() {
    let (mut h, tracker, count) = handler();
    h.handle(SourceEvent::Service(ObjectEvent::Apply(good())));
    h.handle(SourceEvent::Service(ObjectEvent::Apply(bad())));
    h.handle(SourceEvent::Service(ObjectEvent::Apply(bad())));
    h.handle(SourceEvent::Service(ObjectEvent::reset(vec![bad()])));
    assert_eq!(count.load(Ordering::SeqCst), 1, "reported once");
    let mut state = ProxyState::new("node1");
    tracker.lock().unwrap().checkout_into(&mut state);
    assert_eq!(state.family(IpFamily::V4).services.len(), 1, "previous good state kept");
    h.handle(SourceEvent::Service(ObjectEvent::Apply(good())));
    h.handle(SourceEvent::Service(ObjectEvent::Apply(bad())));
    assert_eq!(count.load(Ordering::SeqCst), 2, "reported again after it was fixed and broke again");
}

#[test]
fn malformed_slice_among_good_ones_does_not_stop_the_others() {
    let (mut h, tracker, count) = handler();
    let good_slice = slice("ns1", "svc1", "a").tcp("p80", 8080).ready("10.0.0.1").build();
    let bad_slice = slice("ns1", "svc1", "b").tcp("p80", 8080).ready("10.0.0.300").build();
    h.handle(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    h.handle(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![bad_slice, good_slice])));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let mut state = ProxyState::new("node1");
    tracker.lock().unwrap().checkout_into(&mut state);
    assert_eq!(state.family(IpFamily::V4).endpoints.iter().count(), 1);
}

/// `svc1` as a source reports it when it does not decode.
fn undecodable(field: &str) -> ConversionError {
    let name = NamespacedName::new("ns1", "svc1");
    ConversionError::new(ObjectKind::Service, &name, field, kproxy_core::Invalid::Value("eighty".into()))
}

fn ports(tracker: &Mutex<ChangeTracker>, state: &mut ProxyState) -> usize {
    tracker.lock().unwrap().checkout_into(state);
    state.family(IpFamily::V4).services.len()
}

#[test]
fn undecodable_object_is_reported_once_across_relists_and_again_after_a_fix() {
    let (mut h, tracker, count) = handler();
    let mut state = ProxyState::new("node1");
    h.handle(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    h.handle(SourceEvent::Service(ObjectEvent::Undecodable(undecodable("spec.ports[0].port"))));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // The source lists the last good state in its place.
    let relist = || ObjectEvent::Reset { objects: vec![good()], undecodable: vec![undecodable("spec.ports[0].port")] };
    h.handle(SourceEvent::Service(relist()));
    h.handle(SourceEvent::Service(relist()));
    assert_eq!(count.load(Ordering::SeqCst), 1, "reported once");
    assert_eq!(ports(&tracker, &mut state), 1, "previous good state kept");
    h.handle(SourceEvent::Service(ObjectEvent::Undecodable(undecodable("spec.ports[1].port"))));
    assert_eq!(count.load(Ordering::SeqCst), 2, "another problem is reported");
    h.handle(SourceEvent::Service(ObjectEvent::reset(vec![good()])));
    h.handle(SourceEvent::Service(relist()));
    assert_eq!(count.load(Ordering::SeqCst), 3, "reported again after it was fixed and broke again");
}

#[test]
fn undecodable_object_whose_last_state_does_not_convert_is_reported_once() {
    let (mut h, tracker, count) = handler();
    let mut state = ProxyState::new("node1");
    let relist = || ObjectEvent::Reset { objects: vec![bad()], undecodable: vec![undecodable("spec.ports[0].port")] };
    h.handle(SourceEvent::Service(relist()));
    h.handle(SourceEvent::Service(relist()));
    assert_eq!(count.load(Ordering::SeqCst), 1, "only the decoding error is reported");
    assert_eq!(ports(&tracker, &mut state), 0);
}
