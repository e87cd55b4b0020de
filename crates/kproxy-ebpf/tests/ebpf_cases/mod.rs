//! Cases that socket-level balancing makes special, run after the shared table: unconnected
//! UDP (`sendto`), `getpeername`, a node port on the node's own address; and one the shared
//! table has no row for: a UDP node port from outside (the tc programs).

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use kproxy_conformance::plan::{CLIENT, NODE1, NODE1_IPV4, POD1A, PODS, PORT_DNS, PORT_HTTP};
use kproxy_conformance::traffic::parse_reply;
use kproxy_conformance::{Case, CaseError, CaseFuture, CaseResult, Harness, Proto, eventually};
use kproxy_testkit::{SliceBuilder, service, slice};

const NS: &str = "ebpf-cases";
const TIMEOUT: Duration = Duration::from_secs(5);

fn fail(message: impl Into<String>) -> CaseError {
    CaseError::Fail(message.into())
}

/// A slice of `service` over every pod, port `name` → `port`/`protocol`.
fn every_pod(service: &str, name: &str, port: u16, protocol: &str) -> SliceBuilder {
    let mut b = slice(NS, service, &format!("{service}-v4")).port(name, i32::from(port), protocol);
    for pod in PODS {
        b = b.endpoint(&pod.ipv4.to_string(), |e| e.node(pod.node));
    }
    b
}

fn pod_names() -> Vec<&'static str> {
    PODS.iter().map(|p| p.name).collect()
}

/// One `sendto` from an unconnected socket and the `recvfrom` of its answer.
fn sendto_once(vip: SocketAddr) -> Result<(String, SocketAddr), String> {
    let socket = UdpSocket::bind("0.0.0.0:0").map_err(|e| format!("bind: {e}"))?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    socket.send_to(b"ping\n", vip).map_err(|e| format!("sendto: {e}"))?;
    let mut buf = [0u8; 512];
    let (n, from) = socket.recv_from(&mut buf).map_err(|e| format!("recvfrom: {e}"))?;
    let reply = parse_reply(&String::from_utf8_lossy(&buf[..n])).map_err(|e| e.to_string())?;
    Ok((reply.pod, from))
}

async fn udp_sendto(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(service(NS, "sendto").cluster_ip(&ip.to_string()).udp("dns", 53).build()).await?;
    h.apply_slice(every_pod("sendto", "dns", PORT_DNS, "UDP").build()).await?;
    let vip = SocketAddr::new(ip.into(), 53);
    let attempt = || async {
        let (pod, from) = h.cluster().run_in(POD1A.name, move || sendto_once(vip)).map_err(|e| e.to_string())??;
        if from != vip {
            return Err(format!("the answer from {pod} shows source {from}, not the service address {vip}"));
        }
        if !pod_names().contains(&pod.as_str()) {
            return Err(format!("unexpected answer from {pod}"));
        }
        Ok(())
    };
    eventually(TIMEOUT, attempt).await.map_err(fail)
}

/// One TCP connection: the peer the socket reports, and the pod that answered.
fn connect_once(vip: SocketAddr) -> Result<(SocketAddr, String), String> {
    let mut stream = TcpStream::connect_timeout(&vip, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    let peer = stream.peer_addr().map_err(|e| format!("getpeername: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut stream, b"ping\n").map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(stream, 512), &mut text).map_err(|e| e.to_string())?;
    let reply = parse_reply(&text).map_err(|e| e.to_string())?;
    Ok((peer, reply.pod))
}

async fn getpeername(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(service(NS, "peer").cluster_ip(&ip.to_string()).tcp("http", 80).build()).await?;
    h.apply_slice(every_pod("peer", "http", PORT_HTTP, "TCP").build()).await?;
    let vip = SocketAddr::new(ip.into(), 80);
    let attempt = || async {
        let (peer, pod) = h.cluster().run_in(POD1A.name, move || connect_once(vip)).map_err(|e| e.to_string())??;
        if peer != vip {
            return Err(format!("getpeername shows {peer} (answered by {pod}), not the service address {vip}"));
        }
        Ok(())
    };
    eventually(TIMEOUT, attempt).await.map_err(fail)
}

async fn nodeport_from_node(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    let node_port = h.alloc_node_port();
    let svc = service(NS, "np-node").cluster_ip(&ip.to_string()).node_port("http", 80, i32::from(node_port));
    h.apply_service(svc.build()).await?;
    h.apply_slice(every_pod("np-node", "http", PORT_HTTP, "TCP").build()).await?;
    let addr = SocketAddr::new(NODE1_IPV4.into(), node_port);
    let attempt = || async {
        let replies = h.spread_proto(Proto::Tcp, NODE1, addr, 40).await;
        let wanted = pod_names();
        match replies.keys().find(|k| !wanted.contains(&k.as_str())) {
            Some(bad) => Err(format!("{addr} from node1: {replies:?} ({bad})")),
            None if replies.len() == wanted.len() => Ok(()),
            None => Err(format!("{addr} from node1 reached only {replies:?}")),
        }
    };
    eventually(TIMEOUT, attempt).await.map_err(fail)
}

async fn udp_nodeport_from_outside(h: &mut Harness) -> CaseResult {
    let ip = h.alloc_cluster_ipv4();
    let node_port = h.alloc_node_port();
    let svc = service(NS, "np-udp").cluster_ip(&ip.to_string()).type_("NodePort").port(
        "dns",
        53,
        "UDP",
        Some(i32::from(node_port)),
    );
    h.apply_service(svc.build()).await?;
    h.apply_slice(every_pod("np-udp", "dns", PORT_DNS, "UDP").build()).await?;
    let addr = SocketAddr::new(NODE1_IPV4.into(), node_port);
    let attempt = || async {
        let replies = h.replies(Proto::Udp, CLIENT, addr, 40).await;
        let mut pods = std::collections::BTreeSet::new();
        for reply in &replies {
            let reply = reply.as_ref().map_err(|e| format!("{addr} from the client: {e:?}"))?;
            if reply.source.ip() != std::net::IpAddr::from(NODE1_IPV4) {
                return Err(format!(
                    "{} saw source {}, not node1 (policy Cluster masquerades)",
                    reply.pod, reply.source
                ));
            }
            pods.insert(reply.pod.clone());
        }
        match pods.len() == PODS.len() {
            true => Ok(()),
            false => Err(format!("{addr} from the client reached only {pods:?}")),
        }
    };
    eventually(TIMEOUT, attempt).await.map_err(fail)
}

/// The cases, for the conformance table.
pub fn socket_cases() -> Vec<Case> {
    fn udp(h: &mut Harness) -> CaseFuture<'_> {
        Box::pin(udp_sendto(h))
    }
    fn peer(h: &mut Harness) -> CaseFuture<'_> {
        Box::pin(getpeername(h))
    }
    fn node_port(h: &mut Harness) -> CaseFuture<'_> {
        Box::pin(nodeport_from_node(h))
    }
    fn udp_node_port(h: &mut Harness) -> CaseFuture<'_> {
        Box::pin(udp_nodeport_from_outside(h))
    }
    vec![
        Case {
            name: "ebpf-udp-sendto",
            proves: "unconnected UDP (sendto) to a ClusterIP is balanced and the answer comes from the service address",
            run: udp,
        },
        Case {
            name: "ebpf-getpeername",
            proves: "a TCP connection to a ClusterIP reports the service address as its peer",
            run: peer,
        },
        Case {
            name: "ebpf-nodeport-from-node",
            proves: "a client on the node reaches a NodePort on the node's own address, spread over every endpoint",
            run: node_port,
        },
        Case {
            name: "ebpf-udp-nodeport-from-outside",
            proves: "UDP from an external client to a NodePort reaches every endpoint, masqueraded to node1 (tc \
                     programs: DNAT, SNAT, UDP checksums, replies translated back)",
            run: udp_node_port,
        },
    ]
}
