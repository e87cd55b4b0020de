use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kproxy_core::IpFamily::V4;
use kproxy_core::NamespacedName;

use super::*;
use crate::health::{ManualClock, ProxyHealth};
use crate::test_http::{HttpResponse, get, loopback_listener, try_get};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn nsn(namespace: &str, name: &str) -> NamespacedName {
    NamespacedName::new(namespace, name)
}

struct Fixture {
    clock: Arc<ManualClock>,
    health: Arc<ProxyHealth>,
    server: ServiceHealthServer,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    let health = Arc::new(ProxyHealth::with_clock(Duration::from_secs(10), clock.clone()));
    let server = ServiceHealthServer::new([LOOPBACK], health.clone());
    Fixture { clock, health, server }
}

/// A port that was free a moment ago.
async fn free_port() -> u16 {
    let (listener, addr) = loopback_listener().await;
    drop(listener);
    addr.port()
}

fn addr_of(server: &ServiceHealthServer, service: &NamespacedName) -> SocketAddr {
    let addrs = server.local_addrs(service).unwrap_or_else(|| panic!("{service} is not open"));
    assert_eq!(addrs.len(), 1);
    addrs[0]
}

fn expected_body(namespace: &str, name: &str, endpoints: usize, healthy: bool) -> String {
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": \"{namespace}\",\n\t\t\"name\": \"{name}\"\n\t}},\n\t\"localEndpoints\": {endpoints},\n\t\"serviceProxyHealthy\": {healthy}\n}}"
    )
}

fn assert_response(response: &HttpResponse, status: u16, service: &NamespacedName, endpoints: usize, healthy: bool) {
    assert_eq!(response.status, status, "{service}: {response:?}");
    assert_eq!(response.body, expected_body(&service.namespace, &service.name, endpoints, healthy));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("X-Load-Balancing-Endpoint-Weight"), Some(endpoints.to_string().as_str()));
}

#[test]
fn defaults_to_all_ipv4_addresses() {
    let health = Arc::new(ProxyHealth::new(Duration::from_secs(10)));
    let server = ServiceHealthServer::new([], health);
    assert_eq!(server.addresses(), &[IpAddr::V4(Ipv4Addr::UNSPECIFIED)]);
}

#[test]
fn body_is_upstreams_dedented_template() {
    assert_eq!(
        body(&nsn("a", "b"), 18, true),
        "{\n\t\"service\": {\n\t\t\"namespace\": \"a\",\n\t\t\"name\": \"b\"\n\t},\n\t\"localEndpoints\": 18,\n\t\"serviceProxyHealthy\": true\n}"
    );
}

#[tokio::test]
async fn answers_by_local_endpoints() {
    let mut f = fixture();
    let svc = nsn("a", "b");
    // Unknown endpoints are dropped.
    f.server.sync_endpoints(BTreeMap::from([(svc.clone(), 93)]));
    assert_eq!(f.server.services().count(), 0);

    f.server.sync_services(BTreeMap::from([(svc.clone(), 0)])).await;
    let addr = addr_of(&f.server, &svc);
    assert_response(&get(addr, "/").await, 503, &svc, 0, true);

    f.server.sync_endpoints(BTreeMap::from([(svc.clone(), 18)]));
    assert_response(&get(addr, "/healthz").await, 200, &svc, 18, true);
    assert_response(&get(addr, "/any/path?x=1").await, 200, &svc, 18, true);

    f.server.sync_endpoints(BTreeMap::from([(svc.clone(), 0)]));
    assert_response(&get(addr, "/").await, 503, &svc, 0, true);

    f.server.sync_endpoints(BTreeMap::from([(svc.clone(), 11)]));
    f.server.sync_endpoints(BTreeMap::new());
    assert_response(&get(addr, "/").await, 503, &svc, 0, true);
}

#[tokio::test]
async fn unhealthy_proxy_gives_503_even_with_endpoints() {
    let mut f = fixture();
    let svc = nsn("c", "d");
    f.server.sync_services(BTreeMap::from([(svc.clone(), 0)])).await;
    f.server.sync_endpoints(BTreeMap::from([(svc.clone(), 7)]));
    let addr = addr_of(&f.server, &svc);

    f.health.updated(V4);
    f.health.queued_update(V4);
    f.clock.advance(Duration::from_secs(25));
    assert_response(&get(addr, "/").await, 503, &svc, 7, false);

    f.health.updated(V4);
    assert_response(&get(addr, "/").await, 200, &svc, 7, true);

    // Node eligibility is not part of it.
    f.health.set_node_eligible(false);
    assert_response(&get(addr, "/").await, 200, &svc, 7, true);
}

#[tokio::test]
async fn ports_open_close_and_change() {
    let mut f = fixture();
    let (a, b, c, d) = (nsn("a", "b"), nsn("c", "d"), nsn("e", "f"), nsn("g", "h"));
    let ports = [free_port().await, free_port().await, free_port().await, free_port().await, free_port().await];
    f.server.sync_services(BTreeMap::from([(a.clone(), ports[0]), (b.clone(), ports[1]), (c.clone(), ports[2])])).await;
    assert_eq!(f.server.services().count(), 3);
    f.server.sync_endpoints(BTreeMap::from([(a.clone(), 9), (b.clone(), 3), (c.clone(), 7)]));
    for (svc, port, n) in [(&a, ports[0], 9), (&b, ports[1], 3), (&c, ports[2], 7)] {
        assert_response(&get(SocketAddr::new(LOOPBACK, port), "/").await, 200, svc, n, true);
    }

    // Remove a, keep b, move c to a new port, add d.
    f.server.sync_services(BTreeMap::from([(b.clone(), ports[1]), (c.clone(), ports[3]), (d.clone(), ports[4])])).await;
    let open: Vec<(NamespacedName, u16)> = f.server.services().map(|(n, p)| (n.clone(), p)).collect();
    assert_eq!(open, vec![(b.clone(), ports[1]), (c.clone(), ports[3]), (d.clone(), ports[4])]);
    assert!(try_get(SocketAddr::new(LOOPBACK, ports[0]), "/").await.is_err(), "a's port is closed");
    assert!(try_get(SocketAddr::new(LOOPBACK, ports[2]), "/").await.is_err(), "c's old port is closed");
    assert_response(&get(SocketAddr::new(LOOPBACK, ports[1]), "/").await, 200, &b, 3, true);
    // A re-opened port starts with no endpoints, as upstream.
    assert_response(&get(SocketAddr::new(LOOPBACK, ports[3]), "/").await, 503, &c, 0, true);
    assert_response(&get(SocketAddr::new(LOOPBACK, ports[4]), "/").await, 503, &d, 0, true);

    f.server.sync_services(BTreeMap::new()).await;
    assert_eq!(f.server.services().count(), 0);
    for port in &ports[1..] {
        assert!(try_get(SocketAddr::new(LOOPBACK, *port), "/").await.is_err(), "port {port} is closed");
    }
}

#[tokio::test]
async fn a_closed_port_can_be_reused_at_once_by_another_service() {
    let mut f = fixture();
    let (a, b) = (nsn("a", "b"), nsn("c", "d"));
    let port = free_port().await;
    f.server.sync_services(BTreeMap::from([(a.clone(), port)])).await;
    // Keep a connection open across the close.
    let _idle = tokio::net::TcpStream::connect(SocketAddr::new(LOOPBACK, port)).await.expect("connects");
    f.server.sync_services(BTreeMap::from([(b.clone(), port)])).await;
    assert_eq!(f.server.local_addrs(&b), Some(vec![SocketAddr::new(LOOPBACK, port)]));
    assert_response(&get(SocketAddr::new(LOOPBACK, port), "/").await, 503, &b, 0, true);
}

#[tokio::test]
async fn a_port_that_fails_to_bind_is_retried_on_the_next_sync() {
    let mut f = fixture();
    let svc = nsn("a", "b");
    let (taken, addr) = loopback_listener().await;
    f.server.sync_services(BTreeMap::from([(svc.clone(), addr.port())])).await;
    assert_eq!(f.server.services().count(), 0, "bind failed, not recorded");

    drop(taken);
    f.server.sync_services(BTreeMap::from([(svc.clone(), addr.port())])).await;
    assert_eq!(addr_of(&f.server, &svc), addr);
    assert_response(&get(addr, "/").await, 503, &svc, 0, true);
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let mut f = fixture();
    let svc = nsn("a", "b");
    f.server.sync_services(BTreeMap::from([(svc.clone(), 0)])).await;
    let addr = addr_of(&f.server, &svc);
    f.server.shutdown().await;
    assert_eq!(f.server.services().count(), 0);
    assert!(try_get(addr, "/").await.is_err());
}
