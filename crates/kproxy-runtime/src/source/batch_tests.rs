use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::{ChangeTracker, Invalid, IpFamily, NamespacedName, ProxyState};
use kproxy_testkit::{service, slice};
use serde_json::{Value, json};

use super::*;

fn svc(name: &str, ip: &str) -> Service {
    service("ns1", name).cluster_ip(ip).tcp("p80", 80).build()
}

fn good(object: &Service) -> Lenient<Service> {
    Lenient::Decoded(object.clone())
}

/// `name` with its port given as the string "eighty".
fn eighty(name: &str) -> Lenient<Service> {
    let mut value = serde_json::to_value(svc(name, "172.30.0.49")).expect("serializes");
    value["spec"]["ports"][0]["port"] = json!("eighty");
    Lenient::decode(&value)
}

fn reset(event: ObjectEvent<Service>) -> (Vec<Service>, Vec<ConversionError>) {
    match event {
        ObjectEvent::Listed { objects, undecodable } => (objects, undecodable),
        other => panic!("not a piece of a relist: {other:?}"),
    }
}

#[test]
fn a_relist_names_undecodable_objects_and_the_tracker_keeps_their_state() {
    let (a, b) = (svc("a", "172.30.0.41"), svc("b", "172.30.0.42"));
    let mut tracker = ChangeTracker::new("node1", std::time::UNIX_EPOCH);
    let mut state = ProxyState::new("node1");
    let (objects, undecodable) = reset(to_event(ObjectKind::Service, Batch::Listed(vec![good(&a), good(&b)])));
    assert!(undecodable.is_empty());
    tracker.on_services_relisted(&objects, &[]);
    tracker.checkout_into(&mut state);
    let event = to_event(ObjectKind::Service, Batch::Listed(vec![good(&a), eighty("b"), eighty("new")]));
    let (objects, undecodable) = reset(event);
    assert_eq!(objects, std::slice::from_ref(&a), "only what decodes is handed over");
    let bad: Vec<String> = undecodable.iter().map(|e| format!("{} {} {}", e.object, e.field, e.reason)).collect();
    assert_eq!(
        bad,
        [
            r#"ns1/b spec.ports[0].port unsupported value "eighty""#,
            "ns1/new spec.ports[0].port unsupported value \"eighty\""
        ]
    );
    let kept: Vec<NamespacedName> = undecodable.iter().map(|e| e.object.clone()).collect();
    tracker.on_services_relisted(&objects, &kept);
    tracker.checkout_into(&mut state);
    let ports: Vec<String> = state.family(IpFamily::V4).services.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(ports, ["ns1/a:p80", "ns1/b:p80"], "b keeps its state, new has none");
}

#[test]
fn an_undecodable_update_is_reported_with_its_field() {
    match to_event(ObjectKind::Service, Batch::Apply(eighty("a"))) {
        ObjectEvent::Undecodable(error) => {
            assert_eq!((error.kind, error.field.as_str()), (ObjectKind::Service, "spec.ports[0].port"));
            assert_eq!(error.reason, Invalid::Value("eighty".into()));
        }
        other => panic!("{other:?}"),
    }
    let a = svc("a", "172.30.0.41");
    assert_eq!(to_event(ObjectKind::Service, Batch::Apply(good(&a))), ObjectEvent::Apply(a));
}

#[test]
fn deleting_an_undecodable_object_names_it_by_its_metadata() {
    let mut value: Value = serde_json::to_value(slice("ns1", "svc1", "svc1-a").build()).expect("serializes");
    value["endpoints"] = json!("none");
    match to_event::<EndpointSlice>(ObjectKind::EndpointSlice, Batch::Delete(Lenient::decode(&value))) {
        ObjectEvent::Delete(deleted) => {
            assert_eq!(deleted.metadata.name.as_deref(), Some("svc1-a"));
            let labels = deleted.metadata.labels.unwrap_or_default();
            assert_eq!(labels.get("kubernetes.io/service-name").map(String::as_str), Some("svc1"));
        }
        other => panic!("{other:?}"),
    }
}
