use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_testkit::service;
use kube::core::{ObjectList, WatchEvent};
use serde_json::json;

use super::*;

/// `svc` of ns1 with port 80 given as the string "eighty".
fn eighty(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "ns1", "resourceVersion": "7", "labels": {"app": "a"}},
        "spec": {"clusterIP": "172.30.0.41", "ports": [{"name": "p80", "port": "eighty", "protocol": "TCP"}]},
    })
}

fn undecodable<K: DeserializeOwned + std::fmt::Debug>(value: &Value) -> Undecodable {
    match Lenient::<K>::decode(value) {
        Lenient::Undecodable(u) => *u,
        Lenient::Decoded(object) => panic!("decoded: {object:?}"),
    }
}

#[test]
fn a_well_typed_object_decodes_as_its_kind() {
    let svc = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build();
    let value = serde_json::to_value(&svc).expect("serializes");
    assert_eq!(Lenient::<Service>::decode(&value), Lenient::Decoded(svc));
}

#[test]
fn a_field_of_the_wrong_type_names_the_field_and_its_value() {
    let bad = undecodable::<Service>(&eighty("svc1"));
    assert_eq!(bad.field, "spec.ports[0].port");
    assert_eq!(bad.reason, Invalid::Value("eighty".into()));
    assert!(bad.message.contains("invalid type"), "{}", bad.message);
    assert_eq!(bad.metadata.name.as_deref(), Some("svc1"));
    assert_eq!(bad.metadata.resource_version.as_deref(), Some("7"));
    let error = bad.error(ObjectKind::Service);
    assert_eq!(error.to_string(), r#"Service ns1/svc1: field spec.ports[0].port: unsupported value "eighty""#);
}

/// A kind with a field without a default (k8s-openapi defaults most missing fields).
#[derive(Debug, serde::Deserialize)]
struct Strict {
    #[expect(dead_code, reason = "only decoded")]
    spec: StrictSpec,
}

#[derive(Debug, serde::Deserialize)]
struct StrictSpec {
    #[expect(dead_code, reason = "only decoded")]
    port: i32,
}

#[test]
fn a_missing_field_is_named() {
    let bad = undecodable::<Strict>(&json!({"metadata": {"name": "s"}, "spec": {}}));
    assert_eq!((bad.field.as_str(), &bad.reason), ("spec.port", &Invalid::Missing));
    let bad = undecodable::<StrictSpec>(&json!({}));
    assert_eq!((bad.field.as_str(), &bad.reason), ("port", &Invalid::Missing));
}

#[test]
fn long_values_are_cut() {
    let long = "x".repeat(200);
    let value = json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": long}});
    let bad = undecodable::<Node>(&value);
    assert_eq!(bad.field, "spec.podCIDRs");
    let Invalid::Value(quoted) = &bad.reason else { panic!("{:?}", bad.reason) };
    assert_eq!(quoted.chars().count(), MAX_QUOTED + 1);
    assert_eq!(bad.error(ObjectKind::Node).object, NamespacedName::new("", "n"));
}

#[test]
fn metadata_that_does_not_decode_still_yields_name_version_and_labels() {
    let value = json!({
        "metadata": {"name": "s-a", "namespace": "ns1", "resourceVersion": "9", "annotations": {"a": 1},
                     "labels": {"kubernetes.io/service-name": "svc1", "n": 2}},
        "addressType": "IPv4",
        "endpoints": [],
    });
    let bad = undecodable::<EndpointSlice>(&value);
    assert_eq!(bad.field, "metadata.annotations.a");
    let meta = &bad.metadata;
    assert_eq!((meta.name.as_deref(), meta.namespace.as_deref()), (Some("s-a"), Some("ns1")));
    assert_eq!(meta.resource_version.as_deref(), Some("9"));
    let labels = meta.labels.clone().unwrap_or_default();
    assert_eq!(labels.into_iter().collect::<Vec<_>>(), [("kubernetes.io/service-name".into(), "svc1".into())]);
}

#[test]
fn it_is_a_resource_of_its_kind() {
    assert_eq!(Lenient::<Service>::url_path(&(), None), "/api/v1/services");
    assert_eq!(Lenient::<EndpointSlice>::url_path(&(), None), "/apis/discovery.k8s.io/v1/endpointslices");
    assert_eq!(Lenient::<Node>::kind(&()), "Node");
    let bad = Lenient::<Service>::decode(&eighty("svc1"));
    assert_eq!(bad.meta().resource_version.as_deref(), Some("7"));
}

#[test]
fn one_bad_item_does_not_fail_a_list_or_a_watch_event() {
    let good = serde_json::to_value(service("ns1", "good").build()).expect("serializes");
    let list = json!({"apiVersion": "v1", "kind": "ServiceList", "metadata": {"resourceVersion": "8"},
                      "items": [eighty("bad"), good]});
    let list: ObjectList<Lenient<Service>> = serde_json::from_value(list).expect("the list decodes");
    assert!(matches!(list.items.as_slice(), [Lenient::Undecodable(_), Lenient::Decoded(_)]), "{:?}", list.items);
    let line = json!({"type": "MODIFIED", "object": eighty("bad")}).to_string();
    let event: WatchEvent<Lenient<Service>> = serde_json::from_str(&line).expect("the event decodes");
    assert!(matches!(event, WatchEvent::Modified(Lenient::Undecodable(ref u)) if u.field == "spec.ports[0].port"));
}

#[test]
fn managed_fields_are_dropped_and_everything_else_kept() {
    let mut value = serde_json::to_value(service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build())
        .expect("serializes");
    let expected = value.clone();
    value["metadata"]["managedFields"] =
        json!([{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]);
    let decoded: Lenient<Service> = serde_json::from_value(value).expect("decodes");
    let Lenient::Decoded(svc) = decoded else { panic!("does not decode: {decoded:?}") };
    assert_eq!(svc.metadata.managed_fields, None);
    assert_eq!(serde_json::to_value(&svc).expect("serializes"), expected);
}
