//! Property tests of the conversion layer: arbitrary, often malformed Services,
//! EndpointSlices and Nodes never make conversion panic; whatever conversion accepts
//! satisfies the model's invariants (every name it keeps follows the apiserver's naming
//! rules, so it is safe in rule text); and any sequence of such objects fed through a
//! [`ChangeTracker`] leaves a [`ProxyState`] whose family views hold only their own family.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, NodeSpec, NodeStatus, Service,
    ServicePort as ApiServicePort, ServiceSpec, ServiceStatus, SessionAffinityConfig,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint as ApiEndpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForNode, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kproxy_core::convert::{
    ANNOTATION_LAST_CHANGE_TRIGGER_TIME, EndpointSliceInfo, LABEL_HEADLESS, LABEL_SERVICE_NAME,
    LABEL_SERVICE_PROXY_NAME, LABEL_TOPOLOGY_ZONE, NodeInfo, ServiceInfo,
};
use kproxy_core::{
    ChangeTracker, ConversionError, IpFamily, MAX_STICKY_MAX_AGE_SECONDS, NamespacedName, ObjectKind, ProxyState,
    ServicePort, SessionAffinity,
};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

/// This node's name in the tracker tests.
const NODE: &str = "node1";

/// Weight of well-formed values in every choice; the garbage weight is a parameter.
const VALID: u32 = 16;

// ---------------------------------------------------------------------------------------
// Strategies for field values.

/// Near misses of names: one character or one byte too many, or characters that would
/// break out of a quoted string, a rule or a line.
fn bad_name() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            "A",
            "a_b",
            "-a",
            "a-",
            ".a",
            "a..b",
            "a.b",
            "1a",
            "a\"b",
            "x;y",
            "a\nb",
            "a\n",
            "{a}",
            "a}",
            "a b",
            "a'b",
            "a/b",
            "ä",
            "ﬁ",
            "a\u{200b}",
            "a\0",
            "\t",
            "..",
        ])
        .prop_map(str::to_owned),
        (62usize..66).prop_map(|n| "a".repeat(n)),
        (252usize..256).prop_map(|n| "a".repeat(n)),
        (60usize..64, select(vec!["\"", ";", "\n", "}", "é"])).prop_map(|(n, c)| format!("{}{c}", "a".repeat(n))),
    ]
    .boxed()
}

/// Strings no field should accept: empty, arbitrary Unicode, near misses, huge.
fn garbage() -> BoxedStrategy<String> {
    prop_oneof![
        bad_name(),
        Just(String::new()),
        Just(" ".to_owned()),
        any::<String>(),
        "[0-9a-fA-F.:/% \t\n-]{0,40}",
        "\\PC{0,12}",
        (1usize..20_000).prop_map(|n| "9".repeat(n)),
        (1usize..5_000).prop_map(|n| "1.".repeat(n)),
        select(vec![
            "None",
            "0",
            "-1",
            "1.2.3",
            "1.2.3.4.5",
            "256.0.0.1",
            "01.2.3.4",
            "1.2.3.4/33",
            "::/129",
            "fe80::1%eth0",
            ":::",
            "1.2.3.4:80",
            "[::1]",
            "١٢٣.٤.٥.٦",
            "１.２.３.４",
            "0x7f.0.0.1",
            "/24",
            "10.0.0.0/-1",
        ])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

fn ipv4() -> BoxedStrategy<String> {
    prop_oneof![any::<u32>().prop_map(|n| Ipv4Addr::from(n).to_string()), Just("10.180.0.1".to_owned())].boxed()
}

fn ipv6() -> BoxedStrategy<String> {
    prop_oneof![any::<u128>().prop_map(|n| Ipv6Addr::from(n).to_string()), Just("fd00::1".to_owned())].boxed()
}

fn padded(s: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (select(vec!["", " ", "\t", "\n"]), s, select(vec!["", " ", "\t", "\r\n"]))
        .prop_map(|(a, s, b)| format!("{a}{s}{b}"))
        .boxed()
}

/// An IP address of either family, sometimes padded, sometimes garbage.
fn ip_text(g: u32) -> BoxedStrategy<String> {
    prop_oneof![VALID / 2 => ipv4(), VALID / 2 => ipv6(), 1 => padded(ipv4()), g => garbage()].boxed()
}

/// An IP address of `family`, sometimes padded, sometimes garbage.
fn family_ip_text(family: IpFamily, g: u32) -> BoxedStrategy<String> {
    let ip = match family {
        IpFamily::V4 => ipv4(),
        IpFamily::V6 => ipv6(),
    };
    prop_oneof![VALID => ip.clone(), 1 => padded(ip), g => ip_text(g)].boxed()
}

/// A CIDR of either family (host bits and all), sometimes padded, sometimes garbage.
fn cidr_text(g: u32) -> BoxedStrategy<String> {
    let v4 = (ipv4(), 0u8..=32).prop_map(|(ip, len)| format!("{ip}/{len}"));
    let v6 = (ipv6(), 0u8..=128).prop_map(|(ip, len)| format!("{ip}/{len}"));
    let wild = (ip_text(g), any::<i16>()).prop_map(|(ip, len)| format!("{ip}/{len}"));
    prop_oneof![VALID / 2 => v4.clone(), VALID / 2 => v6, 1 => padded(v4.boxed()), g => wild, g => garbage()].boxed()
}

/// Usually `Some`: for fields that are almost always present.
fn maybe<T: std::fmt::Debug + Clone + 'static>(s: impl Strategy<Value = T> + 'static) -> BoxedStrategy<Option<T>> {
    prop_oneof![VALID => s.prop_map(Some), 1 => Just(None)].boxed()
}

/// One of the API's values for an enumerated field, or garbage; absent at times.
fn enum_text(valid: &'static [&'static str], g: u32) -> BoxedStrategy<Option<String>> {
    option::of(prop_oneof![VALID => select(valid).prop_map(str::to_owned), g => garbage()]).boxed()
}

/// A port number: mostly valid, sometimes 0, out of range or any i32.
fn port_number(g: u32) -> BoxedStrategy<i32> {
    let bad = prop_oneof![Just(0), Just(65_536), 65_536..=70_000i32, any::<i32>()];
    prop_oneof![VALID => 1..=65_535i32, g => bad].boxed()
}

/// A session affinity timeout: mostly valid, sometimes at or beyond the bounds.
fn timeout(g: u32) -> BoxedStrategy<i32> {
    let bad = prop_oneof![Just(0), Just(86_401), any::<i32>()];
    prop_oneof![VALID => 1..=86_400i32, g => bad].boxed()
}

fn object_names(g: u32) -> BoxedStrategy<String> {
    prop_oneof![VALID => select(vec!["a", "b", "c"]).prop_map(str::to_owned), g => garbage()].boxed()
}

fn meta(g: u32, labels: BoxedStrategy<BTreeMap<String, String>>) -> BoxedStrategy<ObjectMeta> {
    let namespace = prop_oneof![
        VALID => select(vec!["ns1", "ns2"]).prop_map(|ns| Some(ns.to_owned())),
        1 => Just(None),
        g => garbage().prop_map(Some),
    ];
    let name = prop_oneof![VALID => object_names(g).prop_map(Some), 1 => Just(None)];
    (namespace, name, maybe(labels))
        .prop_map(|(namespace, name, labels)| ObjectMeta { namespace, name, labels, ..ObjectMeta::default() })
        .boxed()
}

/// Labels, rarely one of the labels that hand an object to another proxy.
fn labels(g: u32, extra: &'static [&'static str]) -> BoxedStrategy<BTreeMap<String, String>> {
    let key = prop_oneof![
        VALID => select(extra).prop_map(str::to_owned),
        1 => select(vec![LABEL_SERVICE_PROXY_NAME, LABEL_HEADLESS]).prop_map(str::to_owned),
        g => garbage(),
    ];
    let value = prop_oneof![VALID => select(vec!["a", "b", "c", ""]).prop_map(str::to_owned), g => garbage()];
    btree_map(key, value, 0..3).boxed()
}

// ---------------------------------------------------------------------------------------
// Strategies for objects.

/// A port name: mostly one of a few (which may repeat within an object), sometimes garbage.
fn port_name(g: u32) -> BoxedStrategy<Option<String>> {
    option::of(prop_oneof![VALID => select(vec!["", "p80", "dns", "p443"]).prop_map(str::to_owned), g => garbage()])
        .boxed()
}

/// Renames repeated port names and, when there are several ports, empty ones, as the
/// apiserver requires; garbage names stay as they are.
fn unique_port_names<'a>(names: impl Iterator<Item = &'a mut Option<String>>, count: usize) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in names.enumerate() {
        let text = name.clone().unwrap_or_default();
        if (text.is_empty() && count > 1) || !seen.insert(text) {
            *name = Some(format!("port-{i}"));
        }
    }
}

fn service_port(g: u32) -> BoxedStrategy<ApiServicePort> {
    (
        port_name(g),
        port_number(g),
        enum_text(&["TCP", "UDP", "SCTP"], g),
        option::of(prop_oneof![VALID => 30_000..=32_767i32, g => Just(0), g => port_number(g)]),
    )
        .prop_map(|(name, port, protocol, node_port)| ApiServicePort {
            name,
            port,
            protocol,
            node_port,
            ..ApiServicePort::default()
        })
        .boxed()
}

fn service_spec(g: u32) -> BoxedStrategy<ServiceSpec> {
    let cluster_ip = prop_oneof![
        VALID => ip_text(g).prop_map(Some),
        1 => Just(Some("None".to_owned())),
        1 => Just(Some(String::new())),
        1 => Just(None),
    ];
    let ips = (cluster_ip, maybe(vec(ip_text(g), 0..3)), any::<bool>());
    let ports = (maybe(vec(service_port(g), 1..4)), prop_oneof![VALID => Just(true), 1 => Just(false)]);
    let lists = (option::of(vec(ip_text(g), 0..3)), option::of(vec(cidr_text(g), 0..3)));
    let policies = (
        enum_text(&["ClusterIP", "ClusterIP", "NodePort", "LoadBalancer", "LoadBalancer", "ExternalName"], g),
        enum_text(&["Cluster", "Local"], g),
        enum_text(&["Cluster", "Local"], g),
    );
    let affinity = (
        enum_text(&["None", "ClientIP"], g),
        option::of(option::of(option::of(timeout(g)))),
        option::of(prop_oneof![VALID => 30_000..=32_767i32, g => port_number(g)]),
        option::of(prop_oneof![
            VALID => select(vec!["PreferClose", "PreferSameZone", "PreferSameNode"]).prop_map(str::to_owned),
            g => garbage(),
        ]),
    );
    (ips, ports, lists, policies, affinity)
        .prop_map(
            |(
                (cluster_ip, cluster_ips, cluster_ips_follow),
                (mut ports, unique_names),
                (external_ips, source_ranges),
                (type_, external_policy, internal_policy),
                (session_affinity, affinity_config, health_check_node_port, traffic_distribution),
            )| {
                // Mostly keep clusterIPs[0] == clusterIP, as the API server does.
                let cluster_ips = match (cluster_ips_follow, &cluster_ip) {
                    (true, Some(ip)) => {
                        let mut ips = vec![ip.clone()];
                        ips.extend(cluster_ips.unwrap_or_default());
                        Some(ips)
                    }
                    _ => cluster_ips,
                };
                if let Some(ports) = ports.as_mut().filter(|_| unique_names) {
                    let count = ports.len();
                    unique_port_names(ports.iter_mut().map(|p| &mut p.name), count);
                }
                ServiceSpec {
                    cluster_ip,
                    cluster_ips,
                    ports,
                    external_ips,
                    load_balancer_source_ranges: source_ranges,
                    type_,
                    external_traffic_policy: external_policy,
                    internal_traffic_policy: internal_policy,
                    session_affinity,
                    session_affinity_config: affinity_config.map(|client_ip| SessionAffinityConfig {
                        client_ip: client_ip.map(|timeout_seconds| ClientIPConfig { timeout_seconds }),
                    }),
                    health_check_node_port,
                    traffic_distribution,
                    ..ServiceSpec::default()
                }
            },
        )
        .boxed()
}

fn service_status(g: u32) -> BoxedStrategy<ServiceStatus> {
    let ingress = (
        option::of(prop_oneof![VALID => ip_text(g), 1 => Just(String::new())]),
        enum_text(&["VIP", "Proxy"], g),
        option::of(Just("lb.example.com".to_owned())),
    )
        .prop_map(|(ip, ip_mode, hostname)| LoadBalancerIngress { ip, ip_mode, hostname, ..Default::default() });
    option::of(option::of(vec(ingress, 0..3)))
        .prop_map(|lb| ServiceStatus {
            load_balancer: lb.map(|ingress| LoadBalancerStatus { ingress }),
            ..ServiceStatus::default()
        })
        .boxed()
}

fn any_service(g: u32) -> BoxedStrategy<Service> {
    (meta(g, labels(g, &["app", "tier"])), maybe(service_spec(g)), option::of(service_status(g)))
        .prop_map(|(metadata, spec, status)| Service { metadata, spec, status })
        .boxed()
}

fn endpoint(family: IpFamily, g: u32) -> BoxedStrategy<ApiEndpoint> {
    let conditions = option::of(
        (option::of(any::<bool>()), option::of(any::<bool>()), option::of(any::<bool>()))
            .prop_map(|(ready, serving, terminating)| EndpointConditions { ready, serving, terminating }),
    );
    let names = move || prop_oneof![VALID => select(vec!["node1", "node2", "zone-a", "zone-b", ""]).prop_map(str::to_owned), g => garbage()];
    let hints =
        option::of((option::of(vec(names(), 0..3)), option::of(vec(names(), 0..3))).prop_map(|(zones, nodes)| {
            EndpointHints {
                for_zones: zones.map(|z| z.into_iter().map(|name| ForZone { name }).collect()),
                for_nodes: nodes.map(|n| n.into_iter().map(|name| ForNode { name }).collect()),
            }
        }));
    let place = (
        option::of(prop_oneof![VALID => select(vec!["node1", "node2"]).prop_map(str::to_owned), g => garbage()]),
        option::of(prop_oneof![VALID => select(vec!["zone-a", "zone-b"]).prop_map(str::to_owned), g => garbage()]),
    );
    let addresses = prop_oneof![VALID => vec(family_ip_text(family, g), 1..3), 1 => Just(vec![])];
    (addresses, conditions, hints, place)
        .prop_map(|(addresses, conditions, hints, (node_name, zone))| ApiEndpoint {
            addresses,
            conditions,
            hints,
            node_name,
            zone,
            ..ApiEndpoint::default()
        })
        .boxed()
}

fn trigger_time(g: u32) -> BoxedStrategy<String> {
    let valid = (0u64..4_000_000_000, 0u32..1_000_000_000)
        .prop_map(|(s, n)| humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::new(s, n)).to_string());
    prop_oneof![VALID => valid, g => garbage(), g => padded(garbage())].boxed()
}

fn any_slice(g: u32) -> BoxedStrategy<EndpointSlice> {
    let address_type = prop_oneof![
        VALID / 2 => Just("IPv4".to_owned()),
        VALID / 2 => Just("IPv6".to_owned()),
        1 => Just("FQDN".to_owned()),
        g => garbage(),
    ];
    address_type
        .prop_flat_map(move |address_type| {
            let family = if address_type.contains('6') { IpFamily::V6 } else { IpFamily::V4 };
            let service_name =
                prop_oneof![VALID => select(vec!["a", "b", "c"]).prop_map(str::to_owned), g => garbage()];
            let slice_labels = prop_oneof![
                VALID => service_name.prop_map(|svc| BTreeMap::from([(LABEL_SERVICE_NAME.to_owned(), svc)])),
                1 => labels(g, &[LABEL_SERVICE_NAME, "app"]),
            ];
            let port = (port_name(g), maybe(port_number(g)), enum_text(&["TCP", "UDP", "SCTP"], g))
                .prop_map(|(name, port, protocol)| EndpointPort { name, port, protocol, app_protocol: None });
            (
                Just(address_type),
                meta(g, slice_labels.boxed()),
                maybe(vec(port, 0..3)),
                maybe(vec(endpoint(family, g), 0..5)),
                option::of(trigger_time(g)),
                prop_oneof![VALID => Just(true), 1 => Just(false)],
            )
        })
        .prop_map(|(address_type, mut metadata, mut ports, endpoints, trigger, unique_names)| {
            if let Some(ports) = ports.as_mut().filter(|_| unique_names) {
                // Slices may have one unnamed port among several, but not two.
                unique_port_names(ports.iter_mut().map(|p| &mut p.name), 1);
            }
            metadata.annotations =
                trigger.map(|t| BTreeMap::from([(ANNOTATION_LAST_CHANGE_TRIGGER_TIME.to_owned(), t)]));
            EndpointSlice { address_type, metadata, ports, endpoints }
        })
        .boxed()
}

fn any_node(g: u32) -> BoxedStrategy<Node> {
    let name = prop_oneof![VALID => Just(Some(NODE.to_owned())), 1 => Just(None), g => garbage().prop_map(Some)];
    let node_labels = option::of(btree_map(
        prop_oneof![
            VALID => select(vec![LABEL_TOPOLOGY_ZONE, "kubernetes.io/hostname", "role"]).prop_map(str::to_owned),
            g => garbage(),
        ],
        prop_oneof![VALID => select(vec!["zone-a", "zone-b", ""]).prop_map(str::to_owned), g => garbage()],
        0..3,
    ));
    let address = (
        prop_oneof![
            VALID => select(vec!["InternalIP", "ExternalIP", "Hostname", "InternalDNS"]).prop_map(str::to_owned),
            g => garbage(),
        ],
        ip_text(g),
    )
        .prop_map(|(type_, address)| NodeAddress { address, type_ });
    (name, node_labels, option::of(option::of(vec(address, 0..4))), option::of(option::of(vec(cidr_text(g), 0..3))))
        .prop_map(|(name, labels, addresses, pod_cidrs)| Node {
            metadata: ObjectMeta { name, labels, ..ObjectMeta::default() },
            spec: pod_cidrs.map(|pod_cidrs| NodeSpec { pod_cidrs, ..NodeSpec::default() }),
            status: addresses.map(|addresses| NodeStatus { addresses, ..NodeStatus::default() }),
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------
// Naming rules, written out again from the apiserver's regular expressions.

/// Only characters that need no quoting in nft or iptables rule text, comments or logs.
fn plain(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` of at most `max` characters.
fn dns_label(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn dns1123_label(s: &str) -> bool {
    dns_label(s, 63)
}

fn dns1035_label(s: &str) -> bool {
    dns1123_label(s) && s.starts_with(|c: char| c.is_ascii_lowercase())
}

fn dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|label| dns_label(label, usize::MAX))
}

fn label_value(s: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric();
    s.is_empty() || (s.len() <= 63 && plain(s) && !s.contains('/') && s.starts_with(edge) && s.ends_with(edge))
}

fn check_port_name(port: &str) -> Result<(), TestCaseError> {
    prop_assert!(port.is_empty() || dns1123_label(port), "port name {:?}", port);
    Ok(())
}

fn check_service_name(name: &NamespacedName) -> Result<(), TestCaseError> {
    prop_assert!(dns1123_label(&name.namespace), "namespace {:?}", name.namespace);
    prop_assert!(dns1035_label(&name.name), "Service name {:?}", name.name);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Invariants.

fn expected_object(meta: &ObjectMeta) -> NamespacedName {
    NamespacedName::new(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
}

fn check_error(
    err: &ConversionError,
    kind: ObjectKind,
    object: NamespacedName,
    prefixes: &[&str],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(err.kind, kind);
    prop_assert_eq!(&err.object, &object);
    prop_assert!(prefixes.iter().any(|p| err.field.starts_with(p)), "unexpected field path {:?}", err.field);
    let text = err.to_string();
    prop_assert!(text.contains(&err.field), "{} does not name {}", text, err.field);
    prop_assert!(!text.contains('\n') && !text.contains('\r'), "a line break in the message {:?}", text);
    Ok(())
}

/// What every service port of `family` must satisfy, wherever it comes from.
fn check_service_port(family: IpFamily, port: &ServicePort) -> Result<(), TestCaseError> {
    prop_assert_ne!(port.port, 0);
    prop_assert_ne!(port.node_port, Some(0));
    prop_assert_ne!(port.health_check_node_port, Some(0));
    prop_assert_eq!(IpFamily::of(&port.cluster_ip), family);
    prop_assert!(port.external_ips.iter().all(|ip| IpFamily::of(ip) == family), "{:?}", port.external_ips);
    prop_assert!(port.load_balancer_vips.iter().all(|ip| IpFamily::of(ip) == family), "{:?}", port.load_balancer_vips);
    for net in &port.load_balancer_source_ranges {
        prop_assert_eq!(IpFamily::of(&net.addr()), family);
        prop_assert_eq!(*net, net.trunc(), "host bits are dropped");
    }
    if let SessionAffinity::ClientIp { timeout_seconds } = port.session_affinity {
        prop_assert!((1..=MAX_STICKY_MAX_AGE_SECONDS).contains(&timeout_seconds), "timeout {}", timeout_seconds);
    }
    if port.health_check_node_port.is_some() {
        prop_assert!(port.external_policy_local, "health check port without externalTrafficPolicy Local");
    }
    Ok(())
}

fn check_service(svc: &Service) -> Result<(), TestCaseError> {
    let skip = ServiceInfo::skip_reason(svc);
    match ServiceInfo::from_service(svc) {
        Ok(None) => prop_assert!(skip.is_some(), "Ok(None) without a skip reason"),
        Ok(Some(info)) => {
            prop_assert!(skip.is_none(), "proxied although skipped for {:?}", skip);
            prop_assert_eq!(&info.name, &expected_object(&svc.metadata));
            prop_assert!(!info.name.name.is_empty());
            let spec_ports = svc.spec.as_ref().and_then(|s| s.ports.as_ref()).map_or(0, Vec::len);
            for family in IpFamily::ALL {
                let ports = info.ports(family);
                match info.cluster_ip(family) {
                    None => prop_assert!(ports.is_empty()),
                    Some(ip) => {
                        prop_assert_eq!(IpFamily::of(&ip), family);
                        prop_assert!(ports.len() <= spec_ports);
                    }
                }
                let mut names = std::collections::BTreeSet::new();
                for (name, port) in &ports {
                    check_service_name(&name.service)?;
                    check_port_name(&name.port)?;
                    prop_assert!(names.insert(name.port.clone()), "port name {:?} twice", name.port);
                    prop_assert!(ports.len() == 1 || !name.port.is_empty(), "unnamed port among {}", ports.len());
                    prop_assert_eq!(&name.service, &info.name);
                    prop_assert_eq!(name.protocol, port.protocol);
                    prop_assert_eq!(Some(port.cluster_ip), info.cluster_ip(family));
                    check_service_port(family, port)?;
                }
            }
        }
        Err(err) => {
            check_error(&err, ObjectKind::Service, expected_object(&svc.metadata), &["metadata.", "spec.", "status."])?
        }
    }
    Ok(())
}

fn check_slice(slice: &EndpointSlice) -> Result<(), TestCaseError> {
    let labels = slice.metadata.labels.clone().unwrap_or_default();
    match EndpointSliceInfo::from_slice(slice) {
        Ok(None) => {
            let not_for_proxies = slice.address_type == "FQDN"
                || labels.get(LABEL_SERVICE_NAME).is_none_or(String::is_empty)
                || labels.contains_key(LABEL_HEADLESS)
                || labels.contains_key(LABEL_SERVICE_PROXY_NAME);
            prop_assert!(not_for_proxies, "Ok(None) for a slice meant for proxies");
        }
        Ok(Some(info)) => {
            let family = match slice.address_type.as_str() {
                "IPv4" => IpFamily::V4,
                "IPv6" => IpFamily::V6,
                other => return Err(TestCaseError::fail(format!("accepted addressType {other:?}"))),
            };
            prop_assert_eq!(info.family, family);
            let object = expected_object(&slice.metadata);
            prop_assert_eq!(&info.slice_name, &object.name);
            prop_assert!(!info.slice_name.is_empty());
            prop_assert_eq!(&info.service.namespace, &object.namespace);
            prop_assert_eq!(Some(&info.service.name), labels.get(LABEL_SERVICE_NAME));
            prop_assert!(info.ports.iter().all(|p| p.port != 0), "{:?}", info.ports);
            prop_assert!(info.ports.len() <= slice.ports.as_ref().map_or(0, Vec::len));
            prop_assert!(info.endpoints.iter().all(|e| IpFamily::of(&e.ip) == family), "{:?}", info.endpoints);
            prop_assert!(info.endpoints.len() <= slice.endpoints.as_ref().map_or(0, Vec::len));
            prop_assert!(dns1123_subdomain(&info.slice_name), "slice name {:?}", info.slice_name);
            check_service_name(&info.service)?;
            for port in &info.ports {
                check_port_name(&port.name)?;
            }
            for e in &info.endpoints {
                prop_assert!(e.node_name.as_deref().is_none_or(dns1123_subdomain), "nodeName {:?}", e.node_name);
                prop_assert!(e.zone.as_deref().is_none_or(label_value), "zone {:?}", e.zone);
                prop_assert!(e.zone_hints.iter().all(label_value), "zone hints {:?}", e.zone_hints);
                prop_assert!(e.node_hints.iter().all(dns1123_subdomain), "node hints {:?}", e.node_hints);
            }
        }
        Err(err) => check_error(
            &err,
            ObjectKind::EndpointSlice,
            expected_object(&slice.metadata),
            &["metadata.name", "metadata.namespace", "metadata.labels[", "addressType", "ports[", "endpoints["],
        )?,
    }
    Ok(())
}

fn check_node(node: &Node) -> Result<(), TestCaseError> {
    match NodeInfo::from_node(node) {
        Ok(info) => {
            prop_assert_eq!(Some(&info.name), node.metadata.name.as_ref());
            prop_assert!(!info.name.is_empty());
            prop_assert_eq!(&info.labels, &node.metadata.labels.clone().unwrap_or_default());
            prop_assert_eq!(info.zone(), info.labels.get(LABEL_TOPOLOGY_ZONE).map(String::as_str));
            prop_assert!(info.pod_cidrs.iter().all(|net| *net == net.trunc()));
            prop_assert!(dns1123_subdomain(&info.name), "node name {:?}", info.name);
            for (key, value) in &info.labels {
                prop_assert!(plain(key) && !key.is_empty() && key.len() <= 253 + 1 + 63, "label key {:?}", key);
                prop_assert!(label_value(value), "label {:?}={:?}", key, value);
            }
        }
        Err(err) => {
            let object = NamespacedName::new("", node.metadata.name.as_deref().unwrap_or_default());
            let fields = ["metadata.name", "metadata.labels", "spec.podCIDRs[", "status.addresses["];
            check_error(&err, ObjectKind::Node, object, &fields)?;
        }
    }
    Ok(())
}

fn check_state(state: &ProxyState) -> Result<(), TestCaseError> {
    for view in state.families() {
        for (name, port) in view.services.iter() {
            prop_assert_eq!(name.protocol, port.protocol);
            check_service_port(view.family, port)?;
        }
        for (name, endpoints) in view.endpoints.iter() {
            for ep in endpoints {
                prop_assert_eq!(IpFamily::of(&ep.ip), view.family, "{} in the {} view of {}", ep, view.family, name);
                prop_assert_ne!(ep.port, 0);
                if ep.is_local {
                    prop_assert_eq!(ep.node_name.as_deref(), Some(NODE));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Event sequences.

#[derive(Debug, Clone)]
enum Event {
    ServiceUpdate(Box<Service>),
    ServiceDelete(NamespacedName),
    SliceUpdate(Box<EndpointSlice>),
    SliceDelete(Box<EndpointSlice>),
    NodeUpdate(Box<Node>),
    ServicesReset(Vec<Service>),
    SlicesReset(Vec<EndpointSlice>),
    FullSync,
    Sync,
}

fn event(g: u32) -> BoxedStrategy<Event> {
    let name = (select(vec!["ns1", "ns2", "default"]), select(vec!["a", "b", "c"]))
        .prop_map(|(ns, name)| NamespacedName::new(ns, name));
    prop_oneof![
        8 => any_service(g).prop_map(|s| Event::ServiceUpdate(Box::new(s))),
        2 => name.prop_map(Event::ServiceDelete),
        8 => any_slice(g).prop_map(|s| Event::SliceUpdate(Box::new(s))),
        2 => any_slice(g).prop_map(|s| Event::SliceDelete(Box::new(s))),
        1 => any_node(g).prop_map(|n| Event::NodeUpdate(Box::new(n))),
        1 => vec(any_service(g), 0..4).prop_map(Event::ServicesReset),
        1 => vec(any_slice(g), 0..4).prop_map(Event::SlicesReset),
        1 => Just(Event::FullSync),
        3 => Just(Event::Sync),
    ]
    .boxed()
}

/// Checks out `tracker` into `state` and checks the result and the tracker's bookkeeping.
fn sync(tracker: &mut ChangeTracker, state: &mut ProxyState) -> Result<(), TestCaseError> {
    tracker.checkout_into(state);
    prop_assert!(!tracker.pending(), "changes pending right after a checkout");
    prop_assert_eq!(tracker.service_changes_pending(), 0);
    prop_assert_eq!(tracker.endpoint_changes_pending(), 0);
    check_state(state)?;
    let again = tracker.checkout_into(state);
    prop_assert!(again.is_empty(), "a second checkout found changes: {:?}", again);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Properties.

/// Garbage weight of the single-object properties: malformed values are common.
const GARBAGE: u32 = 6;
/// Garbage weight of the event sequences: most objects convert, some do not.
const SOME_GARBAGE: u32 = 1;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn service_conversion_never_panics(svc in any_service(GARBAGE)) {
        check_service(&svc)?;
    }

    #[test]
    fn mostly_valid_service_conversion_keeps_invariants(svc in any_service(SOME_GARBAGE)) {
        check_service(&svc)?;
    }

    #[test]
    fn slice_conversion_never_panics(slice in any_slice(GARBAGE)) {
        check_slice(&slice)?;
    }

    #[test]
    fn mostly_valid_slice_conversion_keeps_invariants(slice in any_slice(SOME_GARBAGE)) {
        check_slice(&slice)?;
    }

    #[test]
    fn node_conversion_never_panics(node in any_node(GARBAGE)) {
        check_node(&node)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn event_sequences_keep_family_views_pure(events in vec(event(SOME_GARBAGE), 0..40)) {
        let mut tracker = ChangeTracker::new(NODE, UNIX_EPOCH + Duration::from_secs(1_000_000_000));
        let mut state = ProxyState::new(NODE);
        for event in &events {
            match event {
                Event::ServiceUpdate(svc) => {
                    let result = tracker.on_service_update(svc);
                    prop_assert_eq!(result.is_err(), ServiceInfo::from_service(svc).is_err());
                }
                Event::ServiceDelete(name) => {
                    tracker.on_service_delete(name);
                }
                Event::SliceUpdate(slice) => {
                    let result = tracker.on_slice_update(slice);
                    prop_assert_eq!(result.is_err(), EndpointSliceInfo::from_slice(slice).is_err());
                }
                Event::SliceDelete(slice) => {
                    tracker.on_slice_delete(slice);
                }
                Event::NodeUpdate(node) => {
                    let result = tracker.on_node_update(node);
                    prop_assert_eq!(result.is_err(), NodeInfo::from_node(node).is_err());
                }
                Event::ServicesReset(services) => {
                    let errors = tracker.on_services_reset(services);
                    let want = services.iter().filter(|s| ServiceInfo::from_service(s).is_err()).count();
                    prop_assert_eq!(errors.len(), want);
                }
                Event::SlicesReset(slices) => {
                    let errors = tracker.on_slices_reset(slices);
                    let want = slices.iter().filter(|s| EndpointSliceInfo::from_slice(s).is_err()).count();
                    prop_assert_eq!(errors.len(), want);
                }
                Event::FullSync => tracker.request_full_sync(),
                Event::Sync => sync(&mut tracker, &mut state)?,
            }
        }
        sync(&mut tracker, &mut state)?;
    }
}
