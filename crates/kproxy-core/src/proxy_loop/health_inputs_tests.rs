use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_testkit::{SliceBuilder, node, service, slice};

use super::HealthInputs;
use crate::event::{ObjectEvent, SourceEvent};
use crate::proxy_loop::testing::{Accepting, block_on};
use crate::{NamespacedName, ProxyLoop, ProxyState, categorize_endpoints};

/// The inputs computed from scratch over every port, as the daemon did before every sync.
fn recomputed(state: &ProxyState) -> HealthInputs {
    let mut inputs = HealthInputs::default();
    let mut local: BTreeMap<NamespacedName, BTreeSet<std::net::IpAddr>> = BTreeMap::new();
    for family in state.families() {
        inputs.health_check_node_ports.extend(family.services.health_check_node_ports());
        for (name, endpoints) in family.endpoints.iter() {
            for e in endpoints.iter().filter(|e| e.is_local && e.ready) {
                local.entry(name.service.clone()).or_default().insert(e.ip);
            }
        }
        for (name, port) in family.services.iter() {
            if categorize_endpoints(family.endpoints.get(name), port, state.topology_node()).local.is_empty() {
                let i = family.family.index();
                inputs.no_local_endpoints_internal[i] += usize::from(port.internal_policy_local);
                inputs.no_local_endpoints_external[i] +=
                    usize::from(port.external_policy_local && port.externally_accessible());
            }
        }
    }
    inputs.local_endpoints = local.into_iter().map(|(service, ips)| (service, ips.len())).collect();
    inputs
}

/// A LoadBalancer Service with Local policies and a health-check node port.
fn lb(name: &str, ip: &str, hc: i32) -> Service {
    let vip = ip.replace("172.30.0.", "192.0.2.");
    service("ns1", name)
        .type_("LoadBalancer")
        .cluster_ip(ip)
        .port("p80", 80, "TCP", Some(30000 + hc))
        .udp("dns", 53)
        .external_traffic_policy("Local")
        .internal_traffic_policy("Local")
        .health_check_node_port(hc)
        .lb_ingress(&vip, None)
        .build()
}

fn endpoints(service: &str, slice_name: &str, f: impl FnOnce(SliceBuilder) -> SliceBuilder) -> EndpointSlice {
    f(slice("ns1", service, slice_name).tcp("p80", 8080).udp("dns", 53)).build()
}

/// Syncs `proxy` (full or not) and checks the report's inputs against a recomputation.
fn synced(proxy: &mut ProxyLoop, full: bool) -> HealthInputs {
    let report = block_on(proxy.sync(&mut Accepting::default(), full)).expect("accepted");
    assert_eq!(report.health, recomputed(proxy.state()), "after a sync, full: {}", report.changes.full());
    assert_eq!(&report.health, proxy.health());
    report.health
}

#[test]
fn inputs_follow_every_change_as_a_recomputation_would() {
    let mut proxy = ProxyLoop::new("node1", SystemTime::UNIX_EPOCH);
    let mut fold = |event| proxy.on_event(event);
    fold(SourceEvent::Node(ObjectEvent::reset(vec![node("node1").zone("zone-a").build()])));
    fold(SourceEvent::Service(ObjectEvent::reset(vec![lb("a", "172.30.0.1", 31001), lb("b", "172.30.0.2", 31002)])));
    let a = endpoints("a", "a-1", |b| {
        b.endpoint("10.0.0.1", |e| e.node("node1")).endpoint("10.0.1.1", |e| e.node("node2"))
    });
    fold(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![a])));
    let first = synced(&mut proxy, false);
    let (svc_a, svc_b) = (NamespacedName::new("ns1", "a"), NamespacedName::new("ns1", "b"));
    assert_eq!(first.health_check_node_ports, BTreeMap::from([(svc_a.clone(), 31001), (svc_b.clone(), 31002)]));
    assert_eq!(first.local_endpoints, BTreeMap::from([(svc_a.clone(), 1)]), "one IP, on two ports");
    assert_eq!(
        (first.no_local_endpoints_internal, first.no_local_endpoints_external),
        ([2, 0], [2, 0]),
        "b's two ports"
    );

    // b gets a local endpoint (a partial sync), a's local endpoint stops being ready.
    let b = endpoints("b", "b-1", |b| b.endpoint("10.0.0.2", |e| e.node("node1")));
    proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::Apply(b)));
    let a = endpoints("a", "a-1", |b| b.endpoint("10.0.0.1", |e| e.node("node1").ready(false)));
    proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::Apply(a)));
    let second = synced(&mut proxy, false);
    assert_eq!(second.local_endpoints, BTreeMap::from([(svc_b.clone(), 1)]));

    // a loses its health-check port (Cluster policy), b is deleted.
    let cluster = service("ns1", "a").cluster_ip("172.30.0.1").tcp("p80", 80).udp("dns", 53).build();
    proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(cluster)));
    proxy.on_event(SourceEvent::Service(ObjectEvent::Delete(lb("b", "172.30.0.2", 31002))));
    let third = synced(&mut proxy, false);
    assert!(third.health_check_node_ports.is_empty(), "{third:?}");
    assert_eq!(third.local_endpoints, BTreeMap::from([(svc_b, 1)]), "b's slice is still there");

    // A node change (full sync) and the periodic full sync agree too.
    proxy.on_event(SourceEvent::Node(ObjectEvent::Apply(node("node1").zone("zone-b").build())));
    synced(&mut proxy, false);
    synced(&mut proxy, true);
}

#[test]
fn a_lost_claim_is_reported_once_while_it_lasts() {
    let mut proxy = ProxyLoop::new("node1", SystemTime::UNIX_EPOCH);
    let claiming =
        |name: &str, ip: &str| service("ns1", name).cluster_ip(ip).tcp("p80", 80).external_ips(&["192.0.2.1"]).build();
    proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(claiming("a-older", "172.30.0.1"))));
    proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(claiming("b-newer", "172.30.0.2"))));
    let mut dataplane = Accepting::default();
    let first = block_on(proxy.sync(&mut dataplane, false)).expect("accepted");
    assert_eq!(first.new_conflicts.len(), 1, "{:?}", first.new_conflicts);
    assert_eq!(first.new_conflicts[0].loser.service.name, "b-newer");
    assert_eq!(first.new_conflicts[0].winner.service.name, "a-older");
    proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(claiming("c", "172.30.0.3").clone())));
    let second = block_on(proxy.sync(&mut dataplane, true)).expect("accepted");
    assert_eq!(second.new_conflicts.len(), 1, "only c's is new: {:?}", second.new_conflicts);
    assert_eq!(second.new_conflicts[0].loser.service.name, "c");
    assert_eq!(proxy.conflicts().len(), 2);
    // It ends, and comes back: reported again.
    proxy.on_event(SourceEvent::Service(ObjectEvent::Delete(claiming("c", "172.30.0.3"))));
    assert!(block_on(proxy.sync(&mut dataplane, false)).expect("accepted").new_conflicts.is_empty());
    assert_eq!(proxy.conflicts().len(), 1);
    proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(claiming("c", "172.30.0.3"))));
    assert_eq!(block_on(proxy.sync(&mut dataplane, false)).expect("accepted").new_conflicts.len(), 1);
}
