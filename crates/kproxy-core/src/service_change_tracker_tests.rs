use super::*;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use kproxy_testkit::service;

use crate::convert::LABEL_SERVICE_PROXY_NAME;
use crate::names::Protocol;
use crate::service_port_map::ServicePortMap;

// Test support: a fake proxier holding one family's tracker and service map, as upstream's
// `FakeProxier` in servicechangetracker_test.go.

fn nsn(namespace: &str, name: &str) -> NamespacedName {
    NamespacedName::new(namespace, name)
}

fn spn(namespace: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName::new(nsn(namespace, name), port, protocol)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn name_of(svc: &Service) -> NamespacedName {
    nsn(svc.metadata.namespace.as_deref().unwrap(), svc.metadata.name.as_deref().unwrap())
}

fn info_of(svc: &Service) -> Option<ServiceInfo> {
    ServiceInfo::from_service(svc).expect("test Services are well formed")
}

/// The ports `family`'s tracker derives from `svc`: upstream's `serviceToServiceMap`.
fn ports_of(family: IpFamily, svc: &Service) -> ServicePorts {
    let mut tracker = ServiceChangeTracker::new(family);
    tracker.update(&name_of(svc), info_of(svc).as_ref());
    tracker.checkout().into_iter().flat_map(|(_, change)| change.current).collect()
}

struct FakeProxier {
    changes: ServiceChangeTracker,
    map: ServicePortMap,
}

impl FakeProxier {
    fn new(family: IpFamily) -> Self {
        Self { changes: ServiceChangeTracker::new(family), map: ServicePortMap::default() }
    }

    /// An add or update event.
    fn update(&mut self, svc: &Service) -> bool {
        self.changes.update(&name_of(svc), info_of(svc).as_ref())
    }

    fn delete(&mut self, svc: &Service) -> bool {
        self.changes.update(&name_of(svc), None)
    }

    /// Checks the pending changes out into the map; returns the changed port names.
    fn sync(&mut self) -> BTreeSet<ServicePortName> {
        let changes = self.changes.checkout();
        self.map.apply(&changes)
    }
}

fn services_of(ports: &BTreeSet<ServicePortName>) -> BTreeSet<NamespacedName> {
    ports.iter().map(|p| p.service.clone()).collect()
}

/// What upstream's TestServiceToServiceMap compares of each port.
#[derive(Debug, PartialEq, Eq)]
struct Compared {
    cluster_ip: IpAddr,
    port: u16,
    protocol: Protocol,
    health_check_node_port: Option<u16>,
    external_ips: Vec<IpAddr>,
    source_ranges: Vec<IpNet>,
    load_balancer_vips: Vec<IpAddr>,
}

impl Compared {
    fn of(p: &ServicePort) -> Self {
        Self {
            cluster_ip: p.cluster_ip,
            port: p.port,
            protocol: p.protocol,
            health_check_node_port: p.health_check_node_port,
            external_ips: p.external_ips.clone(),
            source_ranges: p.load_balancer_source_ranges.clone(),
            load_balancer_vips: p.load_balancer_vips.clone(),
        }
    }
}

/// An expected port: cluster IP, port, protocol and health-check node port (0 = none).
fn expect(cluster_ip: &str, port: u16, protocol: Protocol, hc_node_port: u16) -> Compared {
    Compared {
        cluster_ip: ip(cluster_ip),
        port,
        protocol,
        health_check_node_port: (hc_node_port != 0).then_some(hc_node_port),
        external_ips: Vec::new(),
        source_ranges: Vec::new(),
        load_balancer_vips: Vec::new(),
    }
}

impl Compared {
    fn vips(mut self, ips: &[&str]) -> Self {
        self.load_balancer_vips = ips.iter().map(|i| ip(i)).collect();
        self
    }

    fn external_ips(mut self, ips: &[&str]) -> Self {
        self.external_ips = ips.iter().map(|i| ip(i)).collect();
        self
    }

    fn source_ranges(mut self, cidrs: &[&str]) -> Self {
        self.source_ranges = cidrs.iter().map(|c| c.parse().unwrap()).collect();
        self
    }
}

const CLUSTER_V4: &str = "10.0.0.1";
const EXTERNAL_V4: &str = "8.8.8.8";
const RANGE_V4: &str = "0.0.0.0/1";
const CLUSTER_V6: &str = "2001:db8:85a3::8a2e:370:7334";
const EXTERNAL_V6: &str = "2001:db8:85a3::8a2e:370:7335";
const RANGE_V6: &str = "2001:db8::/32";

/// The Service of upstream's "service with ... configurations" cases: one TCP port, the
/// given cluster IP, external IPs and source ranges, and ingress IPs of both families.
fn configured(name: &str, cluster_ip: &str, external_ips: &[&str], ranges: &[&str]) -> Service {
    service("test", name)
        .cluster_ip(cluster_ip)
        .tcp("test-port", 12345)
        .external_ips(external_ips)
        .source_ranges(ranges)
        .lb_ingress(EXTERNAL_V4, None)
        .lb_ingress(EXTERNAL_V6, None)
        .build()
}

fn load_balancer(name: &str, cluster_ip: &str, ingress_mode: Option<&str>) -> Service {
    service("ns1", name)
        .type_("LoadBalancer")
        .cluster_ip(cluster_ip)
        .port("port3", 8675, "UDP", Some(30061))
        .port("port4", 8676, "UDP", Some(30062))
        .lb_ingress("10.1.2.4", ingress_mode)
        .build()
}

fn only_local_load_balancer() -> Service {
    service("ns1", "only-local-load-balancer")
        .type_("LoadBalancer")
        .cluster_ip("172.16.55.12")
        .port("portx", 8677, "UDP", Some(30063))
        .port("porty", 8678, "UDP", Some(30064))
        .lb_ingress("10.1.2.3", None)
        .external_traffic_policy("Local")
        .health_check_node_port(345)
        .build()
}

fn headless() -> Service {
    service("ns2", "headless").cluster_ip("None").udp("rpc", 1234).build()
}

fn headless_without_port() -> Service {
    service("ns2", "headless-without-port").cluster_ip("None").build()
}

fn external_name() -> Service {
    service("ns2", "external-name")
        .type_("ExternalName")
        .cluster_ip("172.16.55.4") // ignored
        .with(|s| s.spec.as_mut().unwrap().external_name = Some("foo2.bar.com".to_owned()))
        .udp("portz", 1235)
        .build()
}

// Upstream: TestServiceToServiceMap.
#[test]
fn service_to_service_map() {
    use Protocol::{Tcp, Udp};
    let v4 = IpFamily::V4;
    let v6 = IpFamily::V6;
    type Expected = Vec<(ServicePortName, Compared)>;
    let cases: Vec<(&str, IpFamily, Service, Expected)> = vec![
        ("headless service", v4, headless(), vec![]),
        ("headless sctp service", v4, service("ns2", "headless").cluster_ip("None").sctp("sip", 7777).build(), vec![]),
        ("headless service without port", v4, headless_without_port(), vec![]),
        (
            "cluster ip service",
            v4,
            service("ns2", "cluster-ip").cluster_ip("172.16.55.4").udp("p1", 1234).udp("p2", 1235).build(),
            vec![
                (spn("ns2", "cluster-ip", "p1", Udp), expect("172.16.55.4", 1234, Udp, 0)),
                (spn("ns2", "cluster-ip", "p2", Udp), expect("172.16.55.4", 1235, Udp, 0)),
            ],
        ),
        (
            "nodeport service",
            v4,
            service("ns2", "node-port")
                .type_("NodePort")
                .cluster_ip("172.16.55.10")
                .port("port1", 345, "UDP", Some(678))
                .port("port2", 344, "TCP", Some(677))
                .build(),
            vec![
                (spn("ns2", "node-port", "port1", Udp), expect("172.16.55.10", 345, Udp, 0)),
                (spn("ns2", "node-port", "port2", Tcp), expect("172.16.55.10", 344, Tcp, 0)),
            ],
        ),
        (
            "load balancer service",
            v4,
            load_balancer("load-balancer", "172.16.55.11", None),
            vec![
                (spn("ns1", "load-balancer", "port3", Udp), expect("172.16.55.11", 8675, Udp, 0).vips(&["10.1.2.4"])),
                (spn("ns1", "load-balancer", "port4", Udp), expect("172.16.55.11", 8676, Udp, 0).vips(&["10.1.2.4"])),
            ],
        ),
        (
            "load balancer service ipMode VIP",
            v4,
            load_balancer("load-balancer", "172.16.55.11", Some("VIP")),
            vec![
                (spn("ns1", "load-balancer", "port3", Udp), expect("172.16.55.11", 8675, Udp, 0).vips(&["10.1.2.4"])),
                (spn("ns1", "load-balancer", "port4", Udp), expect("172.16.55.11", 8676, Udp, 0).vips(&["10.1.2.4"])),
            ],
        ),
        (
            // The LoadBalancerIPMode gate is GA: a Proxy-mode ingress IP is not a VIP.
            "load balancer service ipMode Proxy",
            v4,
            load_balancer("load-balancer", "172.16.55.11", Some("Proxy")),
            vec![
                (spn("ns1", "load-balancer", "port3", Udp), expect("172.16.55.11", 8675, Udp, 0)),
                (spn("ns1", "load-balancer", "port4", Udp), expect("172.16.55.11", 8676, Udp, 0)),
            ],
        ),
        (
            "load balancer service with only local traffic policy",
            v4,
            only_local_load_balancer(),
            vec![
                (
                    spn("ns1", "only-local-load-balancer", "portx", Udp),
                    expect("172.16.55.12", 8677, Udp, 345).vips(&["10.1.2.3"]),
                ),
                (
                    spn("ns1", "only-local-load-balancer", "porty", Udp),
                    expect("172.16.55.12", 8678, Udp, 345).vips(&["10.1.2.3"]),
                ),
            ],
        ),
        ("external name service", v4, external_name(), vec![]),
        (
            "service with ipv6 clusterIP under ipv4 mode, service should be filtered",
            v4,
            configured("invalid-ipv6-in-ipv4-mode", CLUSTER_V6, &[], &[]),
            vec![],
        ),
        (
            "service with ipv4 clusterIP under ipv6 mode, service should be filtered",
            v6,
            configured("invalid-ipv4-in-ipv6-mode", CLUSTER_V4, &[], &[]),
            vec![],
        ),
        (
            "service with ipv4 configurations under ipv4 mode",
            v4,
            configured("valid-ipv4", CLUSTER_V4, &[EXTERNAL_V4], &[RANGE_V4]),
            vec![(
                spn("test", "valid-ipv4", "test-port", Tcp),
                expect(CLUSTER_V4, 12345, Tcp, 0)
                    .external_ips(&[EXTERNAL_V4])
                    .source_ranges(&[RANGE_V4])
                    .vips(&[EXTERNAL_V4]),
            )],
        ),
        (
            "service with ipv6 configurations under ipv6 mode",
            v6,
            configured("valid-ipv6", CLUSTER_V6, &[EXTERNAL_V6], &[RANGE_V6]),
            vec![(
                spn("test", "valid-ipv6", "test-port", Tcp),
                expect(CLUSTER_V6, 12345, Tcp, 0)
                    .external_ips(&[EXTERNAL_V6])
                    .source_ranges(&[RANGE_V6])
                    .vips(&[EXTERNAL_V6]),
            )],
        ),
        (
            "service with both ipv4 and ipv6 configurations under ipv4 mode, ipv6 fields should be filtered",
            v4,
            configured("filter-ipv6-in-ipv4-mode", CLUSTER_V4, &[EXTERNAL_V4, EXTERNAL_V6], &[RANGE_V4, RANGE_V6]),
            vec![(
                spn("test", "filter-ipv6-in-ipv4-mode", "test-port", Tcp),
                expect(CLUSTER_V4, 12345, Tcp, 0)
                    .external_ips(&[EXTERNAL_V4])
                    .source_ranges(&[RANGE_V4])
                    .vips(&[EXTERNAL_V4]),
            )],
        ),
        (
            "service with both ipv4 and ipv6 configurations under ipv6 mode, ipv4 fields should be filtered",
            v6,
            configured("filter-ipv4-in-ipv6-mode", CLUSTER_V6, &[EXTERNAL_V4, EXTERNAL_V6], &[RANGE_V4, RANGE_V6]),
            vec![(
                spn("test", "filter-ipv4-in-ipv6-mode", "test-port", Tcp),
                expect(CLUSTER_V6, 12345, Tcp, 0)
                    .external_ips(&[EXTERNAL_V6])
                    .source_ranges(&[RANGE_V6])
                    .vips(&[EXTERNAL_V6]),
            )],
        ),
        (
            "service with extra space in LoadBalancerSourceRanges",
            v4,
            service("test", "extra-space")
                .cluster_ip(CLUSTER_V4)
                .tcp("test-port", 12345)
                .source_ranges(&[" 10.1.2.0/28"])
                .build(),
            vec![(
                spn("test", "extra-space", "test-port", Tcp),
                expect(CLUSTER_V4, 12345, Tcp, 0).source_ranges(&["10.1.2.0/28"]),
            )],
        ),
    ];
    for (desc, family, svc, expected) in cases {
        let got: Vec<(ServicePortName, Compared)> =
            ports_of(family, &svc).iter().map(|(name, port)| (name.clone(), Compared::of(port))).collect();
        assert_eq!(got, expected, "{desc}");
    }
}

// Services that are not proxied produce no ports at all, in either family.
#[test]
fn skipped_services_produce_no_ports() {
    let cases: Vec<(&str, Service)> = vec![
        ("headless", headless()),
        ("headless without port", headless_without_port()),
        ("ExternalName", external_name()),
        ("no cluster IP", service("ns1", "svc1").tcp("p80", 80).build()),
        ("empty cluster IP", service("ns1", "svc1").cluster_ip("").tcp("p80", 80).build()),
        (
            "service-proxy-name label",
            service("ns1", "svc1")
                .cluster_ip("172.30.0.41")
                .tcp("p80", 80)
                .label(LABEL_SERVICE_PROXY_NAME, "other-proxy")
                .build(),
        ),
        ("no ports", service("ns1", "svc1").cluster_ip("172.30.0.41").build()),
    ];
    for (desc, svc) in cases {
        for family in IpFamily::ALL {
            let mut fp = FakeProxier::new(family);
            assert!(!fp.update(&svc), "{desc} ({family}): no change pending");
            assert_eq!(fp.changes.pending(), 0, "{desc} ({family})");
            assert!(fp.sync().is_empty(), "{desc} ({family}): no updated ports");
            assert!(fp.map.is_empty(), "{desc} ({family}): empty map");
            assert!(fp.map.health_check_node_ports().is_empty(), "{desc} ({family}): no health checks");
        }
    }
}

// Upstream: TestServiceMapUpdateHeadless and TestUpdateServiceTypeExternalName.
#[test]
fn headless_and_external_name_services_are_ignored() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    fp.update(&headless());
    fp.update(&headless_without_port());
    fp.update(&external_name());
    assert!(fp.sync().is_empty());
    assert_eq!(fp.map.len(), 0);
    assert!(fp.map.health_check_node_ports().is_empty());
}

// Upstream: TestBuildServiceMapAddRemove.
#[test]
fn build_service_map_add_remove() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let services = [
        service("ns2", "cluster-ip").cluster_ip("172.16.55.4").udp("port1", 1234).udp("port2", 1235).build(),
        service("ns2", "node-port")
            .type_("NodePort")
            .cluster_ip("172.16.55.10")
            .port("port1", 345, "UDP", Some(678))
            .port("port2", 344, "TCP", Some(677))
            .build(),
        service("ns1", "load-balancer")
            .type_("LoadBalancer")
            .cluster_ip("172.16.55.11")
            .port("foobar", 8675, "UDP", Some(30061))
            .port("baz", 8676, "UDP", Some(30062))
            .lb_ingress("10.1.2.4", None)
            .build(),
        service("ns1", "only-local-load-balancer")
            .type_("LoadBalancer")
            .cluster_ip("172.16.55.12")
            .port("foobar2", 8677, "UDP", Some(30063))
            .port("baz", 8678, "UDP", Some(30064))
            .lb_ingress("10.1.2.3", None)
            .external_traffic_policy("Local")
            .health_check_node_port(345)
            .build(),
    ];
    for svc in &services {
        assert!(fp.update(svc));
    }
    assert_eq!(fp.changes.pending(), 4);

    let changed = fp.sync();
    assert_eq!(fp.map.len(), 8);
    assert_eq!(changed.len(), 8, "every port is new");
    assert_eq!(services_of(&changed), services.iter().map(name_of).collect());
    assert_eq!(
        fp.map.health_check_node_ports(),
        BTreeMap::from([(nsn("ns1", "only-local-load-balancer"), 345)]),
        "only the only-local load balancer has a health check"
    );

    // services[0] loses its first port and renames the second; the others go away.
    let one_service = service("ns2", "cluster-ip").cluster_ip("172.16.55.4").udp("p2", 1235).build();
    fp.update(&one_service);
    fp.delete(&services[1]);
    fp.delete(&services[2]);
    fp.delete(&services[3]);

    let changed = fp.sync();
    assert_eq!(
        fp.map.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
        [spn("ns2", "cluster-ip", "p2", Protocol::Udp)]
    );
    assert_eq!(services_of(&changed).len(), 4, "4 updated services");
    assert!(changed.contains(&spn("ns2", "cluster-ip", "port1", Protocol::Udp)), "removed port is a change");
    assert!(changed.contains(&spn("ns2", "cluster-ip", "p2", Protocol::Udp)), "added port is a change");
    assert!(fp.map.health_check_node_ports().is_empty());
}

// Upstream: TestBuildServiceMapServiceUpdate.
#[test]
fn build_service_map_service_update() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let v1 = service("ns1", "svc1").cluster_ip("172.16.55.4").udp("p1", 1234).tcp("p2", 1235).build();
    let v2 = service("ns1", "svc1")
        .type_("LoadBalancer")
        .cluster_ip("172.16.55.4")
        .port("p1", 1234, "UDP", Some(4321))
        .port("p2", 1235, "TCP", Some(5321))
        .lb_ingress("10.1.2.3", None)
        .external_traffic_policy("Local")
        .health_check_node_port(345)
        .build();

    fp.update(&v1);
    let changed = fp.sync();
    assert_eq!(fp.map.len(), 2);
    assert_eq!(services_of(&changed).len(), 1);
    assert!(fp.map.health_check_node_ports().is_empty());

    // Change the service to a load balancer.
    assert!(fp.update(&v2));
    let changed = fp.sync();
    assert_eq!(fp.map.len(), 2);
    assert_eq!(changed.len(), 2, "both ports changed");
    assert_eq!(services_of(&changed).len(), 1);
    assert_eq!(fp.map.health_check_node_ports(), BTreeMap::from([(nsn("ns1", "svc1"), 345)]));

    // No change: the map stays the same and nothing is updated.
    assert!(!fp.update(&v2));
    assert!(fp.sync().is_empty());
    assert_eq!(fp.map.len(), 2);
    assert_eq!(fp.map.health_check_node_ports().len(), 1);

    // And back to ClusterIP.
    assert!(fp.update(&v1));
    let changed = fp.sync();
    assert_eq!(fp.map.len(), 2);
    assert_eq!(services_of(&changed).len(), 1);
    assert!(fp.map.health_check_node_ports().is_empty());
}

// Upstream: TestServiceCacheLeaks.
#[test]
fn add_then_delete_leaves_nothing_pending() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let svc = service("ns1", "svc1").cluster_ip("172.16.55.4").udp("p1", 1234).tcp("p2", 1235).build();
    assert!(fp.update(&svc));
    assert_eq!(fp.changes.pending(), 1);
    assert!(!fp.delete(&svc));
    assert_eq!(fp.changes.pending(), 0);
    assert!(fp.changes.checkout().is_empty());
    assert!(fp.map.is_empty());
}

#[test]
fn update_back_to_the_original_collapses() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let original = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build();
    let modified = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 8080).build();
    fp.update(&original);
    fp.sync();

    assert!(fp.update(&modified));
    assert_eq!(fp.changes.pending(), 1);
    assert!(!fp.update(&original), "back to what was checked out");
    assert_eq!(fp.changes.pending(), 0);
    assert!(fp.sync().is_empty());

    // A delete followed by a re-add of the same Service collapses too.
    assert!(fp.delete(&original));
    assert!(!fp.update(&original));
    assert!(fp.sync().is_empty());
    assert_eq!(fp.map.len(), 1);
}

#[test]
fn change_keeps_the_first_previous_and_the_last_current() {
    let mut tracker = ServiceChangeTracker::new(IpFamily::V4);
    let name = nsn("ns1", "svc1");
    let versions = [80, 81, 82].map(|port| service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p", port).build());
    tracker.update(&name, info_of(&versions[0]).as_ref());
    tracker.checkout();

    tracker.update(&name, info_of(&versions[1]).as_ref());
    tracker.update(&name, info_of(&versions[2]).as_ref());
    let changes = tracker.checkout();
    assert_eq!(changes.len(), 1);
    let (changed, change) = &changes[0];
    assert_eq!(changed, &name);
    let port_numbers = |ports: &ServicePorts| ports.values().map(|p| p.port).collect::<Vec<_>>();
    assert_eq!(port_numbers(&change.previous), [80]);
    assert_eq!(port_numbers(&change.current), [82]);
    assert_eq!(tracker.pending(), 0, "checkout leaves nothing pending");
}

#[test]
fn add_update_delete_report_changed_ports() {
    use Protocol::{Tcp, Udp};
    let mut fp = FakeProxier::new(IpFamily::V4);
    let v1 = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).udp("p53", 53).build();
    let v2 = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).udp("p53", 5353).sctp("p7", 7).build();

    fp.update(&v1);
    assert_eq!(fp.sync(), BTreeSet::from([spn("ns1", "svc1", "p53", Udp), spn("ns1", "svc1", "p80", Tcp)]));

    // p80 is unchanged, p53 is modified, p7 is new.
    fp.update(&v2);
    assert_eq!(fp.sync(), BTreeSet::from([spn("ns1", "svc1", "p53", Udp), spn("ns1", "svc1", "p7", Protocol::Sctp)]));
    assert_eq!(fp.map.get(&spn("ns1", "svc1", "p53", Udp)).map(|p| p.port), Some(5353));
    assert_eq!(fp.map.len(), 3);

    fp.delete(&v2);
    assert_eq!(fp.sync().len(), 3, "every port of a deleted Service changed");
    assert!(fp.map.is_empty());
}

#[test]
fn port_protocol_is_part_of_the_name() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let tcp = service("ns1", "dns").cluster_ip("172.30.0.10").tcp("dns", 53).build();
    let udp = service("ns1", "dns").cluster_ip("172.30.0.10").udp("dns", 53).build();
    fp.update(&tcp);
    fp.sync();
    fp.update(&udp);
    let changed = fp.sync();
    assert_eq!(
        changed,
        BTreeSet::from([spn("ns1", "dns", "dns", Protocol::Tcp), spn("ns1", "dns", "dns", Protocol::Udp)])
    );
    assert_eq!(fp.map.iter().map(|(n, _)| n.protocol).collect::<Vec<_>>(), [Protocol::Udp]);
}

#[test]
fn service_becoming_skipped_removes_its_ports() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let proxied = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build();
    let labelled = service("ns1", "svc1")
        .cluster_ip("172.30.0.41")
        .tcp("p80", 80)
        .label(LABEL_SERVICE_PROXY_NAME, "other-proxy")
        .build();
    fp.update(&proxied);
    fp.sync();
    assert!(fp.update(&labelled));
    assert_eq!(fp.sync(), BTreeSet::from([spn("ns1", "svc1", "p80", Protocol::Tcp)]));
    assert!(fp.map.is_empty());
}

#[test]
fn delete_of_an_unknown_service_is_not_a_change() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    assert!(!fp.delete(&service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build()));
    assert_eq!(fp.changes.pending(), 0);
}

// A dual-stack Service seen by each family's tracker: each view has its own cluster IP and
// only the addresses of its family.
#[test]
fn dual_stack_service_has_one_view_per_family() {
    let svc = service("ns1", "svc1")
        .type_("LoadBalancer")
        .cluster_ips(&["172.30.0.41", "fd00:172:30::41"])
        .port("p80", 80, "TCP", Some(30080))
        .external_ips(&["192.168.99.11", "2001:db8::11"])
        .source_ranges(&["203.0.113.0/24", "2001:db8:1::/48"])
        .lb_ingress("1.2.3.4", None)
        .lb_ingress("2001:db8::1234", None)
        .build();
    let name = spn("ns1", "svc1", "p80", Protocol::Tcp);
    let expected = [
        (
            IpFamily::V4,
            expect("172.30.0.41", 80, Protocol::Tcp, 0)
                .external_ips(&["192.168.99.11"])
                .source_ranges(&["203.0.113.0/24"])
                .vips(&["1.2.3.4"]),
        ),
        (
            IpFamily::V6,
            expect("fd00:172:30::41", 80, Protocol::Tcp, 0)
                .external_ips(&["2001:db8::11"])
                .source_ranges(&["2001:db8:1::/48"])
                .vips(&["2001:db8::1234"]),
        ),
    ];
    for (family, want) in expected {
        let ports = ports_of(family, &svc);
        assert_eq!(ports.len(), 1, "{family}");
        let port = ports.get(&name).expect("the port");
        assert_eq!(Compared::of(port), want, "{family}");
        assert_eq!(port.node_port, Some(30080), "{family}: node port is family-independent");
    }
}

#[test]
fn dual_stack_to_single_stack_removes_the_other_family() {
    let mut v4 = FakeProxier::new(IpFamily::V4);
    let mut v6 = FakeProxier::new(IpFamily::V6);
    let dual = service("ns1", "svc1").cluster_ips(&["172.30.0.41", "fd00:172:30::41"]).tcp("p80", 80).build();
    let single = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build();
    for fp in [&mut v4, &mut v6] {
        assert!(fp.update(&dual));
        fp.sync();
        assert_eq!(fp.map.len(), 1);
    }
    assert!(!v4.update(&single), "nothing changes in IPv4");
    assert!(v6.update(&single), "the IPv6 view goes away");
    assert!(v4.sync().is_empty());
    assert_eq!(v6.sync().len(), 1);
    assert!(v6.map.is_empty());
    assert_eq!(v4.map.len(), 1);
}

#[test]
fn health_check_node_port_needs_local_external_policy_on_a_load_balancer() {
    let cases: Vec<(&str, Service, Option<u16>)> = vec![
        ("LoadBalancer, Local", only_local_load_balancer(), Some(345)),
        (
            "LoadBalancer, Cluster",
            service("ns1", "lb").type_("LoadBalancer").cluster_ip("172.30.0.42").tcp("p80", 80).build(),
            None,
        ),
        (
            "NodePort, Local",
            service("ns1", "np")
                .node_port("p80", 80, 30080)
                .cluster_ip("172.30.0.43")
                .external_traffic_policy("Local")
                .health_check_node_port(346)
                .build(),
            None,
        ),
    ];
    for (desc, svc, want) in cases {
        let mut fp = FakeProxier::new(IpFamily::V4);
        fp.update(&svc);
        fp.sync();
        let ports = fp.map.health_check_node_ports();
        assert_eq!(ports.values().next().copied(), want, "{desc}");
        assert!(ports.len() <= 1, "{desc}: one entry per Service, not per port");
    }
}

#[test]
fn changes_total_counts_every_update_and_pending_counts_services() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let a = service("ns1", "a").cluster_ip("172.30.0.1").tcp("p", 80).build();
    let b = service("ns1", "b").cluster_ip("172.30.0.2").tcp("p", 80).tcp("q", 81).build();
    fp.update(&a);
    fp.update(&a); // no-op, still counted
    fp.update(&b);
    assert_eq!(fp.changes.changes_total(), 3);
    assert_eq!(fp.changes.pending(), 2, "one pending entry per Service, not per port");
    fp.delete(&a);
    assert_eq!(fp.changes.changes_total(), 4);
    assert_eq!(fp.changes.pending(), 1);
    fp.sync();
    assert_eq!(fp.changes.pending(), 0);
    assert_eq!(fp.changes.changes_total(), 4, "checkout does not reset the total");
    // Updates of skipped Services count too.
    fp.update(&headless());
    assert_eq!(fp.changes.changes_total(), 5);
}

#[test]
fn known_services_lists_services_with_ports() {
    let mut fp = FakeProxier::new(IpFamily::V4);
    let a = service("ns1", "a").cluster_ip("172.30.0.1").tcp("p", 80).build();
    let b = service("ns1", "b").cluster_ip("172.30.0.2").tcp("p", 80).build();
    fp.update(&a);
    fp.update(&b);
    fp.sync();
    fp.delete(&b);
    fp.update(&headless());
    let known: BTreeSet<_> = fp.changes.known_services().cloned().collect();
    assert_eq!(known, BTreeSet::from([nsn("ns1", "a")]));
}

#[test]
fn checkout_is_sorted_by_service() {
    let mut tracker = ServiceChangeTracker::new(IpFamily::V4);
    for (i, name) in ["c", "a", "b"].into_iter().enumerate() {
        let svc = service("ns1", name).cluster_ip(&format!("172.30.0.{}", i + 1)).tcp("p", 80).build();
        tracker.update(&name_of(&svc), info_of(&svc).as_ref());
    }
    let names: Vec<_> = tracker.checkout().into_iter().map(|(n, _)| n.name).collect();
    assert_eq!(names, ["a", "b", "c"]);
}
