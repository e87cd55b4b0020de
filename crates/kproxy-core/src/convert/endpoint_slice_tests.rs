use super::*;

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use k8s_openapi::api::discovery::v1::EndpointPort;
use kproxy_testkit::{SliceBuilder, slice};

use crate::convert::NameRule;

const NS: &str = "ns1";
const SVC: &str = "svc1";
const SLICE: &str = "svc1-abc";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IP")
}

fn base() -> SliceBuilder {
    slice(NS, SVC, SLICE).tcp("p80", 8080)
}

fn convert(s: &EndpointSlice) -> EndpointSliceInfo {
    EndpointSliceInfo::from_slice(s).expect("well formed").expect("for proxies")
}

fn convert_err(s: &EndpointSlice) -> ConversionError {
    EndpointSliceInfo::from_slice(s).expect_err("malformed")
}

/// The single endpoint of `s`.
fn only_endpoint(s: &EndpointSlice) -> EndpointInfo {
    let info = convert(s);
    assert_eq!(info.endpoints.len(), 1, "{:?}", info.endpoints);
    info.endpoints.into_iter().next().expect("one endpoint")
}

fn port(name: Option<&str>, number: Option<i32>, protocol: Option<&str>) -> EndpointPort {
    EndpointPort {
        name: name.map(str::to_owned),
        port: number,
        protocol: protocol.map(str::to_owned),
        app_protocol: None,
    }
}

#[test]
fn basic_ipv4_slice() {
    let s = base().udp("dns", 53).ready("10.180.0.1").endpoint("10.180.0.2", |e| e.node("node2")).build();
    let info = convert(&s);
    assert_eq!(info.service, NamespacedName::new(NS, SVC));
    assert_eq!(info.slice_name, SLICE);
    assert_eq!(info.family, IpFamily::V4);
    assert_eq!(
        info.ports,
        vec![
            SlicePort { name: "p80".into(), port: 8080, protocol: Protocol::Tcp },
            SlicePort { name: "dns".into(), port: 53, protocol: Protocol::Udp },
        ]
    );
    let ips: Vec<IpAddr> = info.endpoints.iter().map(|e| e.ip).collect();
    assert_eq!(ips, vec![ip("10.180.0.1"), ip("10.180.0.2")]);
    assert_eq!(info.endpoints[1].node_name.as_deref(), Some("node2"));
    assert_eq!(info.trigger_time, None);
}

#[test]
fn ipv6_slice() {
    let s = base().address_type("IPv6").ready("fd00:10:180::1").build();
    let info = convert(&s);
    assert_eq!(info.family, IpFamily::V6);
    assert_eq!(info.endpoints[0].ip, ip("fd00:10:180::1"));
}

#[test]
fn slices_not_for_proxies() {
    let cases: Vec<(&str, EndpointSlice)> = vec![
        ("FQDN", base().address_type("FQDN").ready("db.example.com").build()),
        ("FQDN with a garbage port", base().address_type("FQDN").tcp("x", -5).build()),
        ("no labels", base().ready("10.180.0.1").with(|s| s.metadata.labels = None).build()),
        (
            "no service-name label",
            base().ready("10.180.0.1").with(|s| s.metadata.labels = Some(BTreeMap::new())).build(),
        ),
        ("empty service-name label", slice(NS, "", SLICE).tcp("p80", 8080).ready("10.180.0.1").build()),
        ("headless label", base().ready("10.180.0.1").label(LABEL_HEADLESS, "").build()),
        ("service-proxy-name label", base().ready("10.180.0.1").label(LABEL_SERVICE_PROXY_NAME, "other").build()),
    ];
    for (desc, s) in cases {
        assert_eq!(EndpointSliceInfo::from_slice(&s), Ok(None), "{desc}");
    }
}

#[test]
fn absent_port_and_endpoint_lists() {
    let s = base().with(|s| {
        s.ports = None;
        s.endpoints = None;
    });
    let info = convert(&s.build());
    assert!(info.ports.is_empty());
    assert!(info.endpoints.is_empty());
}

#[test]
fn conditions_default_like_upstream() {
    type Conditions = (Option<bool>, Option<bool>, Option<bool>);
    let cases: Vec<(&str, Conditions, (bool, bool, bool))> = vec![
        ("all absent", (None, None, None), (true, true, false)),
        ("not ready", (Some(false), None, None), (false, true, false)),
        ("terminating, serving", (Some(false), Some(true), Some(true)), (false, true, true)),
        ("terminating, not serving", (Some(false), Some(false), Some(true)), (false, false, true)),
        ("explicit defaults", (Some(true), Some(true), Some(false)), (true, true, false)),
        ("only terminating set", (None, None, Some(true)), (true, true, true)),
    ];
    for (desc, (ready, serving, terminating), want) in cases {
        let s = base()
            .endpoint("10.180.0.1", |mut e| {
                if let Some(r) = ready {
                    e = e.ready(r);
                }
                if let Some(s) = serving {
                    e = e.serving(s);
                }
                if let Some(t) = terminating {
                    e = e.terminating(t);
                }
                e
            })
            .build();
        let ep = only_endpoint(&s);
        assert_eq!((ep.ready, ep.serving, ep.terminating), want, "{desc}");
    }
}

#[test]
fn nil_conditions_object() {
    let s = base().ready("10.180.0.1").build();
    assert!(s.endpoints.as_ref().expect("endpoints")[0].conditions.is_none());
    let ep = only_endpoint(&s);
    assert!(ep.ready && ep.serving && !ep.terminating);
}

#[test]
fn node_zone_and_hints() {
    let s = base()
        .endpoint("10.180.0.1", |e| {
            e.node("node1").zone("zone-a").zone_hints(&["zone-a", "zone-b", "zone-a"]).node_hints(&["node1"])
        })
        .build();
    let ep = only_endpoint(&s);
    assert_eq!(ep.node_name.as_deref(), Some("node1"));
    assert_eq!(ep.zone.as_deref(), Some("zone-a"));
    assert_eq!(ep.zone_hints, BTreeSet::from(["zone-a".to_owned(), "zone-b".to_owned()]));
    assert_eq!(ep.node_hints, BTreeSet::from(["node1".to_owned()]));

    let bare = only_endpoint(&base().ready("10.180.0.2").build());
    assert_eq!((bare.node_name, bare.zone), (None, None));
    assert!(bare.zone_hints.is_empty() && bare.node_hints.is_empty());

    let empty_hints = only_endpoint(&base().endpoint("10.180.0.3", |e| e.zone_hints(&[]).node_hints(&[])).build());
    assert!(empty_hints.zone_hints.is_empty() && empty_hints.node_hints.is_empty());
}

#[test]
fn only_the_first_address_is_used() {
    // The later addresses are not even parsed, as upstream only looks at the first.
    let s = base().endpoint("10.180.0.1", |e| e.address("10.180.0.9").address("not-an-ip")).build();
    assert_eq!(only_endpoint(&s).ip, ip("10.180.0.1"));
}

#[test]
fn endpoint_without_addresses_is_skipped() {
    let s = base()
        .ready("10.180.0.1")
        .ready("10.180.0.2")
        .with(|s| s.endpoints.as_mut().expect("endpoints")[0].addresses.clear())
        .build();
    let info = convert(&s);
    assert_eq!(info.endpoints.iter().map(|e| e.ip).collect::<Vec<_>>(), vec![ip("10.180.0.2")]);
}

#[test]
fn whitespace_around_addresses_is_tolerated() {
    let s = base().ready(" 10.180.0.1\t").build();
    assert_eq!(only_endpoint(&s).ip, ip("10.180.0.1"));
}

#[test]
fn trigger_time() {
    let cases: Vec<(&str, Option<&str>, Option<SystemTime>)> = vec![
        ("absent", None, None),
        ("RFC 3339", Some("2024-05-01T12:00:00Z"), Some(UNIX_EPOCH + Duration::from_secs(1_714_564_800))),
        (
            "RFC 3339 with fraction",
            Some("2024-05-01T12:00:00.250Z"),
            Some(UNIX_EPOCH + Duration::from_millis(1_714_564_800_250)),
        ),
        ("padded", Some(" 2024-05-01T12:00:00Z\n"), Some(UNIX_EPOCH + Duration::from_secs(1_714_564_800))),
        ("garbage is ignored", Some("yesterday"), None),
        ("empty is ignored", Some(""), None),
        ("out of range is ignored", Some("2024-13-01T12:00:00Z"), None),
        ("non-ASCII is ignored", Some("2024-05-01T12:00:00.ééé"), None),
    ];
    for (desc, annotation, want) in cases {
        let mut builder = base().ready("10.180.0.1");
        if let Some(text) = annotation {
            builder = builder.trigger_time(text);
        }
        let info = convert(&builder.build());
        assert_eq!(info.trigger_time, want, "{desc}");
    }
}

#[test]
fn ports_without_number_are_ignored() {
    let s = base()
        .with(|s| {
            let ports = s.ports.as_mut().expect("ports");
            ports.push(port(Some("all"), None, Some("TCP")));
            ports.push(port(Some("zero"), Some(0), Some("TCP")));
            ports.push(port(None, Some(9090), None));
        })
        .build();
    let info = convert(&s);
    assert_eq!(
        info.ports,
        vec![
            SlicePort { name: "p80".into(), port: 8080, protocol: Protocol::Tcp },
            SlicePort { name: String::new(), port: 9090, protocol: Protocol::Tcp },
        ]
    );
}

#[test]
fn malformed_slices_name_the_field() {
    let cases: Vec<(&str, EndpointSlice, &str, Invalid)> = vec![
        ("missing name", base().with(|s| s.metadata.name = None).build(), "metadata.name", Invalid::Missing),
        ("unknown addressType", base().address_type("IP").build(), "addressType", Invalid::Value("IP".into())),
        ("empty addressType", base().address_type("").build(), "addressType", Invalid::Value(String::new())),
        (
            "bad address",
            base().ready("10.180.0.1").ready("10.180.0.256").build(),
            "endpoints[1].addresses[0]",
            Invalid::Ip("10.180.0.256".into()),
        ),
        ("empty address", base().ready("").build(), "endpoints[0].addresses[0]", Invalid::Ip(String::new())),
        (
            "IPv6 address in an IPv4 slice",
            base().ready("10.180.0.1").ready("fd00::1").build(),
            "endpoints[1].addresses[0]",
            Invalid::Value("fd00::1 is not an IPv4 address".into()),
        ),
        (
            "IPv4 address in an IPv6 slice",
            base().address_type("IPv6").ready("10.180.0.1").build(),
            "endpoints[0].addresses[0]",
            Invalid::Value("10.180.0.1 is not an IPv6 address".into()),
        ),
        ("port 70000", base().tcp("big", 70_000).build(), "ports[1].port", Invalid::Port(70_000)),
        ("negative port", base().tcp("neg", -1).build(), "ports[1].port", Invalid::Port(-1)),
        (
            "unknown protocol",
            base().port("h", 80, "HTTP").build(),
            "ports[1].protocol",
            Invalid::Protocol("HTTP".into()),
        ),
    ];
    for (desc, s, field, reason) in cases {
        let err = convert_err(&s);
        let want_name = if field == "metadata.name" { "" } else { SLICE };
        assert_eq!(err.kind, ObjectKind::EndpointSlice, "{desc}");
        assert_eq!(err.object, NamespacedName::new(NS, want_name), "{desc}");
        assert_eq!(err.field, field, "{desc}");
        assert_eq!(err.reason, reason, "{desc}");
        assert!(err.to_string().starts_with("EndpointSlice ns1/"), "{desc}: {err}");
    }
}

#[test]
fn port_index_counts_ignored_ports() {
    // Field paths index the API list, not the list of ports kept.
    let s = slice(NS, SVC, SLICE)
        .with(|s| {
            let ports = s.ports.as_mut().expect("ports");
            ports.push(port(Some("all"), None, Some("TCP")));
            ports.push(port(Some("bad"), Some(80), Some("ICMP")));
        })
        .build();
    assert_eq!(convert_err(&s).field, "ports[1].protocol");
}

fn hostile() -> Vec<String> {
    let mut values: Vec<String> =
        ["a\"b", "x;y", "a\nb", "a}", "{a", "a b", "pört", "A", "a_b", "-a", "a-"].map(String::from).to_vec();
    values.push("a".repeat(254));
    values
}

fn name_error(field: &str, rule: NameRule, value: &str) -> (String, Invalid) {
    (field.to_owned(), Invalid::Name { rule, value: value.to_owned() })
}

fn error_of(s: &EndpointSlice) -> (String, Invalid) {
    let err = convert_err(s);
    (err.field, err.reason)
}

#[test]
fn slice_names_are_dns1123_subdomains() {
    for bad in hostile() {
        let err = convert_err(&slice(NS, SVC, &bad).tcp("p80", 8080).build());
        assert_eq!(err.object, NamespacedName::new(NS, bad.as_str()));
        assert_eq!((err.field, err.reason), name_error("metadata.name", NameRule::Dns1123Subdomain, &bad), "{bad:?}");
    }
    let longest = format!("{}.{}", "a".repeat(126), "b".repeat(126));
    assert_eq!(convert(&slice(NS, SVC, &longest).build()).slice_name, longest);
}

#[test]
fn slice_namespaces_are_dns1123_labels() {
    for bad in hostile().into_iter().chain(["a.b".to_owned(), "n".repeat(64)]) {
        let want = name_error("metadata.namespace", NameRule::Dns1123Label, &bad);
        assert_eq!(error_of(&slice(&bad, SVC, SLICE).build()), want, "{bad:?}");
    }
}

#[test]
fn service_name_label_must_name_a_service() {
    let field = format!("metadata.labels[{LABEL_SERVICE_NAME}]");
    for bad in hostile().into_iter().chain(["1svc".to_owned(), "a.b".to_owned(), "s".repeat(64)]) {
        assert_eq!(error_of(&slice(NS, &bad, SLICE).build()), name_error(&field, NameRule::Dns1035Label, &bad));
    }
    // A slice that is not for proxies is not looked at further.
    let headless = slice(NS, "Svc", SLICE).label(LABEL_HEADLESS, "").build();
    assert_eq!(EndpointSliceInfo::from_slice(&headless), Ok(None));
}

#[test]
fn slice_port_names_are_dns1123_labels_and_unique() {
    for bad in hostile() {
        let want = name_error("ports[1].name", NameRule::Dns1123Label, &bad);
        assert_eq!(error_of(&base().tcp(&bad, 81).build()), want, "{bad:?}");
        // Even on a port a proxy ignores.
        let ignored = base().with(|s| s.ports.as_mut().expect("ports").push(port(Some(&bad), None, None))).build();
        assert_eq!(error_of(&ignored).0, "ports[1].name", "{bad:?}");
    }
    assert_eq!(
        error_of(&base().udp("p80", 53).build()),
        ("ports[1].name".to_owned(), Invalid::Duplicate("p80".into()))
    );
    let two_unnamed = base().tcp("", 81).udp("", 53).build();
    assert_eq!(error_of(&two_unnamed), ("ports[2].name".to_owned(), Invalid::Duplicate(String::new())));
    let one_unnamed = convert(&base().tcp("", 81).build());
    assert_eq!(one_unnamed.ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), vec!["p80", ""]);
}

#[test]
fn endpoint_node_names_are_dns1123_subdomains() {
    for bad in hostile() {
        let s = base().ready("10.180.0.1").endpoint("10.180.0.2", |e| e.node(&bad)).build();
        assert_eq!(error_of(&s), name_error("endpoints[1].nodeName", NameRule::Dns1123Subdomain, &bad), "{bad:?}");
    }
    let empty = base().endpoint("10.180.0.1", |e| e.node("")).build();
    assert_eq!(error_of(&empty), ("endpoints[0].nodeName".to_owned(), Invalid::Missing));
    let fqdn = only_endpoint(&base().endpoint("10.180.0.1", |e| e.node("node-1.example.com")).build());
    assert_eq!(fqdn.node_name.as_deref(), Some("node-1.example.com"));
}

#[test]
fn zone_that_is_no_label_value_is_dropped() {
    // The apiserver does not validate `zone` and kube-proxy never reads it: not an error.
    for bad in hostile().into_iter().filter(|b| !NameRule::LabelValue.accepts(b)) {
        let ep = only_endpoint(&base().endpoint("10.180.0.1", |e| e.zone(&bad)).build());
        assert_eq!(ep.zone, None, "{bad:?}");
    }
    let upper = only_endpoint(&base().endpoint("10.180.0.1", |e| e.zone("EU_West.1")).build());
    assert_eq!(upper.zone.as_deref(), Some("EU_West.1"));
}

#[test]
fn hints_follow_the_apiserver_rules() {
    for bad in hostile().into_iter().filter(|b| !NameRule::LabelValue.accepts(b)) {
        let s = base().endpoint("10.180.0.1", |e| e.zone_hints(&["zone-a", &bad])).build();
        let want = name_error("endpoints[0].hints.forZones[1].name", NameRule::LabelValue, &bad);
        assert_eq!(error_of(&s), want, "{bad:?}");
    }
    for bad in hostile() {
        let s = base().endpoint("10.180.0.1", |e| e.node_hints(&[&bad])).build();
        let want = name_error("endpoints[0].hints.forNodes[0].name", NameRule::Dns1123Subdomain, &bad);
        assert_eq!(error_of(&s), want, "{bad:?}");
    }
    let empty_node = base().endpoint("10.180.0.1", |e| e.node_hints(&[""])).build();
    assert_eq!(error_of(&empty_node), ("endpoints[0].hints.forNodes[0].name".to_owned(), Invalid::Missing));
    // A label value may be empty, and may hold upper case and '_'.
    let ep = only_endpoint(&base().endpoint("10.180.0.1", |e| e.zone_hints(&["", "EU_West.1"])).build());
    assert_eq!(ep.zone_hints, BTreeSet::from([String::new(), "EU_West.1".to_owned()]));
}
