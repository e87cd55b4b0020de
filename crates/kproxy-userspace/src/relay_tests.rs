//! The relay on loopback: real sockets, no netfilter.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kproxy_core::stale_flows::Destinations;
use kproxy_core::{IpFamily, NamespacedName, ServicePortName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::*;
use crate::render::plan::Role;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn relay() -> Relay {
    let config = RelayConfig {
        worker_threads: 2,
        bind_v4: Ipv4Addr::LOCALHOST,
        bind_v6: std::net::Ipv6Addr::LOCALHOST,
        connect_timeouts: vec![Duration::from_millis(300); 3],
        udp_idle_timeout: Duration::from_millis(500),
        ..RelayConfig::default()
    };
    Relay::new(config).unwrap()
}

fn key(name: &str, protocol: Protocol) -> ListenerKey {
    let name = ServicePortName::new(NamespacedName::new("test", name), "p", protocol);
    ListenerKey { family: IpFamily::V4, name, role: Role::Cluster }
}

fn spec(protocol: Protocol, endpoints: &[SocketAddr]) -> ListenerSpec {
    ListenerSpec {
        protocol,
        endpoints: endpoints.to_vec(),
        affinity: None,
        allowed_sources: Vec::new(),
        destinations: Destinations::default(),
        address: None,
    }
}

/// A TCP backend: greets each connection with its name, then echoes until end of stream.
async fn tcp_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                stream.write_all(format!("{name}\n").as_bytes()).await?;
                let (mut r, mut w) = stream.split();
                tokio::io::copy(&mut r, &mut w).await?;
                w.shutdown().await
            });
        }
    });
    addr
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    TcpListener::bind((LOCALHOST, 0)).await.unwrap().local_addr().unwrap()
}

/// Starts one listener; returns its address.
fn listen(relay: &mut Relay, key: &ListenerKey, spec: ListenerSpec) -> SocketAddr {
    let ports = relay.reconcile(&BTreeMap::from([(key.clone(), spec)])).unwrap();
    SocketAddr::new(LOCALHOST, ports[key])
}

/// Connects through the relay and reads the greeting line.
async fn greet(addr: SocketAddr) -> std::io::Result<(String, BufReader<TcpStream>)> {
    let stream = TcpStream::connect(addr).await?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    if line.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no greeting"));
    }
    Ok((line.trim().to_owned(), reader))
}

async fn names(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(greet(addr).await.unwrap().0);
    }
    out
}

#[tokio::test]
async fn tcp_round_robin_reaches_every_endpoint() {
    let backends = [tcp_backend("a").await, tcp_backend("b").await, tcp_backend("c").await];
    let mut relay = relay();
    let addr = listen(&mut relay, &key("rr", Protocol::Tcp), spec(Protocol::Tcp, &backends));
    assert_eq!(names(addr, 6).await, ["a", "b", "c", "a", "b", "c"]);
}

#[tokio::test]
async fn tcp_connect_failure_moves_to_the_next_endpoint() {
    let backends = [closed_port().await, tcp_backend("live").await];
    let mut relay = relay();
    let addr = listen(&mut relay, &key("retry", Protocol::Tcp), spec(Protocol::Tcp, &backends));
    assert_eq!(names(addr, 4).await, ["live"; 4]);
}

#[tokio::test]
async fn tcp_without_a_working_endpoint_resets_in_bounded_time() {
    let mut relay = relay();
    let addr = listen(&mut relay, &key("dead", Protocol::Tcp), spec(Protocol::Tcp, &[closed_port().await]));
    let started = Instant::now();
    assert!(greet(addr).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn removed_endpoint_gets_no_new_connections_but_keeps_its_old_ones() {
    let (a, b) = (tcp_backend("a").await, tcp_backend("b").await);
    let mut relay = relay();
    let key = key("churn", Protocol::Tcp);
    let addr = listen(&mut relay, &key, spec(Protocol::Tcp, &[a]));
    let (name, mut old) = greet(addr).await.unwrap();
    assert_eq!(name, "a");
    listen(&mut relay, &key, spec(Protocol::Tcp, &[b]));
    assert_eq!(names(addr, 3).await, ["b"; 3]);
    old.write_all(b"still here\n").await.unwrap();
    let mut echo = String::new();
    old.read_line(&mut echo).await.unwrap();
    assert_eq!(echo, "still here\n");
}

#[tokio::test]
async fn affinity_keeps_a_client_on_one_endpoint() {
    let backends = [tcp_backend("a").await, tcp_backend("b").await];
    let mut relay = relay();
    let mut s = spec(Protocol::Tcp, &backends);
    s.affinity = Some(Duration::from_secs(60));
    let addr = listen(&mut relay, &key("sticky", Protocol::Tcp), s);
    let seen = names(addr, 5).await;
    assert!(seen.iter().all(|n| *n == seen[0]), "{seen:?}");
}

#[tokio::test]
async fn sources_outside_the_ranges_are_reset() {
    let mut relay = relay();
    let mut s = spec(Protocol::Tcp, &[tcp_backend("a").await]);
    s.allowed_sources = vec!["10.0.0.0/8".parse().unwrap()];
    let addr = listen(&mut relay, &key("ranges", Protocol::Tcp), s);
    assert!(greet(addr).await.is_err());
}

#[tokio::test]
async fn bulk_bytes_arrive_intact_and_half_close_passes() {
    let mut relay = relay();
    let addr = listen(&mut relay, &key("bulk", Protocol::Tcp), spec(Protocol::Tcp, &[tcp_backend("a").await]));
    let (_, reader) = greet(addr).await.unwrap();
    let (mut r, mut w) = reader.into_inner().into_split();
    let payload: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    r.read_to_end(&mut echoed).await.unwrap();
    writer.await.unwrap();
    assert!(echoed == payload, "echo differs ({} of {} bytes)", echoed.len(), payload.len());
}

#[tokio::test]
async fn many_idle_connections_do_not_slow_new_ones() {
    let mut relay = relay();
    let addr = listen(&mut relay, &key("idle", Protocol::Tcp), spec(Protocol::Tcp, &[tcp_backend("a").await]));
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(greet(addr).await.unwrap().1);
    }
    assert_eq!(relay.active_connections(), 500);
    let started = Instant::now();
    assert_eq!(names(addr, 20).await, ["a"; 20]);
    assert!(started.elapsed() < Duration::from_secs(2), "20 connections took {:?}", started.elapsed());
}

#[tokio::test]
async fn shutdown_stops_accepting_and_drains() {
    let mut relay = relay();
    let addr = listen(&mut relay, &key("drain", Protocol::Tcp), spec(Protocol::Tcp, &[tcp_backend("a").await]));
    let (_, open) = greet(addr).await.unwrap();
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(open);
    });
    let started = Instant::now();
    assert_eq!(relay.shutdown(Duration::from_secs(5)).await, 0);
    assert!(started.elapsed() < Duration::from_secs(3));
    closer.await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
    assert!(relay.reconcile(&BTreeMap::new()).is_err());
}

#[tokio::test]
async fn shutdown_cuts_what_outlives_the_drain() {
    let mut relay = relay();
    let addr = listen(&mut relay, &key("cut", Protocol::Tcp), spec(Protocol::Tcp, &[tcp_backend("a").await]));
    let (_, _open) = greet(addr).await.unwrap();
    assert_eq!(relay.shutdown(Duration::from_millis(100)).await, 1);
}

/// A UDP backend: answers each datagram with `<name> <payload>`.
async fn udp_backend(name: &'static str) -> SocketAddr {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let reply = format!("{name} {}", String::from_utf8_lossy(&buf[..n]));
            let _ = socket.send_to(reply.as_bytes(), from).await;
        }
    });
    addr
}

/// One datagram from `client` (connected to the relay) and its answer.
async fn ask(client: &UdpSocket, text: &str) -> String {
    client.send(text.as_bytes()).await.unwrap();
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(2), client.recv(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn udp_client(addr: SocketAddr) -> UdpSocket {
    let client = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    client.connect(addr).await.unwrap();
    client
}

#[tokio::test]
async fn udp_sessions_spread_over_endpoints_and_stick_per_client() {
    let backends = [udp_backend("a").await, udp_backend("b").await];
    let mut relay = relay();
    let addr = listen(&mut relay, &key("udp", Protocol::Udp), spec(Protocol::Udp, &backends));
    let (one, two) = (udp_client(addr).await, udp_client(addr).await);
    // Replies come from the listener's address, or the connected clients would drop them.
    assert_eq!(ask(&one, "x").await, "a x");
    assert_eq!(ask(&two, "y").await, "b y");
    assert_eq!(ask(&one, "z").await, "a z");
}

#[tokio::test]
async fn udp_session_moves_when_its_endpoint_goes_and_ends_when_idle() {
    let (a, b) = (udp_backend("a").await, udp_backend("b").await);
    let mut relay = relay();
    let key = key("udp-churn", Protocol::Udp);
    let addr = listen(&mut relay, &key, spec(Protocol::Udp, &[a]));
    let client = udp_client(addr).await;
    assert_eq!(ask(&client, "1").await, "a 1");
    listen(&mut relay, &key, spec(Protocol::Udp, &[a, b]));
    assert_eq!(ask(&client, "2").await, "a 2", "a kept endpoint keeps the session");
    listen(&mut relay, &key, spec(Protocol::Udp, &[b]));
    assert_eq!(ask(&client, "3").await, "b 3");
    // Idle past the timeout: a new session, picked afresh (round robin over b alone).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ask(&client, "4").await, "b 4");
}

#[tokio::test]
async fn retired_listeners_close_their_ports() {
    let mut relay = relay();
    let key = key("retire", Protocol::Tcp);
    let addr = listen(&mut relay, &key, spec(Protocol::Tcp, &[tcp_backend("a").await]));
    let retired = relay.retire(&BTreeMap::new());
    assert_eq!(retired.len(), 1);
    assert_eq!((retired[0].key.clone(), retired[0].port), (key, addr.port()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}
