use super::*;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, UNIX_EPOCH};

use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use kproxy_testkit::ip_plan::NODE_NAME;
use kproxy_testkit::{SliceBuilder, slice};

use crate::endpoint::Endpoint;
use crate::endpoint_slice_cache::PortEndpoints;
use crate::endpoints_map::{EndpointsMap, UpdateEndpointsMapResult};
use crate::names::{Protocol, ServicePortName};

// Test support: a fake proxier holding one family's tracker and endpoints map, as upstream's
// `FakeProxier` in endpointschangetracker_test.go.

fn nsn(namespace: &str, name: &str) -> NamespacedName {
    NamespacedName::new(namespace, name)
}

fn spn(namespace: &str, name: &str, port: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName::new(nsn(namespace, name), port, protocol)
}

fn udp(namespace: &str, name: &str, port: &str) -> ServicePortName {
    spn(namespace, name, port, Protocol::Udp)
}

fn tcp(namespace: &str, name: &str, port: &str) -> ServicePortName {
    spn(namespace, name, port, Protocol::Tcp)
}

fn info(s: &EndpointSlice) -> EndpointSliceInfo {
    EndpointSliceInfo::from_slice(s).expect("test slices are well formed").expect("test slices are for proxies")
}

struct FakeProxier {
    changes: EndpointsChangeTracker,
    map: EndpointsMap,
}

impl FakeProxier {
    fn new(node_name: &str, start_time: SystemTime) -> Self {
        Self { changes: EndpointsChangeTracker::new(IpFamily::V4, node_name, start_time), map: EndpointsMap::default() }
    }

    /// An add or update event.
    fn update(&mut self, s: &EndpointSlice) -> bool {
        self.changes.update(&info(s))
    }

    fn delete(&mut self, s: &EndpointSlice) -> bool {
        let i = info(s);
        self.changes.delete(&i.service, &i.slice_name)
    }

    /// Checks the pending changes out into the map.
    fn sync(&mut self) -> (UpdateEndpointsMapResult, BTreeMap<NamespacedName, Vec<SystemTime>>) {
        let EndpointsChanges { changes, trigger_times } = self.changes.checkout();
        (self.map.apply(changes), trigger_times)
    }
}

/// What upstream's `compareEndpointsMapsStr` compares of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ep {
    addr: SocketAddr,
    local: bool,
    ready: bool,
    serving: bool,
    terminating: bool,
}

/// A remote, ready endpoint.
fn ep(addr: &str) -> Ep {
    Ep { addr: addr.parse().unwrap(), local: false, ready: true, serving: true, terminating: false }
}

/// A local, ready endpoint.
fn lep(addr: &str) -> Ep {
    Ep { local: true, ..ep(addr) }
}

impl Ep {
    fn conds(self, ready: bool, serving: bool, terminating: bool) -> Self {
        Self { ready, serving, terminating, ..self }
    }

    fn of(e: &Endpoint) -> Self {
        Self {
            addr: e.socket_addr(),
            local: e.is_local,
            ready: e.ready,
            serving: e.serving,
            terminating: e.terminating,
        }
    }
}

type Snapshot = BTreeMap<ServicePortName, Vec<Ep>>;

fn snapshot(map: &EndpointsMap) -> Snapshot {
    map.iter().map(|(name, eps)| (name.clone(), eps.iter().map(Ep::of).collect())).collect()
}

fn project(ports: &PortEndpoints) -> Snapshot {
    ports.iter().map(|(name, eps)| (name.clone(), eps.iter().map(Ep::of).collect())).collect()
}

fn snap(entries: Vec<(ServicePortName, Vec<Ep>)>) -> Snapshot {
    entries.into_iter().collect()
}

fn changed_services(result: &UpdateEndpointsMapResult) -> BTreeSet<NamespacedName> {
    result.changed_ports.iter().map(|p| p.service.clone()).collect()
}

fn stale_set(result: &UpdateEndpointsMapResult) -> BTreeSet<(ServicePortName, SocketAddr)> {
    result.stale_udp_endpoints.iter().map(|(name, e)| (name.clone(), e.socket_addr())).collect()
}

// The slice shapes of upstream's TestUpdateEndpointsMap. `make(ns, name, n, shape)` is
// upstream's `makeTestEndpointSlice`: slice `name-n` of Service `ns/name`.

type Shape = fn(SliceBuilder) -> SliceBuilder;

fn make(namespace: &str, name: &str, n: u32, shape: Shape) -> EndpointSlice {
    shape(slice(namespace, name, &format!("{name}-{n}"))).build()
}

fn on_node(ip: &str) -> impl FnOnce(SliceBuilder) -> SliceBuilder + '_ {
    move |b| b.endpoint(ip, |e| e.node(NODE_NAME))
}

fn empty_endpoint(b: SliceBuilder) -> SliceBuilder {
    b
}
fn unnamed_port(b: SliceBuilder) -> SliceBuilder {
    b.udp("", 11).ready("1.1.1.1")
}
fn unnamed_port_ready(b: SliceBuilder) -> SliceBuilder {
    b.udp("", 11).endpoint("1.1.1.1", |e| e.conditions_rst(true, true, false))
}
fn unnamed_port_terminating(b: SliceBuilder) -> SliceBuilder {
    b.udp("", 11).endpoint("1.1.1.1", |e| e.conditions_rst(false, true, true))
}
fn unnamed_port_local(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.1")(b.udp("", 11))
}
fn named_port_local(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.1")(b.udp("p11", 11))
}
fn named_port(b: SliceBuilder) -> SliceBuilder {
    b.udp("p11", 11).ready("1.1.1.1")
}
fn named_port_renamed(b: SliceBuilder) -> SliceBuilder {
    b.udp("p11-2", 11).ready("1.1.1.1")
}
fn named_port_renumbered(b: SliceBuilder) -> SliceBuilder {
    b.udp("p11", 22).ready("1.1.1.1")
}
fn named_ports_local_no_local(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.2")(b.udp("p11", 11).udp("p12", 12).ready("1.1.1.1"))
}
fn multiple_subsets_s1(b: SliceBuilder) -> SliceBuilder {
    b.udp("p11", 11).ready("1.1.1.1")
}
fn multiple_subsets_s2(b: SliceBuilder) -> SliceBuilder {
    b.udp("p12", 12).ready("1.1.1.2")
}
fn multiple_subsets_with_local_s2(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.2")(b.udp("p12", 12))
}
fn multiple_subsets_multiple_ports_local_s1(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.1")(b.udp("p11", 11).udp("p12", 12))
}
fn multiple_subsets_multiple_ports_local_s2(b: SliceBuilder) -> SliceBuilder {
    b.udp("p13", 13).ready("1.1.1.3")
}
fn multiple_subsets_ips_ports1_s1(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.2")(b.udp("p11", 11).udp("p12", 12).ready("1.1.1.1"))
}
fn multiple_subsets_ips_ports1_s2(b: SliceBuilder) -> SliceBuilder {
    on_node("1.1.1.4")(b.udp("p13", 13).udp("p14", 14).ready("1.1.1.3"))
}
fn multiple_subsets_ips_ports2(b: SliceBuilder) -> SliceBuilder {
    on_node("2.2.2.2")(b.udp("p21", 21).udp("p22", 22).ready("2.2.2.1"))
}
fn complex_before1(b: SliceBuilder) -> SliceBuilder {
    b.udp("p11", 11).ready("1.1.1.1")
}
fn complex_before2_s1(b: SliceBuilder) -> SliceBuilder {
    on_node("2.2.2.22")(on_node("2.2.2.2")(b.udp("p22", 22)))
}
fn complex_before2_s2(b: SliceBuilder) -> SliceBuilder {
    on_node("2.2.2.3")(b.udp("p23", 23))
}
fn complex_before4_s1(b: SliceBuilder) -> SliceBuilder {
    on_node("4.4.4.5")(on_node("4.4.4.4")(b.udp("p44", 44)))
}
fn complex_before4_s2(b: SliceBuilder) -> SliceBuilder {
    on_node("4.4.4.6")(b.udp("p45", 45))
}
fn complex_after1_s1(b: SliceBuilder) -> SliceBuilder {
    b.udp("p11", 11).ready("1.1.1.1").ready("1.1.1.11")
}
fn complex_after1_s2(b: SliceBuilder) -> SliceBuilder {
    b.udp("p12", 12).udp("p122", 122).ready("1.1.1.2")
}
fn complex_after3(b: SliceBuilder) -> SliceBuilder {
    b.udp("p33", 33).ready("3.3.3.3")
}
fn complex_after4(b: SliceBuilder) -> SliceBuilder {
    on_node("4.4.4.4")(b.udp("p44", 44))
}

struct UpdateCase {
    name: &'static str,
    previous_slices: Vec<Option<EndpointSlice>>,
    current_slices: Vec<Option<EndpointSlice>>,
    previous_map: Snapshot,
    expected_map: Snapshot,
    expected_stale: Vec<(ServicePortName, &'static str)>,
    expected_local: Vec<(NamespacedName, usize)>,
    expected_changed: Vec<NamespacedName>,
}

fn update_cases() -> Vec<UpdateCase> {
    let m = |n: u32, shape: Shape| Some(make("ns1", "ep1", n, shape));
    vec![
        UpdateCase {
            name: "empty",
            previous_slices: vec![],
            current_slices: vec![],
            previous_map: snap(vec![]),
            expected_map: snap(vec![]),
            expected_stale: vec![],
            expected_local: vec![],
            expected_changed: vec![],
        },
        UpdateCase {
            name: "no change, unnamed port",
            previous_slices: vec![m(1, unnamed_port)],
            current_slices: vec![m(1, unnamed_port)],
            previous_map: snap(vec![(udp("ns1", "ep1", ""), vec![ep("1.1.1.1:11")])]),
            expected_map: snap(vec![(udp("ns1", "ep1", ""), vec![ep("1.1.1.1:11")])]),
            expected_stale: vec![],
            expected_local: vec![],
            expected_changed: vec![],
        },
        UpdateCase {
            name: "no change, named port, local",
            previous_slices: vec![m(1, named_port_local)],
            current_slices: vec![m(1, named_port_local)],
            previous_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![lep("1.1.1.1:11")])]),
            expected_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![lep("1.1.1.1:11")])]),
            expected_stale: vec![],
            expected_local: vec![(nsn("ns1", "ep1"), 1)],
            expected_changed: vec![],
        },
        UpdateCase {
            name: "no change, multiple slices",
            previous_slices: vec![m(1, multiple_subsets_s1), m(2, multiple_subsets_s2)],
            current_slices: vec![m(1, multiple_subsets_s1), m(2, multiple_subsets_s2)],
            previous_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")]),
                (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.2:12")]),
            ]),
            expected_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")]),
                (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.2:12")]),
            ]),
            expected_stale: vec![],
            expected_local: vec![],
            expected_changed: vec![],
        },
        UpdateCase {
            name: "no change, multiple slices, multiple ports, local",
            previous_slices: vec![
                m(1, multiple_subsets_multiple_ports_local_s1),
                m(2, multiple_subsets_multiple_ports_local_s2),
            ],
            current_slices: vec![
                m(1, multiple_subsets_multiple_ports_local_s1),
                m(2, multiple_subsets_multiple_ports_local_s2),
            ],
            previous_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![lep("1.1.1.1:11")]),
                (udp("ns1", "ep1", "p12"), vec![lep("1.1.1.1:12")]),
                (udp("ns1", "ep1", "p13"), vec![ep("1.1.1.3:13")]),
            ]),
            expected_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![lep("1.1.1.1:11")]),
                (udp("ns1", "ep1", "p12"), vec![lep("1.1.1.1:12")]),
                (udp("ns1", "ep1", "p13"), vec![ep("1.1.1.3:13")]),
            ]),
            expected_stale: vec![],
            expected_local: vec![(nsn("ns1", "ep1"), 1)],
            expected_changed: vec![],
        },
        UpdateCase {
            name: "no change, multiple services, slices, IPs, and ports",
            previous_slices: vec![
                m(1, multiple_subsets_ips_ports1_s1),
                m(2, multiple_subsets_ips_ports1_s2),
                Some(make("ns2", "ep2", 1, multiple_subsets_ips_ports2)),
            ],
            current_slices: vec![
                m(1, multiple_subsets_ips_ports1_s1),
                m(2, multiple_subsets_ips_ports1_s2),
                Some(make("ns2", "ep2", 1, multiple_subsets_ips_ports2)),
            ],
            previous_map: multiple_services_map(),
            expected_map: multiple_services_map(),
            expected_stale: vec![],
            expected_local: vec![(nsn("ns1", "ep1"), 2), (nsn("ns2", "ep2"), 1)],
            expected_changed: vec![],
        },
        UpdateCase {
            name: "add an EndpointSlice",
            previous_slices: vec![None],
            current_slices: vec![m(1, unnamed_port_local)],
            previous_map: snap(vec![]),
            expected_map: snap(vec![(udp("ns1", "ep1", ""), vec![lep("1.1.1.1:11")])]),
            expected_stale: vec![],
            expected_local: vec![(nsn("ns1", "ep1"), 1)],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "remove an EndpointSlice",
            previous_slices: vec![m(1, unnamed_port_local)],
            current_slices: vec![None],
            previous_map: snap(vec![(udp("ns1", "ep1", ""), vec![lep("1.1.1.1:11")])]),
            expected_map: snap(vec![]),
            expected_stale: vec![(udp("ns1", "ep1", ""), "1.1.1.1:11")],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "add an IP and port",
            previous_slices: vec![m(1, named_port)],
            current_slices: vec![m(1, named_ports_local_no_local)],
            previous_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")])]),
            expected_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11"), lep("1.1.1.2:11")]),
                (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.1:12"), lep("1.1.1.2:12")]),
            ]),
            expected_stale: vec![],
            expected_local: vec![(nsn("ns1", "ep1"), 1)],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "remove an IP and port",
            previous_slices: vec![m(1, named_ports_local_no_local)],
            current_slices: vec![m(1, named_port)],
            previous_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11"), lep("1.1.1.2:11")]),
                (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.1:12"), lep("1.1.1.2:12")]),
            ]),
            expected_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")])]),
            expected_stale: vec![
                (udp("ns1", "ep1", "p11"), "1.1.1.2:11"),
                (udp("ns1", "ep1", "p12"), "1.1.1.1:12"),
                (udp("ns1", "ep1", "p12"), "1.1.1.2:12"),
            ],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "add a slice to an endpoint",
            previous_slices: vec![m(1, named_port), None],
            current_slices: vec![m(1, multiple_subsets_s1), m(2, multiple_subsets_with_local_s2)],
            previous_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")])]),
            expected_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")]),
                (udp("ns1", "ep1", "p12"), vec![lep("1.1.1.2:12")]),
            ]),
            expected_stale: vec![],
            expected_local: vec![(nsn("ns1", "ep1"), 1)],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "remove a slice from an endpoint",
            previous_slices: vec![m(1, multiple_subsets_s1), m(2, multiple_subsets_s2)],
            current_slices: vec![m(1, named_port), None],
            previous_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")]),
                (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.2:12")]),
            ]),
            expected_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")])]),
            expected_stale: vec![(udp("ns1", "ep1", "p12"), "1.1.1.2:12")],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "rename a port",
            previous_slices: vec![m(1, named_port)],
            current_slices: vec![m(1, named_port_renamed)],
            previous_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")])]),
            expected_map: snap(vec![(udp("ns1", "ep1", "p11-2"), vec![ep("1.1.1.1:11")])]),
            expected_stale: vec![(udp("ns1", "ep1", "p11"), "1.1.1.1:11")],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "renumber a port",
            previous_slices: vec![m(1, named_port)],
            current_slices: vec![m(1, named_port_renumbered)],
            previous_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")])]),
            expected_map: snap(vec![(udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:22")])]),
            expected_stale: vec![(udp("ns1", "ep1", "p11"), "1.1.1.1:11")],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "complex add and remove",
            previous_slices: vec![
                m(1, complex_before1),
                None,
                Some(make("ns2", "ep2", 1, complex_before2_s1)),
                Some(make("ns2", "ep2", 2, complex_before2_s2)),
                None,
                None,
                Some(make("ns4", "ep4", 1, complex_before4_s1)),
                Some(make("ns4", "ep4", 2, complex_before4_s2)),
            ],
            current_slices: vec![
                m(1, complex_after1_s1),
                m(2, complex_after1_s2),
                None,
                None,
                Some(make("ns3", "ep3", 1, complex_after3)),
                None,
                Some(make("ns4", "ep4", 1, complex_after4)),
                None,
            ],
            previous_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11")]),
                (udp("ns2", "ep2", "p22"), vec![lep("2.2.2.2:22"), lep("2.2.2.22:22")]),
                (udp("ns2", "ep2", "p23"), vec![lep("2.2.2.3:23")]),
                (udp("ns4", "ep4", "p44"), vec![lep("4.4.4.4:44"), lep("4.4.4.5:44")]),
                (udp("ns4", "ep4", "p45"), vec![lep("4.4.4.6:45")]),
            ]),
            expected_map: snap(vec![
                (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11"), ep("1.1.1.11:11")]),
                (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.2:12")]),
                (udp("ns1", "ep1", "p122"), vec![ep("1.1.1.2:122")]),
                (udp("ns3", "ep3", "p33"), vec![ep("3.3.3.3:33")]),
                (udp("ns4", "ep4", "p44"), vec![lep("4.4.4.4:44")]),
            ]),
            expected_stale: vec![
                (udp("ns2", "ep2", "p22"), "2.2.2.2:22"),
                (udp("ns2", "ep2", "p22"), "2.2.2.22:22"),
                (udp("ns2", "ep2", "p23"), "2.2.2.3:23"),
                (udp("ns4", "ep4", "p44"), "4.4.4.5:44"),
                (udp("ns4", "ep4", "p45"), "4.4.4.6:45"),
            ],
            expected_local: vec![(nsn("ns4", "ep4"), 1)],
            expected_changed: vec![nsn("ns1", "ep1"), nsn("ns2", "ep2"), nsn("ns3", "ep3"), nsn("ns4", "ep4")],
        },
        UpdateCase {
            name: "change from 0 endpoint address to 1 unnamed port",
            previous_slices: vec![m(1, empty_endpoint)],
            current_slices: vec![m(1, unnamed_port)],
            previous_map: snap(vec![]),
            expected_map: snap(vec![(udp("ns1", "ep1", ""), vec![ep("1.1.1.1:11")])]),
            expected_stale: vec![],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "change from ready to terminating pod",
            previous_slices: vec![m(1, unnamed_port_ready)],
            current_slices: vec![m(1, unnamed_port_terminating)],
            previous_map: snap(vec![(udp("ns1", "ep1", ""), vec![ep("1.1.1.1:11")])]),
            expected_map: snap(vec![(udp("ns1", "ep1", ""), vec![ep("1.1.1.1:11").conds(false, true, true)])]),
            // Still serving: its flows are not stale.
            expected_stale: vec![],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
        UpdateCase {
            name: "change from terminating to empty pod",
            previous_slices: vec![m(1, unnamed_port_terminating)],
            current_slices: vec![m(1, empty_endpoint)],
            previous_map: snap(vec![(udp("ns1", "ep1", ""), vec![ep("1.1.1.1:11").conds(false, true, true)])]),
            expected_map: snap(vec![]),
            expected_stale: vec![(udp("ns1", "ep1", ""), "1.1.1.1:11")],
            expected_local: vec![],
            expected_changed: vec![nsn("ns1", "ep1")],
        },
    ]
}

fn multiple_services_map() -> Snapshot {
    snap(vec![
        (udp("ns1", "ep1", "p11"), vec![ep("1.1.1.1:11"), lep("1.1.1.2:11")]),
        (udp("ns1", "ep1", "p12"), vec![ep("1.1.1.1:12"), lep("1.1.1.2:12")]),
        (udp("ns1", "ep1", "p13"), vec![ep("1.1.1.3:13"), lep("1.1.1.4:13")]),
        (udp("ns1", "ep1", "p14"), vec![ep("1.1.1.3:14"), lep("1.1.1.4:14")]),
        (udp("ns2", "ep2", "p21"), vec![ep("2.2.2.1:21"), lep("2.2.2.2:21")]),
        (udp("ns2", "ep2", "p22"), vec![ep("2.2.2.1:22"), lep("2.2.2.2:22")]),
    ])
}

// Upstream: TestUpdateEndpointsMap (with the stale endpoints of its Endpoints-era version).
#[test]
fn update_endpoints_map() {
    for case in update_cases() {
        let name = case.name;
        assert_eq!(case.previous_slices.len(), case.current_slices.len(), "{name}: malformed case");
        let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);

        for s in case.previous_slices.iter().flatten() {
            fp.update(s);
        }
        fp.sync();
        assert_eq!(snapshot(&fp.map), case.previous_map, "{name}: previous map");

        for (prev, curr) in case.previous_slices.iter().zip(&case.current_slices) {
            match (prev, curr) {
                (None, None) => {}
                (Some(p), None) => {
                    fp.delete(p);
                }
                (_, Some(c)) => {
                    fp.update(c);
                }
            }
        }
        let (result, _) = fp.sync();
        assert_eq!(snapshot(&fp.map), case.expected_map, "{name}: map");
        assert_eq!(changed_services(&result), case.expected_changed.into_iter().collect(), "{name}: changed");
        let expected_stale: BTreeSet<_> =
            case.expected_stale.into_iter().map(|(n, a)| (n, a.parse::<SocketAddr>().unwrap())).collect();
        assert_eq!(stale_set(&result), expected_stale, "{name}: stale UDP endpoints");
        assert_eq!(result.stale_udp_endpoints.len(), expected_stale.len(), "{name}: stale listed once");
        assert_eq!(
            fp.map.local_ready_endpoints(),
            case.expected_local.into_iter().collect::<BTreeMap<_, _>>(),
            "{name}: local ready endpoints"
        );
    }
}

/// Upstream's `generateEndpointSliceWithOffset`: slice `svc-n` with `count` endpoints
/// `10.0.offset.i`, not ready when `i % unready_mod == 0`, terminating when
/// `i % terminating_mod == 0`, on `hosts[i % hosts.len()]`, with TCP ports `port-i`.
#[allow(clippy::too_many_arguments, reason = "mirrors upstream's helper")]
fn gen_with_offset(
    service: &str,
    namespace: &str,
    n: u32,
    offset: u32,
    count: u32,
    unready_mod: u32,
    terminating_mod: u32,
    hosts: &[&str],
    ports: &[Option<i32>],
) -> EndpointSlice {
    let mut b = slice(namespace, service, &format!("{service}-{n}"));
    for (i, port) in ports.iter().enumerate() {
        let name = format!("port-{i}");
        b = match port {
            Some(p) => b.tcp(&name, *p),
            None => b.with(|s| {
                s.ports.get_or_insert_with(Vec::new).push(EndpointPort {
                    name: Some(name.clone()),
                    port: None,
                    protocol: Some("TCP".to_owned()),
                    app_protocol: None,
                })
            }),
        };
    }
    for i in 1..=count {
        let ready = i % unready_mod != 0;
        let terminating = i % terminating_mod == 0;
        let host = (!hosts.is_empty()).then(|| hosts[i as usize % hosts.len()]);
        b = b.endpoint(&format!("10.0.{offset}.{i}"), |e| {
            let e = e.conditions_rst(ready && !terminating, ready, terminating);
            match host {
                Some(h) => e.node(h),
                None => e,
            }
        });
    }
    b.build()
}

/// Upstream's `generateEndpointSlice`: the offset is the slice number.
#[allow(clippy::too_many_arguments, reason = "mirrors upstream's helper")]
fn gen_slice(
    service: &str,
    namespace: &str,
    n: u32,
    count: u32,
    unready_mod: u32,
    terminating_mod: u32,
    hosts: &[&str],
    ports: &[Option<i32>],
) -> EndpointSlice {
    gen_with_offset(service, namespace, n, n, count, unready_mod, terminating_mod, hosts, ports)
}

const H12: &[&str] = &["host1", "host2"];
const H1: &[&str] = &["host1"];
const P80_443: &[Option<i32>] = &[Some(80), Some(443)];
const P80: &[Option<i32>] = &[Some(80)];

fn current_of(changes: &[EndpointsChange], service: &NamespacedName) -> Option<Snapshot> {
    changes.iter().find(|c| &c.service == service).map(|c| project(&c.current))
}

/// `port-0` and `port-1` endpoints with the same shape, on 80 and 443.
fn both_ports(eps: &[(&str, bool, bool, bool, bool)]) -> Snapshot {
    let on = |port: u16| {
        eps.iter()
            .map(|(ip, local, ready, serving, terminating)| Ep {
                addr: SocketAddr::new(ip.parse().unwrap(), port),
                local: *local,
                ready: *ready,
                serving: *serving,
                terminating: *terminating,
            })
            .collect::<Vec<_>>()
    };
    snap(vec![(tcp("ns1", "svc1", "port-0"), on(80)), (tcp("ns1", "svc1", "port-1"), on(443))])
}

const R: (bool, bool, bool) = (true, true, false); // ready
const U: (bool, bool, bool) = (false, false, false); // unready
const T: (bool, bool, bool) = (false, true, true); // serving, terminating
const UT: (bool, bool, bool) = (false, false, true); // not serving, terminating

fn row(ip: &str, local: bool, (ready, serving, terminating): (bool, bool, bool)) -> (&str, bool, bool, bool, bool) {
    (ip, local, ready, serving, terminating)
}

// Upstream: TestEndpointSliceUpdate.
#[test]
fn endpoint_slice_update() {
    struct Case {
        name: &'static str,
        starting: Vec<EndpointSlice>,
        param: EndpointSlice,
        remove: bool,
        expected_return: bool,
        expected_current: Option<Snapshot>,
    }
    let svc1 = nsn("ns1", "svc1");
    let cases = vec![
        Case {
            name: "add a simple slice that doesn't already exist",
            starting: vec![],
            param: gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443),
            remove: false,
            expected_return: true,
            expected_current: Some(both_ports(&[
                row("10.0.1.1", false, R),
                row("10.0.1.2", true, R),
                row("10.0.1.3", false, R),
            ])),
        },
        Case {
            name: "add the same slice that already exists",
            starting: vec![gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443)],
            param: gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443),
            remove: false,
            expected_return: false,
            expected_current: None,
        },
        Case {
            name: "add a slice that overlaps with existing state",
            starting: vec![
                gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443),
                gen_slice("svc1", "ns1", 2, 2, 999, 999, H12, P80_443),
            ],
            param: gen_slice("svc1", "ns1", 1, 5, 999, 999, H1, P80_443),
            remove: false,
            expected_return: true,
            expected_current: Some(both_ports(&[
                row("10.0.1.1", true, R),
                row("10.0.1.2", true, R),
                row("10.0.1.3", true, R),
                row("10.0.1.4", true, R),
                row("10.0.1.5", true, R),
                row("10.0.2.1", false, R),
                row("10.0.2.2", true, R),
            ])),
        },
        Case {
            // Slice 3 repeats slice 1's addresses on this node for port-0 only: on port-0
            // the local copies win, port-1 keeps slice 1's remote ones.
            name: "add a slice that overlaps with existing state and partial ports",
            starting: vec![
                gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443),
                gen_slice("svc1", "ns1", 2, 2, 999, 999, H12, P80_443),
            ],
            param: gen_with_offset("svc1", "ns1", 3, 1, 5, 999, 999, H1, P80),
            remove: false,
            expected_return: true,
            expected_current: Some(snap(vec![
                (
                    tcp("ns1", "svc1", "port-0"),
                    vec![
                        lep("10.0.1.1:80"),
                        lep("10.0.1.2:80"),
                        lep("10.0.1.3:80"),
                        lep("10.0.1.4:80"),
                        lep("10.0.1.5:80"),
                        ep("10.0.2.1:80"),
                        lep("10.0.2.2:80"),
                    ],
                ),
                (
                    tcp("ns1", "svc1", "port-1"),
                    vec![
                        ep("10.0.1.1:443"),
                        lep("10.0.1.2:443"),
                        ep("10.0.1.3:443"),
                        ep("10.0.2.1:443"),
                        lep("10.0.2.2:443"),
                    ],
                ),
            ])),
        },
        Case {
            name: "remove a slice that overlaps with existing state",
            starting: vec![
                gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443),
                gen_slice("svc1", "ns1", 2, 2, 999, 999, H12, P80_443),
            ],
            param: gen_slice("svc1", "ns1", 1, 5, 999, 999, H1, P80_443),
            remove: true,
            expected_return: true,
            expected_current: Some(both_ports(&[row("10.0.2.1", false, R), row("10.0.2.2", true, R)])),
        },
        Case {
            name: "remove a slice that doesn't even exist in current state",
            starting: vec![
                gen_slice("svc1", "ns1", 1, 5, 999, 999, H1, P80_443),
                gen_slice("svc1", "ns1", 2, 2, 999, 999, H1, P80_443),
            ],
            param: gen_slice("svc1", "ns1", 3, 5, 999, 999, H1, P80_443),
            remove: true,
            expected_return: false,
            expected_current: None,
        },
        Case {
            name: "transition all endpoints to unready state",
            starting: vec![gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443)],
            param: gen_slice("svc1", "ns1", 1, 3, 1, 999, H1, P80_443),
            remove: false,
            expected_return: true,
            expected_current: Some(both_ports(&[
                row("10.0.1.1", true, U),
                row("10.0.1.2", true, U),
                row("10.0.1.3", true, U),
            ])),
        },
        Case {
            name: "transition all endpoints to ready state",
            starting: vec![gen_slice("svc1", "ns1", 1, 2, 1, 999, H12, P80_443)],
            param: gen_slice("svc1", "ns1", 1, 2, 999, 999, H1, P80_443),
            remove: false,
            expected_return: true,
            expected_current: Some(both_ports(&[row("10.0.1.1", true, R), row("10.0.1.2", true, R)])),
        },
        Case {
            name: "transition some endpoints to ready state",
            starting: vec![
                gen_slice("svc1", "ns1", 1, 3, 2, 999, H1, P80_443),
                gen_slice("svc1", "ns1", 2, 2, 2, 999, H1, P80_443),
            ],
            param: gen_slice("svc1", "ns1", 1, 3, 3, 999, H1, P80_443),
            remove: false,
            expected_return: true,
            expected_current: Some(both_ports(&[
                row("10.0.1.1", true, R),
                row("10.0.1.2", true, R),
                row("10.0.1.3", true, U),
                row("10.0.2.1", true, R),
                row("10.0.2.2", true, U),
            ])),
        },
        Case {
            name: "transition some endpoints to terminating state",
            starting: vec![
                gen_slice("svc1", "ns1", 1, 3, 2, 2, H1, P80_443),
                gen_slice("svc1", "ns1", 2, 2, 2, 2, H1, P80_443),
            ],
            param: gen_slice("svc1", "ns1", 1, 3, 3, 2, H1, P80_443),
            remove: false,
            expected_return: true,
            expected_current: Some(both_ports(&[
                row("10.0.1.1", true, R),
                row("10.0.1.2", true, T),
                row("10.0.1.3", true, U),
                row("10.0.2.1", true, R),
                row("10.0.2.2", true, UT),
            ])),
        },
    ];
    for case in cases {
        let name = case.name;
        let mut tracker = EndpointsChangeTracker::new(IpFamily::V4, "host1", UNIX_EPOCH);
        for s in &case.starting {
            tracker.update(&info(s));
        }
        tracker.checkout();

        let param = info(&case.param);
        let got = match case.remove {
            true => tracker.delete(&param.service, &param.slice_name),
            false => tracker.update(&param),
        };
        assert_eq!(got, case.expected_return, "{name}: return value");

        let changes = tracker.checkout().changes;
        match case.expected_current {
            None => assert!(changes.is_empty(), "{name}: expected no changes, got {changes:?}"),
            Some(expected) => assert_eq!(current_of(&changes, &svc1), Some(expected), "{name}: current"),
        }
    }
}

// Upstream: TestCheckoutChanges.
#[test]
fn checkout_changes() {
    struct Case {
        name: &'static str,
        applied: Vec<EndpointSlice>,
        pending: Vec<EndpointSlice>,
        expected: Option<(Snapshot, Snapshot)>,
    }
    let port0 = tcp("ns1", "svc1", "port-0");
    let port1 = tcp("ns1", "svc1", "port-1");
    let cases = vec![
        Case { name: "empty slices", applied: vec![], pending: vec![], expected: None },
        Case {
            name: "adding initial slice",
            applied: vec![],
            pending: vec![gen_slice("svc1", "ns1", 1, 3, 3, 2, H1, P80)],
            expected: Some((
                snap(vec![]),
                snap(vec![(
                    port0.clone(),
                    vec![
                        ep("10.0.1.1:80"),
                        ep("10.0.1.2:80").conds(false, true, true),
                        ep("10.0.1.3:80").conds(false, false, false),
                    ],
                )]),
            )),
        },
        Case {
            name: "removing port in update",
            applied: vec![gen_slice("svc1", "ns1", 1, 3, 3, 999, H1, P80_443)],
            pending: vec![gen_slice("svc1", "ns1", 1, 3, 3, 999, H1, P80)],
            expected: Some((
                snap(vec![
                    (
                        port0.clone(),
                        vec![ep("10.0.1.1:80"), ep("10.0.1.2:80"), ep("10.0.1.3:80").conds(false, false, false)],
                    ),
                    (
                        port1,
                        vec![ep("10.0.1.1:443"), ep("10.0.1.2:443"), ep("10.0.1.3:443").conds(false, false, false)],
                    ),
                ]),
                snap(vec![(
                    port0.clone(),
                    vec![ep("10.0.1.1:80"), ep("10.0.1.2:80"), ep("10.0.1.3:80").conds(false, false, false)],
                )]),
            )),
        },
    ];
    for case in cases {
        let name = case.name;
        // This node is not host1: nothing is local.
        let mut tracker = EndpointsChangeTracker::new(IpFamily::V4, NODE_NAME, UNIX_EPOCH);
        for s in &case.applied {
            tracker.update(&info(s));
        }
        tracker.checkout();
        for s in &case.pending {
            tracker.update(&info(s));
        }
        let changes = tracker.checkout().changes;
        match case.expected {
            None => assert!(changes.is_empty(), "{name}"),
            Some((previous, current)) => {
                assert_eq!(changes.len(), 1, "{name}");
                assert_eq!(project(&changes[0].previous), previous, "{name}: previous");
                assert_eq!(project(&changes[0].current), current, "{name}: current");
            }
        }
    }
}

// Upstream: TestEndpointsMapFromESC and TestEndpointInfoByServicePort: how a Service's
// slices merge into endpoints per port.
#[test]
fn endpoints_map_from_slice_cache() {
    let port0 = tcp("ns1", "svc1", "port-0");
    let ready_row = |range: std::ops::RangeInclusive<u32>, except: &[(u32, Ep)]| -> Vec<Ep> {
        range
            .map(|i| {
                except
                    .iter()
                    .find(|(n, _)| *n == i)
                    .map(|(_, e)| e.clone())
                    .unwrap_or_else(|| ep(&format!("10.0.1.{i}:80")))
            })
            .collect()
    };
    let cases: Vec<(&str, Vec<EndpointSlice>, Snapshot)> = vec![
        (
            "1 slice, 2 hosts, ports 80,443",
            vec![gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, P80_443)],
            both_ports(&[row("10.0.1.1", false, R), row("10.0.1.2", true, R), row("10.0.1.3", false, R)]),
        ),
        (
            "2 slices, same port",
            vec![
                gen_slice("svc1", "ns1", 1, 3, 999, 999, &[], P80),
                gen_slice("svc1", "ns1", 2, 3, 999, 999, &[], P80),
            ],
            snap(vec![(
                port0.clone(),
                vec![
                    ep("10.0.1.1:80"),
                    ep("10.0.1.2:80"),
                    ep("10.0.1.3:80"),
                    ep("10.0.2.1:80"),
                    ep("10.0.2.2:80"),
                    ep("10.0.2.3:80"),
                ],
            )]),
        ),
        (
            // Both are slice svc1-1: the second replaces the first.
            "2 overlapping slices, same port",
            vec![
                gen_slice("svc1", "ns1", 1, 3, 999, 999, &[], P80),
                gen_slice("svc1", "ns1", 1, 4, 999, 999, &[], P80),
            ],
            snap(vec![(port0.clone(), ready_row(1..=4, &[]))]),
        ),
        (
            "2 slices, overlapping endpoints, some endpoints unready in 1 or both",
            vec![gen_slice("svc1", "ns1", 1, 10, 3, 999, &[], P80), gen_slice("svc1", "ns1", 1, 10, 6, 999, &[], P80)],
            snap(vec![(port0.clone(), ready_row(1..=10, &[(6, ep("10.0.1.6:80").conds(false, false, false))]))]),
        ),
        (
            "2 slices, overlapping endpoints, some endpoints unready and some endpoints terminating",
            vec![gen_slice("svc1", "ns1", 1, 10, 3, 5, &[], P80), gen_slice("svc1", "ns1", 1, 10, 6, 5, &[], P80)],
            snap(vec![(
                port0.clone(),
                ready_row(
                    1..=10,
                    &[
                        (5, ep("10.0.1.5:80").conds(false, true, true)),
                        (6, ep("10.0.1.6:80").conds(false, false, false)),
                        (10, ep("10.0.1.10:80").conds(false, true, true)),
                    ],
                ),
            )]),
        ),
        (
            "2 slices, overlapping endpoints, all unready",
            vec![gen_slice("svc1", "ns1", 1, 10, 1, 999, &[], P80), gen_slice("svc1", "ns1", 1, 10, 1, 999, &[], P80)],
            snap(vec![(
                port0.clone(),
                (1..=10).map(|i| ep(&format!("10.0.1.{i}:80")).conds(false, false, false)).collect(),
            )]),
        ),
        (
            "3 slices with different services and namespaces",
            vec![
                gen_slice("svc1", "ns1", 1, 3, 999, 999, &[], P80),
                gen_slice("svc2", "ns1", 2, 3, 999, 999, &[], P80),
                gen_slice("svc1", "ns2", 3, 3, 999, 999, &[], P80),
            ],
            snap(vec![(port0.clone(), ready_row(1..=3, &[]))]),
        ),
        (
            // A port without a number means "all ports", which proxies do not support.
            "Nil port should not break anything",
            vec![gen_slice("svc1", "ns1", 1, 3, 999, 999, H12, &[None])],
            snap(vec![]),
        ),
        (
            "Different endpoints with duplicate IPs should not be filtered",
            vec![
                gen_with_offset("svc1", "ns1", 1, 1, 2, 999, 999, H12, P80),
                gen_with_offset("svc1", "ns1", 2, 1, 2, 999, 999, H12, &[Some(8080)]),
            ],
            snap(vec![(
                port0.clone(),
                vec![ep("10.0.1.1:80"), ep("10.0.1.1:8080"), lep("10.0.1.2:80"), lep("10.0.1.2:8080")],
            )]),
        ),
    ];
    let svc1 = nsn("ns1", "svc1");
    for (name, slices, expected) in cases {
        let mut cache = EndpointSliceCache::new("host1");
        for s in &slices {
            cache.update(&info(s));
        }
        let changes = cache.checkout();
        assert_eq!(current_of(&changes, &svc1).unwrap_or_default(), expected, "{name}");
    }
}

// Upstream: TestEsDataChanged. Whether an update differs from the applied slice (third
// column); a mere reordering is a change for the cache but not for the merged endpoints
// (fourth column).
#[test]
fn slice_data_changed() {
    let base = || slice("bar", "svc1", "foo");
    let p80 = |b: SliceBuilder| b.tcp("http", 80);
    let p443 = |b: SliceBuilder| b.tcp("https", 443);
    let cases: Vec<(&str, EndpointSlice, EndpointSlice, bool, bool)> = vec![
        ("identical slices, ports only", p80(base()).build(), p80(base()).build(), false, false),
        ("identical slices, ports out of order", p80(p443(base())).build(), p443(p80(base())).build(), true, false),
        ("port removed", p80(p443(base())).build(), p443(base()).build(), true, false),
        ("port added", p443(base()).build(), p80(p443(base())).build(), true, false),
        (
            "identical with endpoints",
            p443(base()).ready("10.0.1.0").ready("10.0.1.1").build(),
            p443(base()).ready("10.0.1.0").ready("10.0.1.1").build(),
            false,
            false,
        ),
        (
            "identical with endpoints out of order",
            p443(base()).ready("10.0.1.0").ready("10.0.1.1").build(),
            p443(base()).ready("10.0.1.1").ready("10.0.1.0").build(),
            true,
            false,
        ),
        (
            "identical with endpoint added",
            p443(base()).ready("10.0.1.0").build(),
            p443(base()).ready("10.0.1.1").ready("10.0.1.0").build(),
            true,
            true,
        ),
        (
            "trigger time differs only",
            p443(base()).ready("10.0.1.0").trigger_time("2018-01-01T00:00:01Z").build(),
            p443(base()).ready("10.0.1.0").trigger_time("2018-01-01T00:00:02Z").build(),
            false,
            false,
        ),
    ];
    for (name, initial, updated, expect_changed, expect_endpoints_change) in cases {
        let mut cache = EndpointSliceCache::new(NODE_NAME);
        cache.update(&info(&initial));
        cache.checkout();
        assert_eq!(cache.update(&info(&updated)), expect_changed, "{name}: slice changed");
        assert_eq!(cache.pending(), usize::from(expect_changed), "{name}: pending");
        // Ports without endpoints, or endpoints merely reordered, change no endpoint.
        assert_eq!(!cache.checkout().is_empty(), expect_endpoints_change, "{name}: endpoints changed");
    }
}

#[test]
fn local_copy_of_a_duplicate_endpoint_wins_whatever_the_slice_order() {
    let remote = |b: SliceBuilder| b.endpoint("10.0.0.1", |e| e.node("node2"));
    let local = |b: SliceBuilder| b.endpoint("10.0.0.1", |e| e.node(NODE_NAME).ready(false));
    for (first, second) in [(remote as Shape, local as Shape), (local as Shape, remote as Shape)] {
        let mut cache = EndpointSliceCache::new(NODE_NAME);
        cache.update(&info(&first(slice("ns1", "svc1", "svc1-a").tcp("p", 80)).build()));
        cache.update(&info(&second(slice("ns1", "svc1", "svc1-b").tcp("p", 80)).build()));
        let changes = cache.checkout();
        let current = current_of(&changes, &nsn("ns1", "svc1")).unwrap();
        assert_eq!(current, snap(vec![(tcp("ns1", "svc1", "p"), vec![lep("10.0.0.1:80").conds(false, true, false)])]));
    }
}

#[test]
fn duplicate_remote_endpoints_count_once() {
    let mut cache = EndpointSliceCache::new(NODE_NAME);
    cache.update(&info(&slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1").ready("10.0.0.2").build()));
    cache.update(&info(&slice("ns1", "svc1", "svc1-b").tcp("p", 80).ready("10.0.0.2").ready("10.0.0.3").build()));
    let changes = cache.checkout();
    let current = current_of(&changes, &nsn("ns1", "svc1")).unwrap();
    let addrs: Vec<_> = current[&tcp("ns1", "svc1", "p")].iter().map(|e| e.addr.to_string()).collect();
    assert_eq!(addrs, ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]);
}

#[test]
fn absent_conditions_default_to_ready_serving_not_terminating() {
    let s = slice("ns1", "svc1", "svc1-a")
        .tcp("p", 80)
        .ready("10.0.0.1")
        .endpoint("10.0.0.2", |e| e.ready(false))
        .endpoint("10.0.0.3", |e| e.serving(false))
        .endpoint("10.0.0.4", |e| e.terminating(true))
        .build();
    let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
    fp.update(&s);
    fp.sync();
    assert_eq!(
        snapshot(&fp.map),
        snap(vec![(
            tcp("ns1", "svc1", "p"),
            vec![
                ep("10.0.0.1:80"),
                ep("10.0.0.2:80").conds(false, true, false),
                ep("10.0.0.3:80").conds(true, false, false),
                ep("10.0.0.4:80").conds(true, true, true),
            ]
        )])
    );
}

#[test]
fn endpoint_fields_are_carried_over() {
    let s = slice("ns1", "svc1", "svc1-a")
        .tcp("p", 80)
        .endpoint("10.0.0.1", |e| {
            e.node(NODE_NAME).zone("zone-a").zone_hints(&["zone-a", "zone-b"]).node_hints(&[NODE_NAME])
        })
        .build();
    let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
    fp.update(&s);
    fp.sync();
    let eps = fp.map.get(&tcp("ns1", "svc1", "p"));
    assert_eq!(eps.len(), 1);
    let e = &eps[0];
    assert!(e.is_local);
    assert_eq!(e.node_name.as_deref(), Some(NODE_NAME));
    assert_eq!(e.zone.as_deref(), Some("zone-a"));
    assert_eq!(e.zone_hints, BTreeSet::from(["zone-a".to_owned(), "zone-b".to_owned()]));
    assert_eq!(e.node_hints, BTreeSet::from([NODE_NAME.to_owned()]));
}

#[test]
fn add_then_delete_collapses() {
    let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
    let s = slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1").build();
    assert!(fp.update(&s));
    assert_eq!(fp.changes.pending(), 1);
    assert!(!fp.delete(&s), "nothing left pending");
    assert_eq!(fp.changes.pending(), 0);
    let (result, trigger_times) = fp.sync();
    assert_eq!(result, UpdateEndpointsMapResult::default());
    assert!(trigger_times.is_empty());
    assert!(fp.changes.known_slices().is_empty());
}

#[test]
fn delete_then_readd_of_an_applied_slice_collapses() {
    let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
    let s = slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1").build();
    fp.update(&s);
    fp.sync();
    assert!(fp.delete(&s));
    assert!(!fp.update(&s), "back to the applied slice");
    assert_eq!(fp.changes.pending(), 0);
    assert_eq!(fp.sync().0, UpdateEndpointsMapResult::default());
    assert_eq!(fp.map.iter().count(), 1);
}

#[test]
fn unchanged_update_is_not_a_change() {
    let start = UNIX_EPOCH;
    let mut fp = FakeProxier::new(NODE_NAME, start);
    let s = slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1");
    fp.update(&s.clone().trigger_time("2018-01-01T00:00:01Z").build());
    fp.sync();
    let total = fp.changes.changes_total();

    // Same content, a newer trigger time: not a change, and the time is not recorded.
    assert!(!fp.update(&s.trigger_time("2018-01-01T00:00:02Z").build()));
    assert_eq!(fp.changes.pending(), 0);
    assert_eq!(fp.changes.changes_total(), total);
    let (result, trigger_times) = fp.sync();
    assert_eq!(result, UpdateEndpointsMapResult::default());
    assert!(trigger_times.is_empty());
}

#[test]
fn slice_deletion_removes_the_service_endpoints() {
    let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
    let a = slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1").build();
    let b = slice("ns1", "svc1", "svc1-b").tcp("p", 80).ready("10.0.0.2").build();
    fp.update(&a);
    fp.update(&b);
    fp.sync();
    assert_eq!(fp.changes.known_slices().len(), 2);

    assert!(fp.delete(&a));
    let (result, _) = fp.sync();
    assert_eq!(result.changed_ports, BTreeSet::from([tcp("ns1", "svc1", "p")]));
    assert_eq!(snapshot(&fp.map), snap(vec![(tcp("ns1", "svc1", "p"), vec![ep("10.0.0.2:80")])]));
    assert!(result.stale_udp_endpoints.is_empty(), "TCP endpoints have no stale flows");

    assert!(fp.delete(&b));
    fp.sync();
    assert_eq!(fp.map.iter().count(), 0);
    assert!(fp.changes.known_slices().is_empty(), "the cache forgets the Service");
    assert!(!fp.delete(&b), "a second delete is not a change");
}

#[test]
fn wrong_family_slices_are_ignored() {
    let v6 = slice("ns1", "svc1", "svc1-v6").address_type("IPv6").tcp("p", 80).ready("fd00:10::1").build();
    let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
    assert!(!fp.update(&v6));
    assert_eq!(fp.changes.pending(), 0);
    assert_eq!(fp.changes.changes_total(), 0);
    assert!(fp.changes.known_slices().is_empty());

    let mut tracker = EndpointsChangeTracker::new(IpFamily::V6, NODE_NAME, UNIX_EPOCH);
    assert!(tracker.update(&info(&v6)));
    let changes = tracker.checkout().changes;
    let current = current_of(&changes, &nsn("ns1", "svc1")).unwrap();
    assert_eq!(current, snap(vec![(tcp("ns1", "svc1", "p"), vec![ep("[fd00:10::1]:80")])]));
}

#[test]
fn known_slices_include_applied_and_pending_slices() {
    let mut tracker = EndpointsChangeTracker::new(IpFamily::V4, NODE_NAME, UNIX_EPOCH);
    let a = info(&slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1").build());
    let b = info(&slice("ns1", "svc1", "svc1-b").tcp("p", 80).ready("10.0.0.2").build());
    tracker.update(&a);
    tracker.checkout();
    tracker.update(&b);
    let known: BTreeSet<_> = tracker.known_slices().into_iter().collect();
    assert_eq!(
        known,
        BTreeSet::from([(nsn("ns1", "svc1"), "svc1-a".to_owned()), (nsn("ns1", "svc1"), "svc1-b".to_owned())])
    );
}

#[test]
fn pending_counts_services_and_changes_total_counts_changes() {
    let mut tracker = EndpointsChangeTracker::new(IpFamily::V4, NODE_NAME, UNIX_EPOCH);
    let a = info(&slice("ns1", "svc1", "svc1-a").tcp("p", 80).ready("10.0.0.1").build());
    let b = info(&slice("ns1", "svc1", "svc1-b").tcp("p", 80).ready("10.0.0.2").build());
    let c = info(&slice("ns1", "svc2", "svc2-a").tcp("p", 80).ready("10.0.0.3").build());
    tracker.update(&a);
    tracker.update(&b);
    tracker.update(&c);
    tracker.update(&c); // unchanged
    assert_eq!(tracker.pending(), 2, "one per Service");
    assert_eq!(tracker.changes_total(), 3);
    tracker.checkout();
    assert_eq!(tracker.pending(), 0);
    assert_eq!(tracker.changes_total(), 3);
}

// Stale UDP flows: a serving UDP endpoint that goes away or stops serving.
#[test]
fn stale_udp_endpoints() {
    let base = || slice("ns1", "svc1", "svc1-a").udp("dns", 53).tcp("http", 80);
    type Stale = Vec<(ServicePortName, &'static str)>;
    let cases: Vec<(&str, SliceBuilder, Option<SliceBuilder>, Stale)> = vec![
        (
            "endpoint removed",
            base().ready("10.0.0.1").ready("10.0.0.2"),
            Some(base().ready("10.0.0.1")),
            vec![(udp("ns1", "svc1", "dns"), "10.0.0.2:53")],
        ),
        (
            "endpoint stops serving",
            base().ready("10.0.0.1"),
            Some(base().endpoint("10.0.0.1", |e| e.conditions_rst(false, false, true))),
            vec![(udp("ns1", "svc1", "dns"), "10.0.0.1:53")],
        ),
        (
            "endpoint terminating but serving",
            base().ready("10.0.0.1"),
            Some(base().endpoint("10.0.0.1", |e| e.conditions_rst(false, true, true))),
            vec![],
        ),
        (
            "endpoint that was not serving is removed",
            base().ready("10.0.0.1").endpoint("10.0.0.2", |e| e.conditions_rst(false, false, false)),
            Some(base().ready("10.0.0.1")),
            vec![],
        ),
        (
            "endpoint becomes serving",
            base().endpoint("10.0.0.1", |e| e.serving(false)),
            Some(base().ready("10.0.0.1")),
            vec![],
        ),
        ("slice deleted", base().ready("10.0.0.1"), None, vec![(udp("ns1", "svc1", "dns"), "10.0.0.1:53")]),
        (
            "UDP port renumbered",
            base().ready("10.0.0.1"),
            Some(slice("ns1", "svc1", "svc1-a").udp("dns", 5353).tcp("http", 80).ready("10.0.0.1")),
            vec![(udp("ns1", "svc1", "dns"), "10.0.0.1:53")],
        ),
    ];
    for (name, before, after, expected) in cases {
        let mut fp = FakeProxier::new(NODE_NAME, UNIX_EPOCH);
        let before = before.build();
        fp.update(&before);
        fp.sync();
        match after {
            Some(after) => fp.update(&after.build()),
            None => fp.delete(&before),
        };
        let (result, _) = fp.sync();
        let expected: BTreeSet<_> = expected.into_iter().map(|(n, a)| (n, a.parse::<SocketAddr>().unwrap())).collect();
        assert_eq!(stale_set(&result), expected, "{name}");
        assert!(result.stale_udp_endpoints.iter().all(|(n, _)| n.protocol == Protocol::Udp), "{name}: UDP only");
    }
}

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

// Upstream: TestLastChangeTriggerTime.
#[test]
fn last_change_trigger_time() {
    let start = at(1_514_764_800); // 2018-01-01T00:00:00Z
    let t_1 = start - Duration::from_secs(1);
    let t0 = start + Duration::from_secs(1);
    let t1 = t0 + Duration::from_secs(1);
    let t2 = t1 + Duration::from_secs(1);
    let t3 = t2 + Duration::from_secs(1);

    let create = |ns: &str, name: &str, t: SystemTime, port: i32| {
        slice(ns, name, name).tcp("p11", port).ready("1.1.1.1").trigger_time(&rfc3339(t)).build()
    };
    type Scenario = Box<dyn Fn(&mut FakeProxier)>;
    type Expected = Vec<(NamespacedName, Vec<SystemTime>)>;
    let cases: Vec<(&str, Scenario, Expected)> = vec![
        (
            "Single addEndpoints",
            Box::new(move |fp| {
                fp.update(&create("ns", "ep1", t0, 11));
            }),
            vec![(nsn("ns", "ep1"), vec![t0])],
        ),
        (
            "addEndpoints then updatedEndpoints",
            Box::new(move |fp| {
                fp.update(&create("ns", "ep1", t0, 11));
                fp.update(&create("ns", "ep1", t1, 12));
            }),
            vec![(nsn("ns", "ep1"), vec![t0, t1])],
        ),
        (
            "Add two endpoints then modify one",
            Box::new(move |fp| {
                fp.update(&create("ns", "ep1", t1, 11));
                fp.update(&create("ns", "ep2", t2, 11));
                fp.update(&create("ns", "ep1", t3, 12));
            }),
            vec![(nsn("ns", "ep1"), vec![t1, t3]), (nsn("ns", "ep2"), vec![t2])],
        ),
        (
            "Endpoints without annotation set",
            Box::new(|fp| {
                fp.update(&slice("ns", "ep1", "ep1").tcp("p11", 11).ready("1.1.1.1").build());
            }),
            vec![],
        ),
        (
            "Endpoints create before tracker started",
            Box::new(move |fp| {
                fp.update(&create("ns", "ep1", t_1, 11));
            }),
            vec![],
        ),
        (
            "Endpoints created at the tracker's start",
            Box::new(move |fp| {
                fp.update(&create("ns", "ep1", start, 11));
            }),
            vec![],
        ),
        (
            "addEndpoints then deleteEndpoints",
            Box::new(move |fp| {
                let e = create("ns", "ep1", t1, 11);
                fp.update(&e);
                fp.delete(&e);
            }),
            vec![],
        ),
        (
            "add then delete then add again",
            Box::new(move |fp| {
                let e = create("ns", "ep1", t1, 11);
                fp.update(&e);
                fp.delete(&e);
                fp.update(&create("ns", "ep1", t2, 12));
            }),
            vec![(nsn("ns", "ep1"), vec![t2])],
        ),
        (
            "delete",
            Box::new(move |fp| {
                fp.delete(&create("ns", "ep1", t1, 11));
            }),
            vec![],
        ),
        (
            "delete of an applied slice",
            Box::new(move |fp| {
                let e = create("ns", "ep1", t1, 11);
                fp.update(&e);
                fp.sync();
                fp.delete(&e);
            }),
            vec![],
        ),
    ];
    for (name, scenario, expected) in cases {
        let mut fp = FakeProxier::new(NODE_NAME, start);
        scenario(&mut fp);
        let (_, got) = fp.sync();
        assert_eq!(got, expected.into_iter().collect::<BTreeMap<_, _>>(), "{name}");
    }
}

fn endpoint(ip: &str, port: u16, is_local: bool, ready: bool, serving: bool, terminating: bool) -> Endpoint {
    Endpoint { is_local, ready, serving, terminating, ..Endpoint::new(ip.parse::<IpAddr>().unwrap(), port) }
}

// Upstream: TestGetLocalEndpointIPs: distinct IPs of local, ready endpoints per Service.
#[test]
fn local_ready_endpoints_count_unique_ips() {
    let t = |ip: &str, port: u16, local: bool| endpoint(ip, port, local, true, true, false);
    let term = |ip: &str, port: u16, local: bool| endpoint(ip, port, local, false, true, true);
    type Entries = Vec<(ServicePortName, Vec<Endpoint>)>;
    type Counts = Vec<(NamespacedName, usize)>;
    let cases: Vec<(&str, Entries, Counts)> = vec![
        ("nothing", vec![], vec![]),
        ("unnamed port", vec![(tcp("ns1", "ep1", ""), vec![t("1.1.1.1", 11, false)])], vec![]),
        (
            "unnamed port local",
            vec![(tcp("ns1", "ep1", ""), vec![t("1.1.1.1", 11, true)])],
            vec![(nsn("ns1", "ep1"), 1)],
        ),
        (
            "named local and non-local ports for the same IP",
            vec![
                (tcp("ns1", "ep1", "p11"), vec![t("1.1.1.1", 11, false), t("1.1.1.2", 11, true)]),
                (tcp("ns1", "ep1", "p12"), vec![t("1.1.1.1", 12, false), t("1.1.1.2", 12, true)]),
            ],
            vec![(nsn("ns1", "ep1"), 1)],
        ),
        (
            "named local and non-local ports for different IPs",
            vec![
                (tcp("ns1", "ep1", "p11"), vec![t("1.1.1.1", 11, false)]),
                (tcp("ns2", "ep2", "p22"), vec![t("2.2.2.2", 22, true), t("2.2.2.22", 22, true)]),
                (tcp("ns2", "ep2", "p23"), vec![t("2.2.2.3", 23, true)]),
                (tcp("ns4", "ep4", "p44"), vec![t("4.4.4.4", 44, true), t("4.4.4.5", 44, false)]),
                (tcp("ns4", "ep4", "p45"), vec![t("4.4.4.6", 45, true)]),
            ],
            vec![(nsn("ns2", "ep2"), 3), (nsn("ns4", "ep4"), 2)],
        ),
        (
            "named local and non-local ports for different IPs, some not ready",
            vec![
                (tcp("ns1", "ep1", "p11"), vec![t("1.1.1.1", 11, false)]),
                (tcp("ns2", "ep2", "p22"), vec![t("2.2.2.2", 22, true), t("2.2.2.22", 22, true)]),
                (tcp("ns2", "ep2", "p23"), vec![term("2.2.2.3", 23, true)]),
                (tcp("ns4", "ep4", "p44"), vec![t("4.4.4.4", 44, true), t("4.4.4.5", 44, false)]),
                (tcp("ns4", "ep4", "p45"), vec![t("4.4.4.6", 45, true)]),
            ],
            vec![(nsn("ns2", "ep2"), 2), (nsn("ns4", "ep4"), 2)],
        ),
        (
            "all endpoints are terminating",
            vec![
                (tcp("ns1", "ep1", "p11"), vec![term("1.1.1.1", 11, false)]),
                (tcp("ns2", "ep2", "p22"), vec![term("2.2.2.2", 22, true), term("2.2.2.22", 22, true)]),
                (tcp("ns2", "ep2", "p23"), vec![term("2.2.2.3", 23, true)]),
                (tcp("ns4", "ep4", "p44"), vec![term("4.4.4.4", 44, true), term("4.4.4.5", 44, false)]),
                (tcp("ns4", "ep4", "p45"), vec![term("4.4.4.6", 45, true)]),
            ],
            vec![],
        ),
    ];
    for (name, entries, expected) in cases {
        let mut map = EndpointsMap::default();
        for (port, eps) in entries {
            map.insert(port, eps);
        }
        assert_eq!(map.local_ready_endpoints(), expected.into_iter().collect::<BTreeMap<_, _>>(), "{name}");
    }
}
