//! Source NAT decisions: masqueradeAll and the cluster-CIDR local-traffic detector.

use super::CaseResult;
use super::support::{at, expect_source, expect_spread, http_eps, svc};
use crate::plan::{CLIENT, NODE1, NODE1_IPV4, POD1A, POD2A};
use crate::{Harness, Proto};

/// A ClusterIP Service `name` whose only endpoint is pod2a; returns its address.
async fn to_pod2a(h: &mut Harness, name: &str) -> Result<std::net::SocketAddr, super::CaseError> {
    let ip = h.alloc_cluster_ipv4();
    h.apply_service(svc(name, ip).tcp("http", 80).build()).await?;
    h.apply_slice(http_eps(name, &[POD2A]).build()).await?;
    Ok(at(ip, 80))
}

/// With masqueradeAll, pod1a → ClusterIP arrives from node1's IP.
pub(super) async fn masquerade_all(h: &mut Harness) -> CaseResult {
    h.set_masquerade_all(true).await?;
    let addr = to_pod2a(h, "masq-all").await?;
    let replies = expect_spread(h, Proto::Tcp, POD1A.name, addr, &[POD2A.name]).await?;
    expect_source(&replies, NODE1_IPV4, "masqueradeAll masquerades pod traffic")
}

/// pod1a keeps its source; node1 and the external client arrive as node1.
pub(super) async fn cluster_cidr(h: &mut Harness) -> CaseResult {
    let addr = to_pod2a(h, "masq-cidr").await?;
    let from_pod = expect_spread(h, Proto::Tcp, POD1A.name, addr, &[POD2A.name]).await?;
    expect_source(&from_pod, POD1A.ipv4, "sources inside the cluster CIDR are kept")?;
    let from_node = expect_spread(h, Proto::Tcp, NODE1, addr, &[POD2A.name]).await?;
    expect_source(&from_node, NODE1_IPV4, "the node's own traffic leaves as the node")?;
    let from_client = expect_spread(h, Proto::Tcp, CLIENT, addr, &[POD2A.name]).await?;
    expect_source(&from_client, NODE1_IPV4, "sources outside the cluster CIDR are masqueraded")
}
