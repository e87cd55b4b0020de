use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::Invalid;
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

fn store() -> LastGood<Service> {
    LastGood::new(ObjectKind::Service)
}

fn names(objects: &[Service]) -> Vec<(&str, &str)> {
    objects
        .iter()
        .map(|s| {
            let ip = s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()).unwrap_or_default();
            (s.metadata.name.as_deref().unwrap_or_default(), ip)
        })
        .collect()
}

fn reset(event: ObjectEvent<Service>) -> (Vec<Service>, Vec<ConversionError>) {
    match event {
        ObjectEvent::Reset { objects, undecodable } => (objects, undecodable),
        other => panic!("not a reset: {other:?}"),
    }
}

#[test]
fn a_relist_presents_an_undecodable_object_with_its_last_good_state() {
    let mut store = store();
    let (a, b) = (svc("a", "172.30.0.41"), svc("b", "172.30.0.42"));
    store.absorb(Batch::Relisted(vec![good(&a), good(&b)]));
    let (objects, undecodable) = reset(store.absorb(Batch::Relisted(vec![good(&a), eighty("b"), eighty("new")])));
    assert_eq!(names(&objects), [("a", "172.30.0.41"), ("b", "172.30.0.42")], "b keeps its state; new has none");
    let bad: Vec<String> = undecodable.iter().map(|e| format!("{} {} {}", e.object, e.field, e.reason)).collect();
    assert_eq!(
        bad,
        [
            r#"ns1/b spec.ports[0].port unsupported value "eighty""#,
            "ns1/new spec.ports[0].port unsupported value \"eighty\""
        ]
    );
    // Still remembered at the next relist.
    let (objects, _) = reset(store.absorb(Batch::Relisted(vec![eighty("b")])));
    assert_eq!(names(&objects), [("b", "172.30.0.42")]);
}

#[test]
fn an_undecodable_update_is_reported_and_changes_nothing() {
    let mut store = store();
    let a = svc("a", "172.30.0.41");
    store.absorb(Batch::Relisted(vec![good(&a)]));
    match store.absorb(Batch::Apply(eighty("a"))) {
        ObjectEvent::Undecodable(error) => {
            assert_eq!((error.kind, error.field.as_str()), (ObjectKind::Service, "spec.ports[0].port"));
            assert_eq!(error.reason, Invalid::Value("eighty".into()));
        }
        other => panic!("{other:?}"),
    }
    let (objects, _) = reset(store.absorb(Batch::Relisted(vec![eighty("a")])));
    assert_eq!(objects, std::slice::from_ref(&a));
    // Fixed: the new state is the last good one.
    let fixed = svc("a", "172.30.0.45");
    assert_eq!(store.absorb(Batch::Apply(good(&fixed))), ObjectEvent::Apply(fixed.clone()));
    let (objects, _) = reset(store.absorb(Batch::Relisted(vec![eighty("a")])));
    assert_eq!(objects, [fixed]);
}

#[test]
fn deleting_an_undecodable_object_deletes_its_last_good_state() {
    let mut store = store();
    let a = svc("a", "172.30.0.41");
    store.absorb(Batch::Apply(good(&a)));
    assert_eq!(store.absorb(Batch::Delete(eighty("a"))), ObjectEvent::Delete(a));
    let (objects, _) = reset(store.absorb(Batch::Relisted(vec![eighty("a")])));
    assert!(objects.is_empty(), "forgotten once deleted");
}

#[test]
fn deleting_an_object_never_decoded_names_it_by_its_metadata() {
    let mut store = LastGood::<EndpointSlice>::new(ObjectKind::EndpointSlice);
    let mut value: Value = serde_json::to_value(slice("ns1", "svc1", "svc1-a").build()).expect("serializes");
    value["endpoints"] = json!("none");
    match store.absorb(Batch::Delete(Lenient::decode(&value))) {
        ObjectEvent::Delete(deleted) => {
            assert_eq!(deleted.metadata.name.as_deref(), Some("svc1-a"));
            let labels = deleted.metadata.labels.unwrap_or_default();
            assert_eq!(labels.get("kubernetes.io/service-name").map(String::as_str), Some("svc1"));
        }
        other => panic!("{other:?}"),
    }
}
