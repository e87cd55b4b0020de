//! The dataplane against a fake `nft` and `conntrack`, with a real relay on loopback.

use std::net::Ipv6Addr;

use kproxy_core::{Endpoint, NamespacedName, Protocol, ServicePortName};
use kproxy_netfilter::{FakeConntrack, FakeNft};

use super::*;
use crate::config::RelayConfig;

struct Fixture {
    dp: UserspaceDataplane,
    nft: FakeNft,
    conntrack: FakeConntrack,
}

fn fixture() -> Fixture {
    let (nft, conntrack) = (FakeNft::default(), FakeConntrack::default());
    let relay = RelayConfig {
        worker_threads: 1,
        bind_v4: Ipv4Addr::LOCALHOST,
        bind_v6: Ipv6Addr::LOCALHOST,
        ..RelayConfig::default()
    };
    let config = UserspaceConfig { relay, raise_nofile_limit: false, ..UserspaceConfig::default() };
    let dp = UserspaceDataplane::with_runners(config, Arc::new(nft.clone()), Arc::new(conntrack.clone())).unwrap();
    Fixture { dp, nft, conntrack }
}

fn name(svc: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns", svc), "p", protocol)
}

/// node1 (192.168.0.2) with one IPv4 service port per (name, protocol, cluster IP, endpoint).
fn state(ports: &[(&str, Protocol, &str, &str)]) -> ProxyState {
    let mut state = ProxyState::new("node1");
    state.node.addresses = vec!["192.168.0.2".parse().unwrap()];
    let view = state.family_mut(IpFamily::V4);
    for (svc, protocol, cluster_ip, endpoint) in ports {
        let n = name(svc, *protocol);
        view.services.insert(n.clone(), kproxy_core::ServicePort::new(cluster_ip.parse().unwrap(), 80, *protocol));
        view.endpoints.insert(n, vec![Endpoint::new(endpoint.parse().unwrap(), 8080)]);
    }
    state
}

fn changed(names: &[ServicePortName]) -> Changes {
    let mut changes = Changes::default();
    changes.family_mut(IpFamily::V4).service_ports.extend(names.iter().cloned());
    changes
}

fn port_of(dp: &UserspaceDataplane, svc: &str, protocol: Protocol) -> u16 {
    let ports = dp.relay().ports();
    *ports.iter().find(|(k, _)| k.name == name(svc, protocol)).unwrap().1
}

#[tokio::test]
async fn first_sync_binds_listeners_and_loads_both_tables() {
    let mut f = fixture();
    let s = state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]);
    let stats = f.dp.sync(&s, &Changes::full_sync()).await.unwrap();
    assert!(stats.full);
    assert_eq!(stats.service_ports, 1);
    let scripts = f.nft.scripts();
    assert_eq!(scripts.len(), 2);
    assert!(scripts[0].contains("table ip kproxy-userspace {\n"));
    assert!(scripts[1].contains("table ip6 kproxy-userspace {\n"));
    let port = port_of(&f.dp, "a", Protocol::Tcp);
    assert!(
        scripts[0].contains(&format!("add element ip kproxy-userspace internal {{ 172.30.0.1 . tcp . 80 : {port} }}"))
    );
    // The listener really listens (on loopback in this test).
    assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
}

#[tokio::test]
async fn endpoint_changes_touch_the_relay_only() {
    let mut f = fixture();
    f.dp.sync(&state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]), &Changes::full_sync()).await.unwrap();
    let port = port_of(&f.dp, "a", Protocol::Tcp);
    let moved = state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.2.10")]);
    f.dp.sync(&moved, &changed(&[name("a", Protocol::Tcp)])).await.unwrap();
    assert_eq!(f.nft.scripts().len(), 2, "no nft transaction for an endpoint change");
    assert_eq!(port_of(&f.dp, "a", Protocol::Tcp), port, "the listener stays");
}

#[tokio::test]
async fn removed_services_are_patched_out_then_their_listeners_stop() {
    let mut f = fixture();
    let both =
        state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10"), ("d", Protocol::Udp, "172.30.0.2", "10.0.1.10")]);
    f.dp.sync(&both, &Changes::full_sync()).await.unwrap();
    let only_a = state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]);
    f.dp.sync(&only_a, &changed(&[name("d", Protocol::Udp)])).await.unwrap();
    let scripts = f.nft.scripts();
    assert_eq!(scripts.len(), 3);
    assert!(scripts[2].contains("delete element ip kproxy-userspace internal { 172.30.0.2 . udp . 80 }"));
    assert!(!scripts[2].contains("add element"), "{}", scripts[2]);
    assert_eq!(f.dp.relay().ports().len(), 1);
    let flows = f.conntrack.deleted();
    let portals: Vec<String> = flows.iter().map(|f| f.endpoint.to_string()).collect();
    assert_eq!(portals, ["192.168.0.2", "127.0.0.1"]);
    assert!(flows.iter().all(|f| f.service == Some("172.30.0.2".parse().unwrap()) && f.port == 80));
}

#[tokio::test]
async fn a_failed_load_is_retryable_and_the_next_sync_is_full() {
    let mut f = fixture();
    let s = state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]);
    f.nft.fail_next(1);
    let error = f.dp.sync(&s, &Changes::full_sync()).await.unwrap_err();
    assert!(error.is_retryable());
    let stats = f.dp.sync(&s, &Changes::default()).await.unwrap();
    assert!(stats.full);
    assert!(f.nft.scripts().last().unwrap().contains("delete table ip6 kproxy-userspace"));
}

#[tokio::test]
async fn a_table_someone_deleted_is_loaded_again_by_the_next_sync_with_nothing_changed() {
    let mut f = fixture();
    let st = state(&[("web", Protocol::Tcp, "172.30.0.10", "10.0.0.1")]);
    f.dp.sync(&st, &Changes::full_sync()).await.unwrap();
    let loaded = f.nft.scripts().len();
    f.dp.sync(&st, &Changes::default()).await.unwrap();
    assert_eq!(f.nft.scripts().len(), loaded, "nothing to send while the tables are there");
    f.nft.drop_tables(IpFamily::V4);
    f.dp.sync(&st, &Changes::default()).await.unwrap();
    let scripts = f.nft.scripts();
    assert_eq!(scripts.len(), loaded + 1, "the IPv4 table only: {:?}", &scripts[loaded..]);
    assert!(scripts[loaded].contains("delete table ip "), "loaded whole:\n{}", scripts[loaded]);
    assert!(scripts[loaded].contains("172.30.0.10"), "with the services:\n{}", scripts[loaded]);
}

#[tokio::test]
async fn a_failed_patch_falls_back_to_a_full_load() {
    let mut f = fixture();
    f.dp.sync(&state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]), &Changes::full_sync()).await.unwrap();
    f.nft.fail_next(1);
    let two =
        state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10"), ("b", Protocol::Tcp, "172.30.0.3", "10.0.1.10")]);
    f.dp.sync(&two, &changed(&[name("b", Protocol::Tcp)])).await.unwrap();
    let scripts = f.nft.scripts();
    assert!(scripts[2].starts_with("add element"), "{}", scripts[2]);
    assert!(scripts[3].starts_with("table ip kproxy-userspace {}"), "{}", scripts[3]);
}

#[tokio::test]
async fn cleanup_removes_both_tables_and_every_listener() {
    let mut f = fixture();
    f.dp.sync(&state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]), &Changes::full_sync()).await.unwrap();
    f.dp.cleanup().await.unwrap();
    let scripts = f.nft.scripts();
    assert_eq!(scripts[2], "table ip kproxy-userspace {}\ndelete table ip kproxy-userspace\n");
    assert_eq!(scripts[3], "table ip6 kproxy-userspace {}\ndelete table ip6 kproxy-userspace\n");
    assert!(f.dp.relay().ports().is_empty());
}

#[tokio::test]
async fn render_lists_listeners_and_tables() {
    let mut f = fixture();
    let s = state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.1.10")]);
    let before = f.dp.render(&s);
    assert!(before.contains("#   ns/a:p TCP IPv4 cluster port 0 -> 10.0.1.10:8080"), "{before}");
    f.dp.sync(&s, &Changes::full_sync()).await.unwrap();
    let after = f.dp.render(&s);
    let port = port_of(&f.dp, "a", Protocol::Tcp);
    assert!(after.contains(&format!("cluster port {port} -> 10.0.1.10:8080")), "{after}");
    assert!(after.contains("table ip6 kproxy-userspace {"));
}

#[tokio::test]
async fn explain_names_the_bound_listener_and_the_redirect_elements() {
    let mut f = fixture();
    let state =
        state(&[("a", Protocol::Tcp, "172.30.0.1", "10.0.0.1"), ("b", Protocol::Tcp, "172.30.0.2", "10.0.0.2")]);
    f.dp.sync(&state, &Changes::full_sync()).await.unwrap();
    let query = kproxy_core::explain::Query { destination: "172.30.0.1:80".parse().unwrap(), source: None };
    let x = kproxy_core::explain_with(&f.dp, &state, &query);
    assert_eq!(x.mode, "userspace");
    assert_eq!(x.masquerade.decision, kproxy_core::explain::Decision::Yes, "a relay: {:?}", x.masquerade);
    let bound = f.dp.relay().ports();
    let port = bound.iter().find(|(k, _)| k.name == name("a", Protocol::Tcp)).map(|(_, p)| *p).expect("bound");
    assert_ne!(port, 0);
    let listeners: Vec<_> = x.rules.iter().filter(|r| r.kind == "listener").collect();
    assert_eq!(listeners.len(), 1, "{:?}", x.rules);
    assert_eq!(listeners[0].name, "ns/a:p cluster");
    assert_eq!(listeners[0].detail.as_deref(), Some(format!("port {port} -> 10.0.0.1:8080").as_str()));
    let elements: Vec<(&str, &str)> =
        x.rules.iter().filter(|r| r.kind == "element").map(|r| (r.table.as_str(), r.name.as_str())).collect();
    assert!(elements.contains(&("ip kproxy-userspace internal", "172.30.0.1 . tcp . 80")), "{elements:?}");
    assert!(elements.iter().all(|(_, key)| !key.contains("172.30.0.2")), "{elements:?}");
}
