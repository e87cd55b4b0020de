use super::*;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, ServicePort as ApiServicePort, SessionAffinityConfig};
use kproxy_testkit::service;

use crate::convert::LABEL_HEADLESS;
use crate::convert::NameRule;

const NS: &str = "ns1";
const NAME: &str = "svc1";

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test IP")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("test CIDR")
}

/// A ClusterIP Service with an IPv4 cluster IP and one TCP port.
fn base() -> kproxy_testkit::ServiceBuilder {
    service(NS, NAME).cluster_ip("172.30.0.41").tcp("p80", 80)
}

fn convert(svc: &Service) -> ServiceInfo {
    ServiceInfo::from_service(svc).expect("well formed").expect("proxied")
}

fn convert_err(svc: &Service) -> ConversionError {
    ServiceInfo::from_service(svc).expect_err("malformed")
}

/// The single port of `svc` in `family`.
fn only_port(svc: &Service, family: IpFamily) -> ServicePort {
    let ports = convert(svc).ports(family);
    assert_eq!(ports.len(), 1, "{ports:?}");
    ports.into_values().next().expect("one port")
}

#[test]
fn skip_reasons() {
    let no_spec = service(NS, NAME).with(|s| s.spec = None).build();
    let cases: Vec<(&str, Service, Option<SkipReason>)> = vec![
        ("plain ClusterIP", base().build(), None),
        (
            "headless clusterIP None",
            service(NS, NAME).cluster_ip("None").tcp("p80", 80).build(),
            Some(SkipReason::Headless),
        ),
        (
            "headless, clusterIP only",
            service(NS, NAME)
                .tcp("p80", 80)
                .with(|s| s.spec.as_mut().expect("spec").cluster_ip = Some("None".into()))
                .build(),
            Some(SkipReason::Headless),
        ),
        (
            "ExternalName without cluster IP",
            service(NS, NAME).type_("ExternalName").build(),
            Some(SkipReason::ExternalName),
        ),
        ("ExternalName with a cluster IP", base().type_("ExternalName").build(), Some(SkipReason::ExternalName)),
        ("empty cluster IP", service(NS, NAME).cluster_ip("").tcp("p80", 80).build(), Some(SkipReason::NoClusterIp)),
        ("no cluster IP at all", service(NS, NAME).tcp("p80", 80).build(), Some(SkipReason::NoClusterIp)),
        (
            "empty clusterIPs falls back to empty clusterIP",
            service(NS, NAME).with(|s| s.spec.as_mut().expect("spec").cluster_ips = Some(vec![])).build(),
            Some(SkipReason::NoClusterIp),
        ),
        ("no spec", no_spec, Some(SkipReason::NoClusterIp)),
        (
            "service-proxy-name label",
            base().label(LABEL_SERVICE_PROXY_NAME, "other-proxy").build(),
            Some(SkipReason::OtherProxy),
        ),
        (
            "service-proxy-name label, empty value",
            base().label(LABEL_SERVICE_PROXY_NAME, "").build(),
            Some(SkipReason::OtherProxy),
        ),
        ("headless label", base().label(LABEL_HEADLESS, "").build(), Some(SkipReason::Headless)),
        ("unrelated label", base().label("app", "web").build(), None),
    ];
    for (desc, svc, want) in cases {
        assert_eq!(ServiceInfo::skip_reason(&svc), want, "{desc}: skip_reason");
        let converted = ServiceInfo::from_service(&svc);
        match want {
            Some(_) => assert_eq!(converted, Ok(None), "{desc}: from_service"),
            None => assert!(matches!(converted, Ok(Some(_))), "{desc}: from_service gave {converted:?}"),
        }
    }
}

#[test]
fn skipped_services_are_not_validated_further() {
    // A headless Service's ports and IP lists are of no use to a proxy: not an error.
    let svc = service(NS, NAME).cluster_ip("None").tcp("bad", 0).external_ips(&["not-an-ip"]).build();
    assert_eq!(ServiceInfo::from_service(&svc), Ok(None));
}

#[test]
fn single_stack_ipv4_port() {
    let svc = base().udp("dns", 53).traffic_distribution("PreferClose").build();
    let info = convert(&svc);
    assert_eq!(info.name, NamespacedName::new(NS, NAME));
    assert_eq!(info.cluster_ip(IpFamily::V4), Some(ip("172.30.0.41")));
    assert_eq!(info.cluster_ip(IpFamily::V6), None);
    assert!(info.ports(IpFamily::V6).is_empty(), "no IPv6 cluster IP, no IPv6 ports");

    let ports = info.ports(IpFamily::V4);
    let tcp = ServicePortName::new(NamespacedName::new(NS, NAME), "p80", Protocol::Tcp);
    let udp = ServicePortName::new(NamespacedName::new(NS, NAME), "dns", Protocol::Udp);
    assert_eq!(ports.keys().cloned().collect::<Vec<_>>(), vec![udp.clone(), tcp.clone()], "sorted by name");
    let want = ServicePort {
        traffic_distribution: Some("PreferClose".into()),
        ..ServicePort::new(ip("172.30.0.41"), 80, Protocol::Tcp)
    };
    assert_eq!(ports[&tcp], want);
    assert_eq!(ports[&udp].port, 53);
    assert_eq!(ports[&udp].protocol, Protocol::Udp);
}

#[test]
fn port_defaults_name_protocol_and_namespace() {
    let svc = service(NS, NAME)
        .cluster_ip("172.30.0.41")
        .with(|s| {
            s.metadata.namespace = None;
            s.spec.as_mut().expect("spec").ports =
                Some(vec![ApiServicePort { port: 8080, ..ApiServicePort::default() }]);
        })
        .build();
    let info = convert(&svc);
    assert_eq!(info.name, NamespacedName::new("default", NAME));
    let ports = info.ports(IpFamily::V4);
    let name = ServicePortName::new(NamespacedName::new("default", NAME), "", Protocol::Tcp);
    assert_eq!(ports[&name], ServicePort::new(ip("172.30.0.41"), 8080, Protocol::Tcp));
}

#[test]
fn node_ports() {
    let cases: Vec<(&str, Option<i32>, Option<u16>)> =
        vec![("absent", None, None), ("zero means none", Some(0), None), ("set", Some(30080), Some(30080))];
    for (desc, node_port, want) in cases {
        let svc =
            service(NS, NAME).type_("NodePort").cluster_ip("172.30.0.41").port("p80", 80, "TCP", node_port).build();
        assert_eq!(only_port(&svc, IpFamily::V4).node_port, want, "{desc}");
    }
}

#[test]
fn dual_stack_projection_per_family() {
    let svc = service(NS, NAME)
        .type_("LoadBalancer")
        .cluster_ips(&["172.30.0.41", "fd00:172:30::41"])
        .tcp("p80", 80)
        .external_ips(&["192.168.99.11", "2001:db8::11", "192.168.99.12"])
        .lb_ingress("1.2.3.4", None)
        .lb_ingress("2001:db8::1:4", Some("VIP"))
        .source_ranges(&[" 10.0.0.0/8 ", "\t2001:db8::/32\n", "192.168.0.0/16"])
        .build();
    let info = convert(&svc);
    assert_eq!(info.cluster_ip(IpFamily::V4), Some(ip("172.30.0.41")));
    assert_eq!(info.cluster_ip(IpFamily::V6), Some(ip("fd00:172:30::41")));

    let v4 = only_port(&svc, IpFamily::V4);
    assert_eq!(v4.cluster_ip, ip("172.30.0.41"));
    assert_eq!(v4.external_ips, vec![ip("192.168.99.11"), ip("192.168.99.12")]);
    assert_eq!(v4.load_balancer_vips, vec![ip("1.2.3.4")]);
    assert_eq!(v4.load_balancer_source_ranges, vec![net("10.0.0.0/8"), net("192.168.0.0/16")]);

    let v6 = only_port(&svc, IpFamily::V6);
    assert_eq!(v6.cluster_ip, ip("fd00:172:30::41"));
    assert_eq!(v6.external_ips, vec![ip("2001:db8::11")]);
    assert_eq!(v6.load_balancer_vips, vec![ip("2001:db8::1:4")]);
    assert_eq!(v6.load_balancer_source_ranges, vec![net("2001:db8::/32")]);
}

#[test]
fn ipv6_primary_dual_stack() {
    let svc = service(NS, NAME).cluster_ips(&["fd00::41", "172.30.0.41"]).tcp("p80", 80).build();
    assert_eq!(only_port(&svc, IpFamily::V4).cluster_ip, ip("172.30.0.41"));
    assert_eq!(only_port(&svc, IpFamily::V6).cluster_ip, ip("fd00::41"));
}

#[test]
fn single_stack_ipv6_has_no_ipv4_ports() {
    let svc = service(NS, NAME).cluster_ip("fd00::41").tcp("p80", 80).external_ips(&["192.168.99.11"]).build();
    let info = convert(&svc);
    assert!(info.ports(IpFamily::V4).is_empty());
    let v6 = only_port(&svc, IpFamily::V6);
    assert!(v6.external_ips.is_empty(), "the IPv4 external IP has no place in the IPv6 view");
}

#[test]
fn cluster_ip_only_without_cluster_ips() {
    let svc = service(NS, NAME)
        .tcp("p80", 80)
        .with(|s| s.spec.as_mut().expect("spec").cluster_ip = Some(" 172.30.0.41 ".into()))
        .build();
    assert_eq!(only_port(&svc, IpFamily::V4).cluster_ip, ip("172.30.0.41"));
}

#[test]
fn source_ranges_are_trimmed_and_truncated() {
    let svc = base().type_("LoadBalancer").source_ranges(&["  10.1.2.3/8", "192.168.1.0/24  "]).build();
    assert_eq!(
        only_port(&svc, IpFamily::V4).load_balancer_source_ranges,
        vec![net("10.0.0.0/8"), net("192.168.1.0/24")]
    );
}

#[test]
fn load_balancer_ingress_ip_modes() {
    let cases: Vec<(&str, Option<&str>, bool)> =
        vec![("unset is VIP", None, true), ("VIP", Some("VIP"), true), ("Proxy is excluded", Some("Proxy"), false)];
    for (desc, mode, included) in cases {
        let svc = base().type_("LoadBalancer").lb_ingress("1.2.3.4", mode).build();
        let want = if included { vec![ip("1.2.3.4")] } else { vec![] };
        assert_eq!(only_port(&svc, IpFamily::V4).load_balancer_vips, want, "{desc}");
    }
}

#[test]
fn load_balancer_ingress_without_ip_is_skipped() {
    let svc = base()
        .type_("LoadBalancer")
        .lb_ingress("", None)
        .lb_ingress("5.6.7.8", None)
        .with(|s| {
            let status = s.status.as_mut().expect("status");
            let ingress = status.load_balancer.as_mut().and_then(|lb| lb.ingress.as_mut()).expect("ingress");
            ingress.push(LoadBalancerIngress {
                hostname: Some("lb.example.com".into()),
                ..LoadBalancerIngress::default()
            });
        })
        .build();
    assert_eq!(only_port(&svc, IpFamily::V4).load_balancer_vips, vec![ip("5.6.7.8")]);
}

#[test]
fn proxy_mode_ingress_ip_is_not_parsed() {
    // Proxy-mode ingress IPs are never used, so their content does not matter.
    let svc = base().type_("LoadBalancer").lb_ingress("not-an-ip", Some("Proxy")).build();
    assert!(only_port(&svc, IpFamily::V4).load_balancer_vips.is_empty());
}

#[test]
fn session_affinity() {
    let no_client_ip = base()
        .with(|s| {
            let spec = s.spec.as_mut().expect("spec");
            spec.session_affinity = Some("ClientIP".into());
            spec.session_affinity_config = Some(SessionAffinityConfig { client_ip: None });
        })
        .build();
    let none_with_timeout = base()
        .client_ip_affinity(Some(0))
        .with(|s| s.spec.as_mut().expect("spec").session_affinity = Some("None".into()))
        .build();
    let cases: Vec<(&str, Service, SessionAffinity)> = vec![
        ("absent", base().build(), SessionAffinity::None),
        ("None ignores the config", none_with_timeout, SessionAffinity::None),
        (
            "ClientIP, default timeout",
            base().client_ip_affinity(None).build(),
            SessionAffinity::ClientIp { timeout_seconds: 10_800 },
        ),
        ("ClientIP, config without clientIP", no_client_ip, SessionAffinity::ClientIp { timeout_seconds: 10_800 }),
        (
            "ClientIP, explicit",
            base().client_ip_affinity(Some(60)).build(),
            SessionAffinity::ClientIp { timeout_seconds: 60 },
        ),
        (
            "ClientIP, lowest",
            base().client_ip_affinity(Some(1)).build(),
            SessionAffinity::ClientIp { timeout_seconds: 1 },
        ),
        (
            "ClientIP, highest",
            base().client_ip_affinity(Some(86_400)).build(),
            SessionAffinity::ClientIp { timeout_seconds: 86_400 },
        ),
    ];
    for (desc, svc, want) in cases {
        let port = only_port(&svc, IpFamily::V4);
        assert_eq!(port.session_affinity, want, "{desc}");
        assert_eq!(
            port.sticky_max_age_seconds(),
            match want {
                SessionAffinity::None => None,
                SessionAffinity::ClientIp { timeout_seconds } => Some(timeout_seconds),
            },
            "{desc}"
        );
    }
    assert_eq!(DEFAULT_STICKY_MAX_AGE_SECONDS, 10_800);
}

#[test]
fn session_affinity_timeout_out_of_range() {
    for timeout in [0, 86_401, -1, i32::MIN, i32::MAX] {
        let err = convert_err(&base().client_ip_affinity(Some(timeout)).build());
        assert_eq!(err.field, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "{timeout}");
        assert_eq!(err.reason, Invalid::Range { value: i64::from(timeout), min: 1, max: 86_400 }, "{timeout}");
        assert!(err.to_string().contains("spec.sessionAffinityConfig.clientIP.timeoutSeconds"), "{err}");
    }
}

#[test]
fn external_traffic_policy_local_counts_only_when_externally_accessible() {
    let cases: Vec<(&str, Service, bool)> = vec![
        ("ClusterIP", base().external_traffic_policy("Local").build(), false),
        (
            "ClusterIP with externalIPs",
            base().external_ips(&["192.168.99.11"]).external_traffic_policy("Local").build(),
            true,
        ),
        (
            "ClusterIP with externalIPs of the other family only",
            base().external_ips(&["2001:db8::11"]).external_traffic_policy("Local").build(),
            true,
        ),
        ("NodePort", base().type_("NodePort").external_traffic_policy("Local").build(), true),
        ("LoadBalancer", base().type_("LoadBalancer").external_traffic_policy("Local").build(), true),
        (
            "type unset",
            base().with(|s| s.spec.as_mut().expect("spec").type_ = None).external_traffic_policy("Local").build(),
            false,
        ),
        ("LoadBalancer, Cluster", base().type_("LoadBalancer").external_traffic_policy("Cluster").build(), false),
        ("LoadBalancer, empty", base().type_("LoadBalancer").external_traffic_policy("").build(), false),
        ("LoadBalancer, absent", base().type_("LoadBalancer").build(), false),
    ];
    for (desc, svc, want) in cases {
        assert_eq!(only_port(&svc, IpFamily::V4).external_policy_local, want, "{desc}");
    }
}

#[test]
fn internal_traffic_policy() {
    let cases: Vec<(&str, Option<&str>, bool)> =
        vec![("absent", None, false), ("Cluster", Some("Cluster"), false), ("Local", Some("Local"), true)];
    for (desc, policy, want) in cases {
        let mut builder = base();
        if let Some(policy) = policy {
            builder = builder.internal_traffic_policy(policy);
        }
        assert_eq!(only_port(&builder.build(), IpFamily::V4).internal_policy_local, want, "{desc}");
    }
}

#[test]
fn health_check_node_port_only_for_load_balancer_local() {
    let cases: Vec<(&str, Service, Option<u16>)> = vec![
        (
            "LoadBalancer, Local",
            base().type_("LoadBalancer").external_traffic_policy("Local").health_check_node_port(30_000).build(),
            Some(30_000),
        ),
        (
            "LoadBalancer, Local, zero",
            base().type_("LoadBalancer").external_traffic_policy("Local").health_check_node_port(0).build(),
            None,
        ),
        ("LoadBalancer, Local, absent", base().type_("LoadBalancer").external_traffic_policy("Local").build(), None),
        ("LoadBalancer, Cluster", base().type_("LoadBalancer").health_check_node_port(30_000).build(), None),
        (
            "NodePort, Local",
            base().type_("NodePort").external_traffic_policy("Local").health_check_node_port(30_000).build(),
            None,
        ),
        (
            "ClusterIP with externalIPs, Local",
            base()
                .external_ips(&["192.168.99.11"])
                .external_traffic_policy("Local")
                .health_check_node_port(30_000)
                .build(),
            None,
        ),
        (
            "LoadBalancer, Cluster, out of range is not looked at",
            base().type_("LoadBalancer").health_check_node_port(70_000).build(),
            None,
        ),
    ];
    for (desc, svc, want) in cases {
        assert_eq!(only_port(&svc, IpFamily::V4).health_check_node_port, want, "{desc}");
    }
}

#[test]
fn malformed_services_name_the_field() {
    let spec = |f: fn(&mut ServiceSpec)| move |s: &mut Service| f(s.spec.as_mut().expect("spec"));
    let cases: Vec<(&str, Service, &str, Invalid)> = vec![
        ("missing name", base().with(|s| s.metadata.name = None).build(), "metadata.name", Invalid::Missing),
        (
            "empty name",
            base().with(|s| s.metadata.name = Some(String::new())).build(),
            "metadata.name",
            Invalid::Missing,
        ),
        (
            "bad cluster IP",
            service(NS, NAME).cluster_ip("172.30.0.300").tcp("p80", 80).build(),
            "spec.clusterIPs[0]",
            Invalid::Ip("172.30.0.300".into()),
        ),
        (
            "bad secondary cluster IP",
            service(NS, NAME).cluster_ips(&["172.30.0.41", "fd00::zz"]).tcp("p80", 80).build(),
            "spec.clusterIPs[1]",
            Invalid::Ip("fd00::zz".into()),
        ),
        (
            "bad clusterIP without clusterIPs",
            service(NS, NAME).tcp("p80", 80).with(spec(|s| s.cluster_ip = Some("nope".into()))).build(),
            "spec.clusterIP",
            Invalid::Ip("nope".into()),
        ),
        (
            "cluster IP with leading zeros",
            service(NS, NAME).cluster_ip("172.030.0.41").tcp("p80", 80).build(),
            "spec.clusterIPs[0]",
            Invalid::Ip("172.030.0.41".into()),
        ),
        (
            "bad external IP",
            base().external_ips(&["192.168.99.11", "192.168.99"]).build(),
            "spec.externalIPs[1]",
            Invalid::Ip("192.168.99".into()),
        ),
        (
            "CIDR as external IP",
            base().external_ips(&["192.168.99.0/24"]).build(),
            "spec.externalIPs[0]",
            Invalid::Ip("192.168.99.0/24".into()),
        ),
        (
            "bad LB ingress IP",
            base().type_("LoadBalancer").lb_ingress("1.2.3.4", None).lb_ingress("1.2.3.4.5", Some("VIP")).build(),
            "status.loadBalancer.ingress[1].ip",
            Invalid::Ip("1.2.3.4.5".into()),
        ),
        (
            "unknown LB ingress ipMode",
            base().type_("LoadBalancer").lb_ingress("1.2.3.4", Some("Tunnel")).build(),
            "status.loadBalancer.ingress[0].ipMode",
            Invalid::Value("Tunnel".into()),
        ),
        (
            "bad source range",
            base().type_("LoadBalancer").source_ranges(&["10.0.0.0/8", "10.0.0.0/33"]).build(),
            "spec.loadBalancerSourceRanges[1]",
            Invalid::Cidr("10.0.0.0/33".into()),
        ),
        (
            "garbage source range",
            base().type_("LoadBalancer").source_ranges(&["everyone"]).build(),
            "spec.loadBalancerSourceRanges[0]",
            Invalid::Cidr("everyone".into()),
        ),
        ("port 0", base().tcp("p0", 0).build(), "spec.ports[1].port", Invalid::Port(0)),
        ("port 70000", base().tcp("big", 70_000).build(), "spec.ports[1].port", Invalid::Port(70_000)),
        (
            "negative port",
            service(NS, NAME).cluster_ip("172.30.0.41").tcp("neg", -80).build(),
            "spec.ports[0].port",
            Invalid::Port(-80),
        ),
        (
            "node port 70000",
            base().port("np", 81, "TCP", Some(70_000)).type_("NodePort").build(),
            "spec.ports[1].nodePort",
            Invalid::Port(70_000),
        ),
        (
            "negative node port",
            base().port("np", 81, "TCP", Some(-1)).type_("NodePort").build(),
            "spec.ports[1].nodePort",
            Invalid::Port(-1),
        ),
        (
            "unknown protocol",
            base().port("http", 81, "HTTP", None).build(),
            "spec.ports[1].protocol",
            Invalid::Protocol("HTTP".into()),
        ),
        (
            "lower-case protocol",
            base().port("udp", 81, "udp", None).build(),
            "spec.ports[1].protocol",
            Invalid::Protocol("udp".into()),
        ),
        ("unknown type", base().type_("Ingress").build(), "spec.type", Invalid::Value("Ingress".into())),
        ("lower-case type", base().type_("nodeport").build(), "spec.type", Invalid::Value("nodeport".into())),
        (
            "unknown externalTrafficPolicy",
            base().type_("NodePort").external_traffic_policy("Nearest").build(),
            "spec.externalTrafficPolicy",
            Invalid::Value("Nearest".into()),
        ),
        (
            "unknown externalTrafficPolicy on a ClusterIP Service",
            base().external_traffic_policy("Nearest").build(),
            "spec.externalTrafficPolicy",
            Invalid::Value("Nearest".into()),
        ),
        (
            "unknown internalTrafficPolicy",
            base().internal_traffic_policy("local").build(),
            "spec.internalTrafficPolicy",
            Invalid::Value("local".into()),
        ),
        (
            "unknown sessionAffinity",
            base().with(spec(|s| s.session_affinity = Some("Cookie".into()))).build(),
            "spec.sessionAffinity",
            Invalid::Value("Cookie".into()),
        ),
        (
            "health check node port out of range",
            base().type_("LoadBalancer").external_traffic_policy("Local").health_check_node_port(70_000).build(),
            "spec.healthCheckNodePort",
            Invalid::Port(70_000),
        ),
    ];
    for (desc, svc, field, reason) in cases {
        let err = convert_err(&svc);
        let want_name = if field == "metadata.name" { "" } else { NAME };
        assert_eq!(err.kind, ObjectKind::Service, "{desc}");
        assert_eq!(err.object, NamespacedName::new(NS, want_name), "{desc}");
        assert_eq!(err.field, field, "{desc}");
        assert_eq!(err.reason, reason, "{desc}");
        let text = err.to_string();
        assert!(text.starts_with("Service ns1/") && text.contains(field), "{desc}: {text}");
    }
}

#[test]
fn skip_reason_and_conversion_agree_on_no_spec() {
    let svc = service(NS, NAME).with(|s| s.spec = None).build();
    assert_eq!(ServiceInfo::skip_reason(&svc), Some(SkipReason::NoClusterIp));
    assert_eq!(ServiceInfo::from_service(&svc), Ok(None));
}

#[test]
fn object_name_defaults_namespace() {
    let meta = ObjectMeta { name: Some("x".into()), ..ObjectMeta::default() };
    assert_eq!(object_name(&meta), NamespacedName::new("default", "x"));
    assert_eq!(object_name(&ObjectMeta::default()), NamespacedName::new("default", ""));
}

/// Port names, namespaces and object names that must never reach rule text.
fn hostile_labels() -> Vec<String> {
    let mut values: Vec<String> =
        ["a\"b", "x;y", "a\nb", "a}", "{a", "a b", "pört", "P80", "p_80", "-p", "p-", "a.b"].map(String::from).to_vec();
    values.push("a".repeat(64));
    values
}

fn name_error(field: &str, rule: NameRule, value: &str) -> (String, Invalid) {
    (field.to_owned(), Invalid::Name { rule, value: value.to_owned() })
}

#[test]
fn port_names_are_dns1123_labels() {
    for bad in hostile_labels() {
        let err = convert_err(&base().tcp(&bad, 81).build());
        assert_eq!((err.field, err.reason), name_error("spec.ports[1].name", NameRule::Dns1123Label, &bad), "{bad:?}");
        let single = service(NS, NAME).cluster_ip("172.30.0.41").tcp(&bad, 81).build();
        assert_eq!(convert_err(&single).field, "spec.ports[0].name", "{bad:?}");
    }
    let longest = "p".repeat(63);
    let ports = convert(&base().tcp(&longest, 81).tcp("0", 82).build()).ports(IpFamily::V4);
    assert!(ports.keys().any(|name| name.port == longest) && ports.keys().any(|name| name.port == "0"), "{ports:?}");
}

#[test]
fn service_names_are_dns1035_labels() {
    let mut bad = hostile_labels();
    bad.extend(["1svc", "0"].map(String::from));
    for name in bad {
        let err = convert_err(&service(NS, &name).cluster_ip("172.30.0.41").tcp("p80", 80).build());
        assert_eq!(err.object, NamespacedName::new(NS, name.as_str()));
        assert_eq!((err.field, err.reason), name_error("metadata.name", NameRule::Dns1035Label, &name), "{name:?}");
    }
    let longest = "s".repeat(63);
    assert_eq!(convert(&service(NS, &longest).cluster_ip("172.30.0.41").tcp("p80", 80).build()).name.name, longest);
}

#[test]
fn namespaces_are_dns1123_labels() {
    let mut bad = hostile_labels();
    bad.push("n".repeat(254));
    for namespace in bad {
        let err = convert_err(&service(&namespace, NAME).cluster_ip("172.30.0.41").tcp("p80", 80).build());
        let want = name_error("metadata.namespace", NameRule::Dns1123Label, &namespace);
        assert_eq!((err.field, err.reason), want, "{namespace:?}");
    }
    let empty = convert_err(&service("", NAME).cluster_ip("172.30.0.41").tcp("p80", 80).build());
    assert_eq!((empty.field.as_str(), empty.reason), ("metadata.namespace", Invalid::Missing));
    let numeric = convert(&service("0", NAME).cluster_ip("172.30.0.41").tcp("p80", 80).build());
    assert_eq!(numeric.name, NamespacedName::new("0", NAME));
}

#[test]
fn names_are_checked_before_a_service_is_skipped() {
    let headless = service(NS, "Headless").cluster_ip("None").tcp("p80", 80).build();
    assert_eq!(convert_err(&headless).field, "metadata.name");
}

#[test]
fn several_ports_need_names() {
    let unnamed_second = base().tcp("", 81).build();
    let err = convert_err(&unnamed_second);
    assert_eq!((err.field.as_str(), err.reason), ("spec.ports[1].name", Invalid::Missing));
    let unnamed_first = service(NS, NAME).cluster_ip("172.30.0.41").tcp("", 80).tcp("p81", 81).build();
    assert_eq!(convert_err(&unnamed_first).field, "spec.ports[0].name");
}

#[test]
fn ports_are_unique_within_a_service() {
    let cases: Vec<(&str, Service, &str, &str)> = vec![
        ("same name", base().udp("p80", 53).build(), "spec.ports[1].name", "p80"),
        ("same port and protocol", base().tcp("other", 80).build(), "spec.ports[1]", "80/TCP"),
        (
            "same node port and protocol",
            base().type_("NodePort").port("a", 81, "TCP", Some(30_080)).port("b", 82, "TCP", Some(30_080)).build(),
            "spec.ports[2].nodePort",
            "30080/TCP",
        ),
    ];
    for (desc, svc, field, value) in cases {
        let err = convert_err(&svc);
        assert_eq!((err.field.as_str(), err.reason), (field, Invalid::Duplicate(value.into())), "{desc}");
    }
    let tcp_and_udp = base()
        .type_("NodePort")
        .port("dns-tcp", 53, "TCP", Some(30_053))
        .port("dns-udp", 53, "UDP", Some(30_053))
        .build();
    assert_eq!(convert(&tcp_and_udp).ports(IpFamily::V4).len(), 3);
}

#[test]
fn unknown_traffic_distribution_counts_as_absent() {
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("PreferClose", Some("PreferClose")),
        ("PreferSameZone", Some("PreferSameZone")),
        ("PreferSameNode", Some("PreferSameNode")),
        ("Nearest", None),
        ("preferclose", None),
        ("", None),
        ("a\"b;\n", None),
    ];
    for (value, want) in cases {
        let port = only_port(&base().traffic_distribution(value).build(), IpFamily::V4);
        assert_eq!(port.traffic_distribution.as_deref(), want, "{value:?}");
    }
}

#[test]
fn error_messages_escape_hostile_names() {
    let err = convert_err(&service("a\nb", "c;d\n").cluster_ip("172.30.0.41").tcp("p80", 80).build());
    let text = err.to_string();
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains(r#""a\nb/c;d\n""#) && text.contains("DNS-1035 label"), "{text}");
    let huge = convert_err(&service(NS, &"x".repeat(20_000)).cluster_ip("172.30.0.41").tcp("p80", 80).build());
    assert!(huge.to_string().len() < 1_000, "{}", huge.to_string().len());
}
