use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use kproxy_core::{Changes, Endpoint, IpFamily, NamespacedName, Protocol, ServicePort, ServicePortName};

use super::*;
use crate::interfaces::{Interface, TcAttachment};
use crate::layout::{KpAddr, KpAffinity, KpAffinityKey, KpClientKey, KpCt, KpCtKey, KpServiceKey};
use crate::maps::{FakeMaps, FakeTables};

/// Records what the dataplane asked of the kernel.
#[derive(Clone, Default)]
struct FakeKernel {
    maps: FakeMaps,
    calls: Arc<Mutex<Vec<&'static str>>>,
    attachments: Arc<Mutex<Vec<TcAttachment>>>,
}

impl FakeKernel {
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

impl Kernel for FakeKernel {
    fn load(&mut self) -> Result<Box<dyn Maps>, KernelError> {
        self.calls.lock().unwrap().push("load");
        Ok(Box::new(self.maps.clone()))
    }

    fn attach(&mut self) -> Result<(), KernelError> {
        self.calls.lock().unwrap().push("attach");
        // The maps must be complete before the programs see traffic.
        assert!(!self.maps.snapshot().services.is_empty(), "attached before the maps were filled");
        Ok(())
    }

    fn interfaces(&self) -> Result<Vec<Interface>, KernelError> {
        let iface = |name: &str, address: &str, loopback| Interface {
            name: name.to_owned(),
            addresses: vec![ip(address)],
            loopback,
        };
        Ok(vec![iface("lo", "127.0.0.1", true), iface("eth0", "192.168.0.2", false), iface("pod1a", "fe80::1", false)])
    }

    fn attach_tc(&mut self, attachment: &TcAttachment) -> Result<(), KernelError> {
        self.attachments.lock().unwrap().push(attachment.clone());
        Ok(())
    }

    fn cleanup(&mut self) -> Result<(), KernelError> {
        self.calls.lock().unwrap().push("cleanup");
        Ok(())
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn web() -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns", "web"), "http", Protocol::Tcp)
}

fn state_with(endpoints: &[&str]) -> ProxyState {
    let mut state = ProxyState::new("node1");
    let v4 = state.family_mut(IpFamily::V4);
    v4.services.insert(web(), ServicePort::new(ip("172.30.0.1"), 80, Protocol::Tcp));
    v4.endpoints.insert(web(), endpoints.iter().map(|e| Endpoint::new(ip(e), 8080)).collect());
    state
}

fn changed(name: ServicePortName) -> Changes {
    let mut changes = Changes::default();
    changes.family_mut(IpFamily::V4).service_ports.insert(name);
    changes
}

fn endpoints_of(kernel: &FakeKernel) -> Vec<String> {
    let key = KpServiceKey::new(ip("172.30.0.1"), 80, Protocol::Tcp);
    let seen = kernel.maps.snapshot().endpoints_of(&key).unwrap_or_default();
    seen.iter().map(ToString::to_string).collect()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
}

#[test]
fn the_first_sync_loads_fills_then_attaches_and_later_syncs_write_maps_only() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    let stats = block_on(dataplane.sync(&state_with(&["10.0.1.10"]), &Changes::default())).unwrap();
    assert!(stats.full, "the first sync is full");
    assert_eq!(kernel.calls(), ["load", "attach"]);
    assert_eq!(endpoints_of(&kernel), ["10.0.1.10:8080"]);

    let stats = block_on(dataplane.sync(&state_with(&["10.0.1.10", "10.0.2.10"]), &changed(web()))).unwrap();
    assert!(!stats.full);
    assert_eq!((stats.touched_service_ports, stats.rules), (1, 2), "one slot and the count");
    assert_eq!(kernel.calls(), ["load", "attach"], "no reload, no re-attach");
    assert_eq!(endpoints_of(&kernel), ["10.0.1.10:8080", "10.0.2.10:8080"]);
}

#[test]
fn a_deleted_service_is_removed_and_cleanup_forgets_everything() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    block_on(dataplane.sync(&state_with(&["10.0.1.10"]), &Changes::default())).unwrap();
    block_on(dataplane.sync(&ProxyState::new("node1"), &changed(web()))).unwrap();
    let tables = kernel.maps.snapshot();
    assert!(tables.services.is_empty() && tables.endpoints.is_empty(), "{tables:?}");
    block_on(dataplane.cleanup()).unwrap();
    assert_eq!(kernel.calls(), ["load", "attach", "cleanup"]);
}

#[test]
fn a_failed_map_write_is_retryable() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    block_on(dataplane.sync(&state_with(&["10.0.1.10"]), &Changes::default())).unwrap();
    kernel.maps.fail_after(Some(0));
    let error = block_on(dataplane.sync(&state_with(&["10.0.2.10"]), &changed(web()))).unwrap_err();
    assert!(error.is_retryable() && !error.is_rejection(), "{error}");
    kernel.maps.fail_after(None);
    block_on(dataplane.sync(&state_with(&["10.0.2.10"]), &Changes::full_sync())).unwrap();
    assert_eq!(endpoints_of(&kernel), ["10.0.2.10:8080"]);
}

#[test]
fn render_lists_every_service_address_and_its_endpoints() {
    let dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(FakeKernel::default()));
    let mut state = state_with(&["10.0.1.10"]);
    state.node.addresses = vec![ip("192.168.0.2")];
    let text = dataplane.render(&state);
    assert!(text.contains("172.30.0.1:80/tcp"), "{text}");
    assert!(text.contains("[10.0.1.10:8080]"), "{text}");
    assert!(text.contains("from-outside flags=4 snat=192.168.0.2 -> [10.0.1.10:8080]"), "{text}");
}

#[test]
fn every_sync_attaches_the_tc_programs_to_the_interfaces_of_the_moment() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    let mut state = state_with(&["10.0.1.10"]);
    state.node.addresses = vec![ip("192.168.0.2")];
    block_on(dataplane.sync(&state, &Changes::default())).unwrap();
    block_on(dataplane.sync(&state, &changed(web()))).unwrap();
    let attachments = kernel.attachments.lock().unwrap().clone();
    let wanted = TcAttachment { external: vec!["eth0".to_owned()], pod_side: vec!["pod1a".to_owned()] };
    assert_eq!(attachments, [wanted.clone(), wanted], "the interface holding the node address is external");
    let outside = KpServiceKey::new(ip("172.30.0.1"), 80, Protocol::Tcp);
    let value = kernel.maps.snapshot().external[&outside];
    assert_eq!(value.snat[0].to_ne_bytes(), [192, 168, 0, 2], "the ClusterIP from outside is masqueraded");
}

#[test]
fn without_tc_no_interface_is_touched() {
    let kernel = FakeKernel::default();
    let config = EbpfConfig { tc: false, ..EbpfConfig::default() };
    let mut dataplane = EbpfDataplane::with_kernel(config, Box::new(kernel.clone()));
    block_on(dataplane.sync(&state_with(&["10.0.1.10"]), &Changes::default())).unwrap();
    assert!(kernel.attachments.lock().unwrap().is_empty());
}

#[test]
fn explain_names_the_service_entry_and_its_slots() {
    let dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(FakeKernel::default()));
    let state = state_with(&["10.0.1.10", "10.0.2.10"]);
    let query = kproxy_core::explain::Query { destination: "172.30.0.1:80".parse().unwrap(), source: None };
    let x = kproxy_core::explain_with(&dataplane, &state, &query);
    assert_eq!(x.mode, "ebpf");
    assert_eq!(x.masquerade.decision, kproxy_core::explain::Decision::No);
    assert_eq!(x.rules.len(), 1, "{:?}", x.rules);
    assert_eq!((x.rules[0].table.as_str(), x.rules[0].name.as_str()), ("kp_services", "172.30.0.1:80/tcp"));
    let detail = x.rules[0].detail.as_deref().unwrap_or_default();
    assert!(detail.contains("[10.0.1.10:8080 10.0.2.10:8080]"), "{detail}");
}

#[test]
fn a_restart_over_pinned_maps_reconciles_them_without_a_hole() {
    // The same FakeMaps for both: what a previous kproxy pinned.
    let kernel = FakeKernel::default();
    let mut first = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    let mut state = state_with(&["10.0.1.10", "10.0.2.10"]);
    let gone = ServicePortName::new(NamespacedName::new("ns", "gone"), "http", Protocol::Tcp);
    let v4 = state.family_mut(IpFamily::V4);
    v4.services.insert(gone.clone(), ServicePort::new(ip("172.30.0.9"), 80, Protocol::Tcp));
    v4.endpoints.insert(gone.clone(), vec![Endpoint::new(ip("10.0.9.10"), 8080)]);
    block_on(first.sync(&state, &Changes::default())).unwrap();
    drop(first);

    let mut second = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    let state = state_with(&["10.0.2.10", "10.0.3.10"]);
    let stats = block_on(second.sync(&state, &Changes::default())).unwrap();
    assert!(stats.full);
    assert_eq!(endpoints_of(&kernel), ["10.0.2.10:8080", "10.0.3.10:8080"]);
    let tables = kernel.maps.snapshot();
    assert!(tables.holes.is_empty(), "{:?}", tables.holes);
    assert_eq!(tables.services.len(), 1, "the service gone meanwhile is removed: {:?}", tables.services);
    assert_eq!(tables.endpoints.len(), 2, "{:?}", tables.endpoints);
}

/// The conntrack key of a packet from `from` to `to`.
fn tuple(from: &str, to: &str) -> KpCtKey {
    let (from, to) = (KpAddr::new(from.parse().unwrap()), KpAddr::new(to.parse().unwrap()));
    KpCtKey { saddr: from.addr, daddr: to.addr, sport: from.port, dport: to.port, proto: 6, family: 4, pad: 0 }
}

/// Both directions of a flow from `client` to the service, balanced to `endpoint`.
fn flow(tables: &mut FakeTables, client: &str, endpoint: &str) {
    let addr = |a: &str| KpAddr::new(a.parse().unwrap());
    let forward = KpCt { src: addr(client), dst: addr(endpoint) };
    tables.conntrack.insert(tuple(client, "172.30.0.1:80"), forward);
    let back = KpCt { src: addr("172.30.0.1:80"), dst: addr(client) };
    tables.conntrack.insert(tuple(endpoint, client), back);
}

/// Affinity of a node client (netns `cookie`) and of an outside client to `endpoint` in set `set`.
fn affine(tables: &mut FakeTables, cookie: u64, set: u32, endpoint: &str) {
    let value = KpAffinity { last_used_ns: 1, endpoint: KpAddr::new(endpoint.parse().unwrap()), slot: 0 };
    tables.affinity.insert(KpAffinityKey { netns_cookie: cookie, service_id: set, pad: 0 }, value);
    let client = KpAddr::new(format!("192.168.0.{cookie}:1").parse().unwrap()).addr;
    tables.client_affinity.insert(KpClientKey { addr: client, service_id: set, family: 4 }, value);
}

fn set_of(kernel: &FakeKernel, vip: &str) -> u32 {
    let vip: std::net::SocketAddr = vip.parse().unwrap();
    kernel.maps.snapshot().services[&KpServiceKey::new(vip.ip(), vip.port(), Protocol::Tcp)].id
}

/// The endpoints the affinity entries point at, by set.
fn affinities(tables: &FakeTables) -> Vec<(u32, String)> {
    let node = tables.affinity.iter().map(|(k, v)| (k.service_id, v.endpoint.socket_addr().to_string()));
    let outside = tables.client_affinity.iter().map(|(k, v)| (k.service_id, v.endpoint.socket_addr().to_string()));
    let mut all: Vec<_> = node.chain(outside).collect();
    all.sort();
    all
}

#[test]
fn a_removed_endpoint_loses_its_conntrack_and_affinity_entries_and_nothing_else_does() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    block_on(dataplane.sync(&state_with(&["10.0.1.10", "10.0.2.10"]), &Changes::default())).unwrap();
    let set = set_of(&kernel, "172.30.0.1:80");
    kernel.maps.seed(|t| {
        flow(t, "192.168.0.1:40000", "10.0.1.10:8080");
        flow(t, "192.168.0.2:40000", "10.0.2.10:8080");
        affine(t, 1, set, "10.0.1.10:8080");
        affine(t, 2, set, "10.0.2.10:8080");
        affine(t, 3, set + 100, "10.0.1.10:8080");
    });

    let stats = block_on(dataplane.sync(&state_with(&["10.0.2.10"]), &changed(web()))).unwrap();
    let tables = kernel.maps.snapshot();
    let targets: Vec<String> = tables.conntrack.values().map(|v| v.dst.socket_addr().to_string()).collect();
    assert_eq!(targets.len(), 2, "both directions of the flow to 10.0.1.10 are gone: {targets:?}");
    assert!(targets.iter().all(|t| !t.starts_with("10.0.1.10")), "{targets:?}");
    let kept = [
        (set, "10.0.2.10:8080"),
        (set, "10.0.2.10:8080"),
        (set + 100, "10.0.1.10:8080"),
        (set + 100, "10.0.1.10:8080"),
    ];
    assert_eq!(affinities(&tables), kept.map(|(s, e)| (s, e.to_owned())), "another set's affinity is not touched");
    let cleanup = stats.stale_flows.expect("the removal is reported like stale flows");
    assert_eq!((cleanup.families, cleanup.deleted), ([true, false], [2, 0]));

    // Adding an endpoint removes nothing: the maps are not read.
    let scans = tables.scans;
    let stats = block_on(dataplane.sync(&state_with(&["10.0.2.10", "10.0.3.10"]), &changed(web()))).unwrap();
    assert_eq!((kernel.maps.snapshot().scans, stats.stale_flows), (scans, None));
}

#[test]
fn an_endpoint_another_service_still_has_keeps_its_flows_but_not_the_affinity_of_the_set_it_left() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    let api = ServicePortName::new(NamespacedName::new("ns", "api"), "http", Protocol::Tcp);
    let sharing = |endpoints: &[&str]| {
        let mut state = state_with(endpoints);
        let v4 = state.family_mut(IpFamily::V4);
        v4.services.insert(api.clone(), ServicePort::new(ip("172.30.0.2"), 80, Protocol::Tcp));
        v4.endpoints.insert(api.clone(), vec![Endpoint::new(ip("10.0.1.10"), 8080)]);
        state
    };
    block_on(dataplane.sync(&sharing(&["10.0.1.10", "10.0.2.10"]), &Changes::default())).unwrap();
    let (web_set, api_set) = (set_of(&kernel, "172.30.0.1:80"), set_of(&kernel, "172.30.0.2:80"));
    kernel.maps.seed(|t| {
        flow(t, "192.168.0.1:40000", "10.0.1.10:8080");
        affine(t, 1, web_set, "10.0.1.10:8080");
        affine(t, 2, api_set, "10.0.1.10:8080");
    });
    block_on(dataplane.sync(&sharing(&["10.0.2.10"]), &changed(web()))).unwrap();
    let tables = kernel.maps.snapshot();
    assert_eq!(tables.conntrack.len(), 2, "10.0.1.10 still serves api");
    let kept = [(api_set, "10.0.1.10:8080".to_owned()), (api_set, "10.0.1.10:8080".to_owned())];
    assert_eq!(affinities(&tables), kept);
}

#[test]
fn a_deleted_service_takes_its_flows_and_affinity_along() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    block_on(dataplane.sync(&state_with(&["10.0.1.10"]), &Changes::default())).unwrap();
    let set = set_of(&kernel, "172.30.0.1:80");
    kernel.maps.seed(|t| {
        flow(t, "192.168.0.1:40000", "10.0.1.10:8080");
        affine(t, 1, set, "10.0.1.10:8080");
    });
    block_on(dataplane.sync(&ProxyState::new("node1"), &changed(web()))).unwrap();
    let tables = kernel.maps.snapshot();
    assert!(tables.conntrack.is_empty() && affinities(&tables).is_empty(), "{tables:?}");
}

/// [`state_with`] plus service `api` (172.30.0.2) on 10.0.9.10.
fn with_api(endpoints: &[&str]) -> ProxyState {
    let mut state = state_with(endpoints);
    let api = ServicePortName::new(NamespacedName::new("ns", "api"), "http", Protocol::Tcp);
    let v4 = state.family_mut(IpFamily::V4);
    v4.services.insert(api.clone(), ServicePort::new(ip("172.30.0.2"), 80, Protocol::Tcp));
    v4.endpoints.insert(api, vec![Endpoint::new(ip("10.0.9.10"), 8080)]);
    state
}

fn usage_of(stats: &SyncStats, map: &str) -> (u64, Option<u64>) {
    let usage = stats.maps.iter().find(|u| u.map == map).unwrap_or_else(|| panic!("no {map}"));
    (usage.max_entries, usage.entries)
}

#[test]
fn a_service_beyond_a_map_s_capacity_is_skipped_the_sync_fails_and_the_rest_is_balanced() {
    let kernel = FakeKernel::default();
    let sizes = crate::config::MapSizes { endpoints: 2, ..crate::config::MapSizes::default() };
    let config = EbpfConfig { map_sizes: sizes, ..EbpfConfig::default() };
    let mut dataplane = EbpfDataplane::with_kernel(config, Box::new(kernel.clone()));
    // api (1 slot) comes first; web (2 slots) no longer fits.
    let error = block_on(dataplane.sync(&with_api(&["10.0.1.10", "10.0.2.10"]), &Changes::default())).unwrap_err();
    assert!(error.is_retryable() && !error.is_rejection(), "{error}");
    let text = error.to_string();
    assert!(text.contains("kp_endpoints holds at most 2") && text.contains("ns/web"), "{text}");
    assert!(text.contains("--ebpf-map-sizes endpoints=ENTRIES"), "says how to make room: {text}");
    assert_eq!(kernel.calls(), ["load", "attach"], "what fits is attached and balanced");
    assert_eq!(endpoints_of(&kernel), Vec::<String>::new(), "web is not written at all");
    let api = KpServiceKey::new(ip("172.30.0.2"), 80, Protocol::Tcp);
    assert_eq!(kernel.maps.snapshot().endpoints_of(&api).map(|e| e.len()), Some(1));

    let stats = block_on(dataplane.sync(&with_api(&["10.0.1.10"]), &Changes::full_sync())).unwrap();
    assert_eq!(endpoints_of(&kernel), ["10.0.1.10:8080"], "once it fits, it is written");
    assert_eq!(usage_of(&stats, "kp_endpoints"), (2, Some(2)));
}

#[test]
fn every_sized_map_has_a_flag_name() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel));
    let stats = block_on(dataplane.sync(&with_api(&["10.0.1.10"]), &Changes::default())).unwrap();
    // kp_netns has a fixed size: one entry per `--ebpf-netns` namespace.
    for usage in stats.maps.iter().filter(|u| u.map != "kp_netns") {
        assert!(crate::config::MapSizes::flag_name(usage.map).is_some(), "{} has no flag name", usage.map);
    }
}

#[test]
fn every_sync_reports_each_map_s_size_and_the_entries_written() {
    let kernel = FakeKernel::default();
    let mut dataplane = EbpfDataplane::with_kernel(EbpfConfig::default(), Box::new(kernel.clone()));
    let mut state = with_api(&["10.0.1.10", "10.0.2.10"]);
    state.node.addresses = vec![ip("192.168.0.2")];
    let stats = block_on(dataplane.sync(&state, &Changes::default())).unwrap();
    let sizes = crate::config::MapSizes::default();
    assert_eq!(usage_of(&stats, "kp_services"), (u64::from(sizes.services), Some(2)));
    assert_eq!(usage_of(&stats, "kp_external"), (u64::from(sizes.services), Some(2)), "ClusterIPs from outside");
    assert_eq!(usage_of(&stats, "kp_endpoints"), (u64::from(sizes.endpoints), Some(3)));
    assert_eq!(usage_of(&stats, "kp_ranges"), (u64::from(sizes.source_ranges), Some(0)));
    assert_eq!(usage_of(&stats, "kp_conntrack"), (u64::from(sizes.conntrack), None), "the programs fill it");
    assert_eq!(stats.maps.iter().count(), 9);
    let stats = block_on(dataplane.sync(&with_api(&["10.0.1.10"]), &changed(web()))).unwrap();
    assert_eq!(usage_of(&stats, "kp_endpoints").1, Some(2), "counts follow every change");
}
