//! Localhost node ports: node1 → `127.0.0.1:<nodePort>` (and `[::1]:<nodePort>`).
//!
//! The iptables mode serves them through `route_localnet` (IPv4 only), whatever
//! `--nftables-localhost-nodeports` says. The nftables mode cannot reach a loopback
//! destination with rules: it serves them only with `--nftables-localhost-nodeports`,
//! through a userspace relay (upstream's KEP-6032), and refuses them without. Both count
//! what happens (the metrics `kproxy_nftables_localhost_nodeports_rejected_packets_total`,
//! `kubeproxy_iptables_localhost_nodeports_accepted_packets_total`).

use std::net::{Ipv4Addr, Ipv6Addr};

use kproxy_core::PacketCounter;

use super::support::{NS, Want, all_pods, at, eps, expect_no_answer, expect_spread, svc};
use super::{CaseError, CaseResult};
use crate::plan::{NODE1, NODE1_IPV4, PODS};
use crate::{Harness, Proto};

/// A NodePort Service `name` (IPv4 unless `ipv6`) with `policy` and endpoints on `pods`;
/// returns its node port.
async fn nodeport(
    h: &mut Harness,
    name: &str,
    policy: &str,
    ipv6: bool,
    pods: &[crate::plan::PodPlan],
) -> Result<u16, CaseError> {
    let ip: std::net::IpAddr = if ipv6 { h.alloc_cluster_ipv6().into() } else { h.alloc_cluster_ipv4().into() };
    let node_port = h.alloc_node_port();
    let service = svc(name, ip).node_port("http", 80, i32::from(node_port)).external_traffic_policy(policy);
    h.apply_service(service.build()).await?;
    h.apply_slice(eps(name, if ipv6 { "v6" } else { "v4" }, &[("http", 8080, "TCP")], pods, ipv6).build()).await?;
    Ok(node_port)
}

/// node1 → 127.0.0.1:nodePort: refused in nftables mode without the flag; with it (and in
/// iptables mode always) every endpoint answers, a Local node port answers with the
/// cluster-wide endpoints (the node's own traffic is short-circuited), `::1` too in
/// nftables mode, and a deleted Service's port is refused again.
pub(super) async fn localhost_nodeport(h: &mut Harness) -> CaseResult {
    let nftables = h.mode() == "nftables";
    let port = nodeport(h, "lnp-cluster", "Cluster", false, &PODS).await?;
    let loopback = at(Ipv4Addr::LOCALHOST, port);
    // The node port itself works: the loopback answer below is not a timing accident.
    expect_spread(h, Proto::Tcp, NODE1, at(NODE1_IPV4, port), &all_pods()).await?;
    if nftables {
        expect_no_answer(h, Proto::Tcp, NODE1, loopback, Want::Refused).await?;
        expect_counted(h, PacketCounter::NftablesLocalhostNodePortsRejected).await?;
    }
    h.set_localhost_nodeports(true).await?;
    expect_spread(h, Proto::Tcp, NODE1, loopback, &all_pods()).await?;
    if h.mode() == "iptables" {
        expect_counted(h, PacketCounter::IptablesLocalhostNodePortsAccepted).await?;
    }

    let remote_only: Vec<&str> = PODS[2..].iter().map(|p| p.name).collect();
    let local = nodeport(h, "lnp-local", "Local", false, &PODS[2..]).await?;
    expect_spread(h, Proto::Tcp, NODE1, at(Ipv4Addr::LOCALHOST, local), &remote_only).await?;

    if nftables {
        let v6 = nodeport(h, "lnp-ipv6", "Cluster", true, &PODS).await?;
        expect_spread(h, Proto::Tcp, NODE1, at(Ipv6Addr::LOCALHOST, v6), &all_pods()).await?;
    }

    h.delete_service(NS, "lnp-cluster").await?;
    expect_no_answer(h, Proto::Tcp, NODE1, loopback, Want::NoAnswer).await
}

/// The mode's kernel counter `kind` counted something (its metric end to end).
async fn expect_counted(h: &Harness, kind: PacketCounter) -> CaseResult {
    match h.packet_count(kind).await? {
        Some(n) if n > 0 => Ok(()),
        other => Err(CaseError::Fail(format!("{kind} should have counted the loopback connections, shows {other:?}"))),
    }
}
