use std::net::{IpAddr, SocketAddr};

use kproxy_core::{Endpoint, NamespacedName, ServicePort, ServicePortName, SessionAffinity};
use tokio::io::AsyncBufReadExt;

use super::*;
use crate::render::plan::Role;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name(svc: &str, protocol: Protocol) -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns", svc), "p", protocol)
}

fn endpoint(addr: &str, local: bool) -> Endpoint {
    Endpoint { is_local: local, ..Endpoint::new(ip(addr), 8080) }
}

fn node_port(cluster_ip: &str, protocol: Protocol, node_port: u16) -> ServicePort {
    ServicePort { node_port: Some(node_port), ..ServicePort::new(ip(cluster_ip), 80, protocol) }
}

fn add(state: &mut ProxyState, svc: &str, port: ServicePort, endpoints: Vec<Endpoint>) {
    let n = name(svc, port.protocol);
    let view = state.family_mut(IpFamily::of(&port.cluster_ip));
    view.services.insert(n.clone(), port);
    view.endpoints.insert(n, endpoints);
}

fn listeners(state: &ProxyState) -> BTreeMap<ListenerKey, ListenerSpec> {
    localhost_listeners(&plan(&UserspaceConfig::default(), state))
}

/// (service, address, endpoints) of each listener.
fn summary(state: &ProxyState) -> Vec<(String, String, Vec<String>)> {
    let listeners = listeners(state);
    let row = |(k, s): (&ListenerKey, &ListenerSpec)| {
        let endpoints = s.endpoints.iter().map(ToString::to_string).collect();
        (k.name.service.name.clone(), s.address.map(|a| a.to_string()).unwrap_or_default(), endpoints)
    };
    listeners.iter().map(row).collect()
}

fn two_endpoints() -> Vec<Endpoint> {
    vec![endpoint("10.0.1.10", true), endpoint("10.0.2.10", false)]
}

#[test]
fn each_tcp_node_port_listens_on_loopback_at_its_node_port() {
    let mut state = ProxyState::new("node1");
    add(&mut state, "web", node_port("172.30.0.1", Protocol::Tcp, 30080), two_endpoints());
    add(&mut state, "web6", node_port("fd00:30::1", Protocol::Tcp, 30081), vec![endpoint("fd00:1::10", false)]);
    add(&mut state, "plain", ServicePort::new(ip("172.30.0.2"), 80, Protocol::Tcp), two_endpoints());
    assert_eq!(
        summary(&state),
        [
            (
                "web".to_owned(),
                "127.0.0.1:30080".to_owned(),
                vec!["10.0.1.10:8080".to_owned(), "10.0.2.10:8080".to_owned()]
            ),
            ("web6".to_owned(), "[::1]:30081".to_owned(), vec!["[fd00:1::10]:8080".to_owned()]),
        ]
    );
    assert!(listeners(&state).keys().all(|k| k.role == Role::Cluster));
}

#[test]
fn udp_sctp_and_node_ports_without_endpoints_get_no_listener() {
    let mut state = ProxyState::new("node1");
    add(&mut state, "dns", node_port("172.30.0.1", Protocol::Udp, 30053), two_endpoints());
    add(&mut state, "sctp", node_port("172.30.0.2", Protocol::Sctp, 30054), two_endpoints());
    add(&mut state, "empty", node_port("172.30.0.3", Protocol::Tcp, 30055), Vec::new());
    let not_ready = Endpoint { ready: false, serving: false, ..endpoint("10.0.1.11", true) };
    add(&mut state, "down", node_port("172.30.0.4", Protocol::Tcp, 30056), vec![not_ready]);
    assert_eq!(summary(&state), []);
}

#[test]
fn local_policy_serves_the_node_its_short_circuit_endpoints() {
    // Upstream sends the node's own connections to a Local node port to the cluster-wide
    // endpoints (`fib saddr type local`), so a remote endpoint serves them too.
    let mut state = ProxyState::new("node1");
    let port = ServicePort { external_policy_local: true, ..node_port("172.30.0.1", Protocol::Tcp, 30080) };
    add(&mut state, "local", port.clone(), two_endpoints());
    add(
        &mut state,
        "remote-only",
        ServicePort { cluster_ip: ip("172.30.0.2"), node_port: Some(30081), ..port },
        vec![endpoint("10.0.2.10", false)],
    );
    let rows = summary(&state);
    assert_eq!(rows[0].2, ["10.0.1.10:8080", "10.0.2.10:8080"]);
    assert_eq!(rows[1], ("remote-only".to_owned(), "127.0.0.1:30081".to_owned(), vec!["10.0.2.10:8080".to_owned()]));
}

#[test]
fn session_affinity_is_kept() {
    let mut state = ProxyState::new("node1");
    let port = ServicePort {
        session_affinity: SessionAffinity::ClientIp { timeout_seconds: 60 },
        ..node_port("172.30.0.1", Protocol::Tcp, 30080)
    };
    add(&mut state, "sticky", port, two_endpoints());
    let listeners = listeners(&state);
    let spec = listeners.values().next().expect("a listener");
    assert_eq!(spec.affinity, Some(Duration::from_secs(60)));
}

#[test]
fn a_node_port_two_services_claim_goes_to_the_first_by_name() {
    let mut state = ProxyState::new("node1");
    add(&mut state, "b", node_port("172.30.0.2", Protocol::Tcp, 30080), vec![endpoint("10.0.2.10", false)]);
    add(&mut state, "a", node_port("172.30.0.1", Protocol::Tcp, 30080), vec![endpoint("10.0.1.10", true)]);
    assert_eq!(summary(&state), [("a".to_owned(), "127.0.0.1:30080".to_owned(), vec!["10.0.1.10:8080".to_owned()])]);
}

/// A free loopback TCP port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects to 127.0.0.1:`port` and reads the backend's greeting.
async fn greeting(port: u16) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut line = String::new();
    tokio::io::BufReader::new(stream).read_line(&mut line).await?;
    Ok(line.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_open_and_close_as_services_come_and_go() {
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_addr: SocketAddr = backend.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = backend.accept().await {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"backend\n").await;
        }
    });
    let port = free_port();
    let mut state = ProxyState::new("node1");
    add(
        &mut state,
        "web",
        node_port("172.30.0.1", Protocol::Tcp, port),
        vec![Endpoint::new(backend_addr.ip(), backend_addr.port())],
    );
    let mut localhost = LocalhostNodePorts::new(LocalhostNodePorts::default_relay()).unwrap();
    assert_eq!(localhost.sync(&state), 1);
    assert_eq!(localhost.addresses(), [SocketAddr::from(([127, 0, 0, 1], port))]);
    assert_eq!(greeting(port).await.unwrap(), "backend");
    assert!(localhost.render(&state).contains(&format!("127.0.0.1:{port} -> {backend_addr}")));

    let empty = ProxyState::new("node1");
    assert_eq!(localhost.sync(&empty), 0);
    // The listener task is aborted: give the runtime a moment to drop its socket.
    let refused = async {
        for _ in 0..50 {
            if greeting(port).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(refused.await, "127.0.0.1:{port} still accepts after its Service is gone");
    // Back again: bound anew.
    assert_eq!(localhost.sync(&state), 1);
    assert_eq!(greeting(port).await.unwrap(), "backend");
    localhost.stop();
}

/// A dataplane that counts its calls.
#[derive(Default)]
struct Counting {
    syncs: usize,
    cleanups: usize,
}

#[async_trait::async_trait]
impl kproxy_core::Dataplane for Counting {
    fn name(&self) -> &'static str {
        "nftables"
    }

    async fn sync(
        &mut self,
        _: &ProxyState,
        _: &kproxy_core::Changes,
    ) -> Result<kproxy_core::SyncStats, kproxy_core::SyncError> {
        self.syncs += 1;
        Ok(kproxy_core::SyncStats { rules: 10, ..kproxy_core::SyncStats::default() })
    }

    async fn cleanup(&mut self) -> Result<(), kproxy_core::SyncError> {
        self.cleanups += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_composite_syncs_its_dataplane_then_the_listeners_and_cleans_both_up() {
    use kproxy_core::Dataplane as _;
    let port = free_port();
    let mut state = ProxyState::new("node1");
    add(&mut state, "web", node_port("172.30.0.1", Protocol::Tcp, port), vec![endpoint("10.0.1.10", true)]);
    let localhost = LocalhostNodePorts::new(LocalhostNodePorts::default_relay()).unwrap();
    let mut dp = WithLocalhostNodePorts::new(Counting::default(), localhost);
    assert_eq!(dp.name(), "nftables");
    let stats = dp.sync(&state, &kproxy_core::Changes::default()).await.unwrap();
    assert_eq!((dp.inner().syncs, stats.rules), (1, 11), "the dataplane's rules and one listener");
    assert_eq!(dp.localhost().addresses(), [SocketAddr::from(([127, 0, 0, 1], port))]);
    assert!(dp.render(&state).contains(&format!("127.0.0.1:{port} -> 10.0.1.10:8080")));
    dp.cleanup().await.unwrap();
    assert_eq!(dp.inner().cleanups, 1);
    assert!(dp.localhost().addresses().is_empty());
}
