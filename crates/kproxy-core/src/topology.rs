//! `categorize_endpoints`: which endpoints a service port uses on this node (upstream's
//! `pkg/proxy/topology.go`).

use std::collections::BTreeMap;

use crate::endpoint::Endpoint;
use crate::service_port::ServicePort;

/// Where this node stands in the cluster's topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopologyNode<'a> {
    /// This node's name (matched against node hints).
    pub name: &'a str,
    /// This node's `topology.kubernetes.io/zone` label (matched against zone hints).
    pub zone: Option<&'a str>,
}

/// The endpoint sets of one service port, as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CategorizedEndpoints<'a> {
    /// Endpoints for Cluster traffic policy, topology applied; empty when the port never
    /// uses Cluster policy.
    pub cluster: Vec<&'a Endpoint>,
    /// Endpoints for Local traffic policy; empty when the port never uses Local policy.
    pub local: Vec<&'a Endpoint>,
    /// The union of `cluster` and `local`, ordered by address.
    pub all_reachable: Vec<&'a Endpoint>,
    /// Some endpoint is usable somewhere in the cluster. When false, traffic is refused
    /// (REJECT); when true but the set a policy needs is empty, it is dropped.
    pub has_any: bool,
}

/// The topology filter chosen for a port, from its endpoints' hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopologyMode {
    /// No filter.
    None,
    /// Only endpoints hinted for this node.
    PreferSameNode,
    /// Only endpoints hinted for this node's zone.
    PreferSameZone,
}

/// Splits `endpoints` of `port` into the sets a dataplane programs.
///
/// - Cluster set: ready endpoints, filtered by topology hints (all-or-nothing: only when
///   every ready endpoint has a hint and one names this node, or this node's zone); if
///   none is ready anywhere, the serving-and-terminating ones.
/// - Local set: local ready endpoints; if none, local serving-and-terminating ones.
/// - `has_any`: a ready or serving-terminating endpoint exists anywhere.
pub fn categorize_endpoints<'a>(
    endpoints: &'a [Endpoint],
    port: &ServicePort,
    node: TopologyNode<'_>,
) -> CategorizedEndpoints<'a> {
    let mut out = CategorizedEndpoints::default();
    if endpoints.is_empty() {
        return out;
    }
    let mut mode = TopologyMode::None;
    if port.uses_cluster_endpoints() {
        mode = topology_mode(endpoints, node);
        out.cluster = filter(endpoints, |e| e.ready && available_for_topology(e, mode, node));
        if out.cluster.is_empty() {
            out.cluster = filter(endpoints, Endpoint::is_serving_terminating);
        }
        out.has_any = !out.cluster.is_empty();
    }
    if !port.uses_local_endpoints() {
        out.all_reachable = out.cluster.clone();
        return out;
    }
    out.has_any |= endpoints.iter().any(|e| e.ready || e.is_serving_terminating());
    out.local = filter(endpoints, |e| e.is_local && e.ready);
    let local_terminating = out.local.is_empty();
    if local_terminating {
        out.local = filter(endpoints, |e| e.is_local && e.is_serving_terminating());
    }
    out.all_reachable = match (port.uses_cluster_endpoints(), mode, local_terminating) {
        (false, _, _) => out.local.clone(),
        // Every ready endpoint is in the cluster set, the local set is ready ones: a subset.
        (true, TopologyMode::None, false) => out.cluster.clone(),
        _ => union(&out.cluster, &out.local),
    };
    out
}

fn topology_mode(endpoints: &[Endpoint], node: TopologyNode<'_>) -> TopologyMode {
    let ready: Vec<&Endpoint> = endpoints.iter().filter(|e| e.ready).collect();
    if ready.is_empty() {
        return TopologyMode::None;
    }
    let all_node_hints = ready.iter().all(|e| !e.node_hints.is_empty());
    if all_node_hints && ready.iter().any(|e| e.node_hints.contains(node.name)) {
        return TopologyMode::PreferSameNode;
    }
    let all_zone_hints = ready.iter().all(|e| !e.zone_hints.is_empty());
    let zone = node.zone.unwrap_or_default();
    if all_zone_hints && ready.iter().any(|e| e.zone_hints.contains(zone)) {
        return TopologyMode::PreferSameZone;
    }
    TopologyMode::None
}

fn available_for_topology(endpoint: &Endpoint, mode: TopologyMode, node: TopologyNode<'_>) -> bool {
    match mode {
        TopologyMode::None => true,
        TopologyMode::PreferSameNode => endpoint.node_hints.contains(node.name),
        TopologyMode::PreferSameZone => endpoint.zone_hints.contains(node.zone.unwrap_or_default()),
    }
}

fn filter(endpoints: &[Endpoint], keep: impl Fn(&Endpoint) -> bool) -> Vec<&Endpoint> {
    endpoints.iter().filter(|e| keep(e)).collect()
}

fn union<'a>(a: &[&'a Endpoint], b: &[&'a Endpoint]) -> Vec<&'a Endpoint> {
    let merged: BTreeMap<_, &'a Endpoint> = a.iter().chain(b).map(|e| (e.socket_addr(), *e)).collect();
    merged.into_values().collect()
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
