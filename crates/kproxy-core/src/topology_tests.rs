//! Table test for `categorize_endpoints`, ported from the `TestCategorizeEndpoints` table of
//! upstream kube-proxy's `pkg/proxy/topology_test.go`, plus cases of our own.
//!
//! Upstream cases not carried over, and why:
//!
//! - "hints, hints annotation == disabled, hints ignored", "hints, hints annotation == aUto
//!   (wrong capitalization), hints ignored", "hints, hints annotation empty, hints ignored",
//!   "hintsAnnotation empty, no filtering applied" and "hintsAnnotation disabled, no filtering
//!   applied": they test kube-proxy ignoring hints when the Service's topology annotation (or
//!   the TopologyAwareHints gate) is off. We always honour hints: whether a Service gets hints
//!   is the EndpointSlice controller's decision, not the proxy's (upstream's own table dropped
//!   these cases once kube-proxy stopped reading the annotation).
//! - "normal endpoint filtering, auto annotation" and "normal endpoint filtering, Auto
//!   annotation": without the annotation their inputs and expectations are identical to
//!   "hints enabled, hints annotation == auto", which is ported below.
//! - "Cluster traffic policy, PTE disabled, all endpoints are terminating", "iTP: Local, eTP:
//!   Local, PTE disabled, all endpoints remote and terminating" and "iTP: Cluster, eTP: Local,
//!   PTE disabled, with terminating endpoints": they test the ProxyTerminatingEndpoints gate
//!   off. The gate is GA and gone; we always fall back to serving-terminating endpoints. Their
//!   "PTE enabled" twins are ported.
//! - Newer upstream tables also run the node-hint cases with PreferSameTrafficDistribution
//!   off ("PreferSameNode falls back to same-zone when feature gate disabled"). Node hints are
//!   always honoured here, so that input is the "node hints win over zone hints" case below.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::names::Protocol;

use super::*;

/// This node's name in every case that does not say otherwise.
const NODE: &str = "node-1";

/// A ready, serving, non-terminating, remote endpoint without hints, from `ip:port`.
fn ep(addr: &str) -> Endpoint {
    let addr: SocketAddr = addr.parse().expect("test endpoint address");
    Endpoint::new(addr.ip(), addr.port())
}

/// Test-only modifiers for endpoints built with [`ep`].
trait EndpointExt {
    /// Runs on this node.
    fn local(self) -> Self;
    /// Not ready, not serving, not terminating (upstream's zero values).
    fn unready(self) -> Self;
    /// Terminating but still serving: the fallback when nothing is ready.
    fn serving_terminating(self) -> Self;
    /// Terminating and no longer serving: never usable.
    fn terminating_not_serving(self) -> Self;
    /// `hints.forZones`.
    fn zones(self, zones: &[&str]) -> Self;
    /// `hints.forNodes`.
    fn nodes(self, nodes: &[&str]) -> Self;
}

impl EndpointExt for Endpoint {
    fn local(self) -> Self {
        Self { is_local: true, ..self }
    }

    fn unready(self) -> Self {
        Self { ready: false, serving: false, terminating: false, ..self }
    }

    fn serving_terminating(self) -> Self {
        Self { ready: false, serving: true, terminating: true, ..self }
    }

    fn terminating_not_serving(self) -> Self {
        Self { ready: false, serving: false, terminating: true, ..self }
    }

    fn zones(self, zones: &[&str]) -> Self {
        Self { zone_hints: zones.iter().map(|z| (*z).to_owned()).collect(), ..self }
    }

    fn nodes(self, nodes: &[&str]) -> Self {
        Self { node_hints: nodes.iter().map(|n| (*n).to_owned()).collect(), ..self }
    }
}

/// The traffic-policy flags of a service port.
#[derive(Debug, Clone, Copy)]
struct Policy {
    internal_local: bool,
    external_local: bool,
    node_port: bool,
}

/// iTP Cluster, eTP Cluster, ClusterIP only: cluster set only.
const CLUSTER: Policy = Policy { internal_local: false, external_local: false, node_port: false };
/// iTP Local, ClusterIP only: local set only.
const ITP_LOCAL: Policy = Policy { internal_local: true, external_local: false, node_port: false };
/// iTP Local, eTP Cluster, with a node port: both sets.
const ITP_LOCAL_NODE_PORT: Policy = Policy { internal_local: true, external_local: false, node_port: true };
/// iTP Cluster, eTP Local, with a node port: both sets.
const ETP_LOCAL: Policy = Policy { internal_local: false, external_local: true, node_port: true };
/// eTP Local on a port that is not externally accessible: the policy does not apply.
const ETP_LOCAL_NOT_EXTERNAL: Policy = Policy { internal_local: false, external_local: true, node_port: false };
/// iTP Local, eTP Local, with a node port: both sets.
const BOTH_LOCAL: Policy = Policy { internal_local: true, external_local: true, node_port: true };

impl Policy {
    fn service_port(self) -> ServicePort {
        ServicePort {
            internal_policy_local: self.internal_local,
            external_policy_local: self.external_local,
            node_port: self.node_port.then_some(30080),
            ..ServicePort::new("172.30.0.1".parse().expect("cluster IP"), 80, Protocol::Tcp)
        }
    }
}

/// One row: inputs, then the expected sets as `ip:port` strings (any order) and `has_any`.
struct Case {
    name: &'static str,
    policy: Policy,
    node: &'static str,
    zone: Option<&'static str>,
    endpoints: Vec<Endpoint>,
    cluster: &'static [&'static str],
    local: &'static [&'static str],
    all: &'static [&'static str],
    has_any: bool,
}

/// The four ready endpoints upstream's zone cases start from: two in zone-a, one each in zone-b and zone-c.
fn four_zoned() -> Vec<Endpoint> {
    vec![
        ep("10.1.2.3:80").zones(&["zone-a"]),
        ep("10.1.2.4:80").zones(&["zone-b"]),
        ep("10.1.2.5:80").zones(&["zone-c"]),
        ep("10.1.2.6:80").zones(&["zone-a"]),
    ]
}

/// [`four_zoned`] with node hints too: one endpoint per node, node-1 to node-4.
fn four_node_hinted() -> Vec<Endpoint> {
    vec![
        ep("10.1.2.3:80").zones(&["zone-a"]).nodes(&["node-1"]),
        ep("10.1.2.4:80").zones(&["zone-b"]).nodes(&["node-2"]),
        ep("10.1.2.5:80").zones(&["zone-c"]).nodes(&["node-3"]),
        ep("10.1.2.6:80").zones(&["zone-a"]).nodes(&["node-4"]),
    ]
}

/// Two ready endpoints, 10.0.0.0 local and 10.0.0.1 remote.
fn one_local_one_remote() -> Vec<Endpoint> {
    vec![ep("10.0.0.0:80").local(), ep("10.0.0.1:80")]
}

fn cases() -> Vec<Case> {
    let a = Some("zone-a");
    vec![
        // ---- Ported from upstream (upstream's name in the comment above each). ----
        // "hints enabled, hints annotation == auto" (newer: "should use topology since all
        // endpoints have hints, node has a zone label and and there are endpoints for the node's zone")
        Case {
            name: "zone hints: only ready endpoints hinted for this node's zone are used",
            policy: CLUSTER,
            node: NODE,
            zone: a,
            endpoints: four_zoned(),
            cluster: &["10.1.2.3:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.6:80"],
            has_any: true,
        },
        // "externalTrafficPolicy: Local, topology ignored for Local endpoints"
        Case {
            name: "eTP Local: zone hints filter the cluster set but not the local set",
            policy: ETP_LOCAL,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]).local(),
                ep("10.1.2.4:80").zones(&["zone-b"]).local(),
                ep("10.1.2.5:80").zones(&["zone-c"]),
                ep("10.1.2.6:80").zones(&["zone-a"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.6:80"],
            local: &["10.1.2.3:80", "10.1.2.4:80"],
            all: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"],
            has_any: true,
        },
        // "internalTrafficPolicy: Local, topology ignored for Local endpoints"
        Case {
            name: "iTP Local with a node port: zone hints filter the cluster set but not the local set",
            policy: ITP_LOCAL_NODE_PORT,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]).local(),
                ep("10.1.2.4:80").zones(&["zone-b"]).local(),
                ep("10.1.2.5:80").zones(&["zone-c"]),
                ep("10.1.2.6:80").zones(&["zone-a"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.6:80"],
            local: &["10.1.2.3:80", "10.1.2.4:80"],
            all: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"],
            has_any: true,
        },
        // "empty node labels"
        Case {
            name: "zone hints: a node without a zone label ignores them",
            policy: CLUSTER,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.1.2.3:80").zones(&["zone-a"])],
            cluster: &["10.1.2.3:80"],
            local: &[],
            all: &["10.1.2.3:80"],
            has_any: true,
        },
        // "empty zone label"
        Case {
            name: "zone hints: a node with an empty zone label ignores them",
            policy: CLUSTER,
            node: NODE,
            zone: Some(""),
            endpoints: vec![ep("10.1.2.3:80").zones(&["zone-a"])],
            cluster: &["10.1.2.3:80"],
            local: &[],
            all: &["10.1.2.3:80"],
            has_any: true,
        },
        // "node in different zone, no endpoint filtering"
        Case {
            name: "zone hints: no endpoint hinted for this node's zone disables filtering",
            policy: CLUSTER,
            node: NODE,
            zone: Some("zone-b"),
            endpoints: vec![ep("10.1.2.3:80").zones(&["zone-a"])],
            cluster: &["10.1.2.3:80"],
            local: &[],
            all: &["10.1.2.3:80"],
            has_any: true,
        },
        // "unready endpoint"
        Case {
            name: "zone hints: an unready endpoint in this zone is left out",
            policy: CLUSTER,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]),
                ep("10.1.2.4:80").zones(&["zone-b"]),
                ep("10.1.2.5:80").zones(&["zone-c"]),
                ep("10.1.2.6:80").zones(&["zone-a"]).unready(),
            ],
            cluster: &["10.1.2.3:80"],
            local: &[],
            all: &["10.1.2.3:80"],
            has_any: true,
        },
        // "only unready endpoints in same zone (should not filter)"
        Case {
            name: "zone hints: only unready endpoints in this zone disables filtering",
            policy: CLUSTER,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]).unready(),
                ep("10.1.2.4:80").zones(&["zone-b"]),
                ep("10.1.2.5:80").zones(&["zone-c"]),
                ep("10.1.2.6:80").zones(&["zone-a"]).unready(),
            ],
            cluster: &["10.1.2.4:80", "10.1.2.5:80"],
            local: &[],
            all: &["10.1.2.4:80", "10.1.2.5:80"],
            has_any: true,
        },
        // "missing hints, no filtering applied"
        Case {
            name: "zone hints all-or-nothing: one ready endpoint without a hint disables filtering",
            policy: CLUSTER,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]),
                ep("10.1.2.4:80").zones(&["zone-b"]),
                ep("10.1.2.5:80"),
                ep("10.1.2.6:80").zones(&["zone-a"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"],
            has_any: true,
        },
        // "multiple hints per endpoint, filtering includes any endpoint with zone included"
        Case {
            name: "zone hints: an endpoint hinted for several zones is used if one is this node's",
            policy: CLUSTER,
            node: NODE,
            zone: Some("zone-c"),
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a", "zone-b", "zone-c"]),
                ep("10.1.2.4:80").zones(&["zone-b", "zone-c"]),
                ep("10.1.2.5:80").zones(&["zone-b", "zone-d"]),
                ep("10.1.2.6:80").zones(&["zone-c"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.6:80"],
            has_any: true,
        },
        // "conflicting topology and localness require merging allEndpoints"
        Case {
            name: "eTP Local: all-reachable merges a topology-filtered cluster set with the local set",
            policy: ETP_LOCAL,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.0.0.0:80").zones(&["zone-a"]).local(),
                ep("10.0.0.1:80").zones(&["zone-b"]).local(),
                ep("10.0.0.2:80").zones(&["zone-a"]),
                ep("10.0.0.3:80").zones(&["zone-b"]),
            ],
            cluster: &["10.0.0.0:80", "10.0.0.2:80"],
            local: &["10.0.0.0:80", "10.0.0.1:80"],
            all: &["10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80"],
            has_any: true,
        },
        // "internalTrafficPolicy: Local, with empty endpoints"
        Case {
            name: "iTP Local without endpoints: nothing anywhere, reject",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: false,
        },
        // "internalTrafficPolicy: Local, but all endpoints are remote"
        Case {
            name: "iTP Local with only remote ready endpoints: empty local set but has_any, drop",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80"), ep("10.0.0.1:80")],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: true,
        },
        // "internalTrafficPolicy: Local, all endpoints are local"
        Case {
            name: "iTP Local: every local ready endpoint is used",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").local(), ep("10.0.0.1:80").local()],
            cluster: &[],
            local: &["10.0.0.0:80", "10.0.0.1:80"],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "internalTrafficPolicy: Local, some endpoints are local"
        Case {
            name: "iTP Local: remote endpoints are left out",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: one_local_one_remote(),
            cluster: &[],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80"],
            has_any: true,
        },
        // "Cluster traffic policy, endpoints not Ready"
        Case {
            name: "Cluster policy with no ready or serving-terminating endpoint: reject",
            policy: CLUSTER,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").unready(), ep("10.0.0.1:80").unready()],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: false,
        },
        // "Cluster traffic policy, some endpoints are Ready"
        Case {
            name: "Cluster policy: unready endpoints are left out",
            policy: CLUSTER,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").unready(), ep("10.0.0.1:80")],
            cluster: &["10.0.0.1:80"],
            local: &[],
            all: &["10.0.0.1:80"],
            has_any: true,
        },
        // "Cluster traffic policy, PTE enabled, all endpoints are terminating"
        Case {
            name: "Cluster policy with nothing ready falls back to every serving-terminating endpoint",
            policy: CLUSTER,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").serving_terminating().local(), ep("10.0.0.1:80").serving_terminating()],
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &[],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "iTP: Local, eTP: Cluster, some endpoints local"
        Case {
            name: "iTP Local, eTP Cluster, node port: cluster set has all, local set the local one",
            policy: ITP_LOCAL_NODE_PORT,
            node: NODE,
            zone: None,
            endpoints: one_local_one_remote(),
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "iTP: Cluster, eTP: Local, some endpoints local"
        Case {
            name: "iTP Cluster, eTP Local, node port: cluster set has all, local set the local one",
            policy: ETP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: one_local_one_remote(),
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "iTP: Local, eTP: Local, some endpoints local"
        Case {
            name: "iTP Local, eTP Local, node port: cluster set has all, local set the local one",
            policy: BOTH_LOCAL,
            node: NODE,
            zone: None,
            endpoints: one_local_one_remote(),
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "iTP: Local, eTP: Local, all endpoints remote"
        Case {
            name: "iTP Local, eTP Local, all remote: empty local set, cluster set still reachable",
            policy: BOTH_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80"), ep("10.0.0.1:80")],
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &[],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "iTP: Local, eTP: Local, PTE enabled, all endpoints remote and terminating"
        Case {
            name: "iTP Local, eTP Local, all remote and serving-terminating: cluster falls back, local empty",
            policy: BOTH_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").serving_terminating(), ep("10.0.0.1:80").serving_terminating()],
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &[],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "iTP: Cluster, eTP: Local, PTE enabled, with terminating endpoints"
        Case {
            name: "eTP Local: local set falls back to local serving-terminating while the cluster set stays ready",
            policy: ETP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![
                ep("10.0.0.0:80"),
                ep("10.0.0.1:80").unready().local(),
                ep("10.0.0.2:80").serving_terminating().local(),
                ep("10.0.0.3:80").serving_terminating(),
            ],
            cluster: &["10.0.0.0:80"],
            local: &["10.0.0.2:80"],
            all: &["10.0.0.0:80", "10.0.0.2:80"],
            has_any: true,
        },
        // "externalTrafficPolicy ignored if not externally accessible"
        Case {
            name: "eTP Local without external access: no local set",
            policy: ETP_LOCAL_NOT_EXTERNAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80"), ep("10.0.0.1:80").local()],
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &[],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // "no cluster endpoints for iTP:Local internal-only service"
        Case {
            name: "iTP Local without external access: no cluster set",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80"), ep("10.0.0.1:80").local()],
            cluster: &[],
            local: &["10.0.0.1:80"],
            all: &["10.0.0.1:80"],
            has_any: true,
        },
        // ---- Our own cases. ----
        // Node hints (PreferSameTrafficDistribution, always on here).
        Case {
            name: "node hints win over zone hints: only the endpoint hinted for this node is used",
            policy: CLUSTER,
            node: "node-1",
            zone: a,
            endpoints: four_node_hinted(),
            cluster: &["10.1.2.3:80"],
            local: &[],
            all: &["10.1.2.3:80"],
            has_any: true,
        },
        Case {
            name: "node hints: none for this node falls back to zone hints",
            policy: CLUSTER,
            node: "node-0",
            zone: a,
            endpoints: four_node_hinted(),
            cluster: &["10.1.2.3:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.6:80"],
            has_any: true,
        },
        Case {
            name: "node hints: this node's only hinted endpoint being unready falls back to zone hints",
            policy: CLUSTER,
            node: "node-1",
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]).nodes(&["node-1"]).unready(),
                ep("10.1.2.4:80").zones(&["zone-b"]).nodes(&["node-2"]),
                ep("10.1.2.5:80").zones(&["zone-c"]).nodes(&["node-3"]),
                ep("10.1.2.6:80").zones(&["zone-a"]).nodes(&["node-4"]),
            ],
            cluster: &["10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.6:80"],
            has_any: true,
        },
        Case {
            name: "node hints apply without zone hints or a zone label",
            policy: CLUSTER,
            node: "node-1",
            zone: None,
            endpoints: vec![
                ep("10.1.2.3:80").nodes(&["node-1"]),
                ep("10.1.2.4:80").nodes(&["node-2"]),
                ep("10.1.2.5:80").nodes(&["node-1", "node-3"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.5:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.5:80"],
            has_any: true,
        },
        Case {
            name: "node hints all-or-nothing: one ready endpoint without a node hint falls back to zone hints",
            policy: CLUSTER,
            node: "node-1",
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]).nodes(&["node-1"]),
                ep("10.1.2.4:80").zones(&["zone-b"]),
                ep("10.1.2.5:80").zones(&["zone-c"]).nodes(&["node-3"]),
                ep("10.1.2.6:80").zones(&["zone-a"]).nodes(&["node-4"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.6:80"],
            has_any: true,
        },
        Case {
            name: "hints all-or-nothing: one ready endpoint without any hint disables node and zone filtering",
            policy: CLUSTER,
            node: "node-1",
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]).nodes(&["node-1"]),
                ep("10.1.2.4:80"),
                ep("10.1.2.5:80").zones(&["zone-c"]).nodes(&["node-3"]),
                ep("10.1.2.6:80").zones(&["zone-a"]).nodes(&["node-4"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.4:80", "10.1.2.5:80", "10.1.2.6:80"],
            has_any: true,
        },
        Case {
            name: "hints all-or-nothing counts ready endpoints only: an unready unhinted one keeps filtering on",
            policy: CLUSTER,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-a"]),
                ep("10.1.2.4:80").zones(&["zone-b"]),
                ep("10.1.2.5:80").unready(),
                ep("10.1.2.6:80").zones(&["zone-a"]),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.6:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.6:80"],
            has_any: true,
        },
        // Serving-terminating fallback.
        Case {
            name: "fallback to serving-terminating ignores node and zone hints and skips non-serving ones",
            policy: CLUSTER,
            node: "node-1",
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-b"]).nodes(&["node-2"]).serving_terminating(),
                ep("10.1.2.4:80").zones(&["zone-a"]).nodes(&["node-1"]).serving_terminating(),
                ep("10.1.2.5:80").zones(&["zone-a"]).nodes(&["node-1"]).unready(),
                ep("10.1.2.6:80").zones(&["zone-a"]).nodes(&["node-1"]).terminating_not_serving(),
            ],
            cluster: &["10.1.2.3:80", "10.1.2.4:80"],
            local: &[],
            all: &["10.1.2.3:80", "10.1.2.4:80"],
            has_any: true,
        },
        Case {
            name: "no fallback while anything is ready: a ready endpoint in another zone beats serving-terminating ones here",
            policy: CLUSTER,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.1.2.3:80").zones(&["zone-b"]),
                ep("10.1.2.4:80").zones(&["zone-a"]).serving_terminating(),
            ],
            cluster: &["10.1.2.3:80"],
            local: &[],
            all: &["10.1.2.3:80"],
            has_any: true,
        },
        Case {
            name: "Cluster policy with only terminating non-serving endpoints: reject",
            policy: CLUSTER,
            node: NODE,
            zone: None,
            endpoints: vec![
                ep("10.0.0.0:80").terminating_not_serving().local(),
                ep("10.0.0.1:80").terminating_not_serving(),
            ],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: false,
        },
        // Local policy with terminating local endpoints.
        Case {
            name: "iTP Local with only serving-terminating local endpoints uses them even when remote ones are ready",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![
                ep("10.0.0.0:80").serving_terminating().local(),
                ep("10.0.0.1:80"),
                ep("10.0.0.2:80").unready().local(),
                ep("10.0.0.3:80").terminating_not_serving().local(),
            ],
            cluster: &[],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80"],
            has_any: true,
        },
        Case {
            name: "iTP Local: a ready local endpoint wins over serving-terminating local ones",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").local(), ep("10.0.0.1:80").serving_terminating().local()],
            cluster: &[],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80"],
            has_any: true,
        },
        Case {
            name: "eTP Local with zone hints: all-reachable merges the zone-filtered cluster set and terminating local ones",
            policy: ETP_LOCAL,
            node: NODE,
            zone: a,
            endpoints: vec![
                ep("10.0.0.0:80").zones(&["zone-a"]).serving_terminating().local(),
                ep("10.0.0.1:80").zones(&["zone-a"]),
                ep("10.0.0.2:80").zones(&["zone-b"]),
            ],
            cluster: &["10.0.0.1:80"],
            local: &["10.0.0.0:80"],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
        // Reject (nothing usable anywhere) versus drop (usable only elsewhere).
        Case {
            name: "Cluster policy without endpoints: reject",
            policy: CLUSTER,
            node: NODE,
            zone: None,
            endpoints: vec![],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: false,
        },
        Case {
            name: "iTP Local with no usable endpoint anywhere: reject",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").unready().local(), ep("10.0.0.1:80").terminating_not_serving()],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: false,
        },
        Case {
            name: "iTP Local with only remote serving-terminating endpoints: empty local set but has_any, drop",
            policy: ITP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").serving_terminating(), ep("10.0.0.1:80").serving_terminating()],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: true,
        },
        Case {
            name: "eTP Local with no usable endpoint anywhere: reject",
            policy: ETP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80").unready().local(), ep("10.0.0.1:80").unready()],
            cluster: &[],
            local: &[],
            all: &[],
            has_any: false,
        },
        Case {
            name: "eTP Local with only remote endpoints: empty local set, cluster set reachable, has_any",
            policy: ETP_LOCAL,
            node: NODE,
            zone: None,
            endpoints: vec![ep("10.0.0.0:80"), ep("10.0.0.1:80")],
            cluster: &["10.0.0.0:80", "10.0.0.1:80"],
            local: &[],
            all: &["10.0.0.0:80", "10.0.0.1:80"],
            has_any: true,
        },
    ]
}

/// The endpoints as sorted `ip:port` strings (duplicates kept, so they show up as a mismatch).
fn actual(endpoints: &[&Endpoint]) -> Vec<String> {
    let mut out: Vec<String> = endpoints.iter().map(ToString::to_string).collect();
    out.sort();
    out
}

fn expected(addrs: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = addrs.iter().map(|a| (*a).to_owned()).collect();
    out.sort();
    out
}

#[test]
fn categorize_endpoints_table() {
    let cases = cases();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");

    let mut failures = Vec::new();
    for case in &cases {
        let port = case.policy.service_port();
        let node = TopologyNode { name: case.node, zone: case.zone };
        let got = categorize_endpoints(&case.endpoints, &port, node);

        for (set, got_set, want) in [
            ("cluster", &got.cluster, case.cluster),
            ("local", &got.local, case.local),
            ("all_reachable", &got.all_reachable, case.all),
        ] {
            let (got_set, want) = (actual(got_set), expected(want));
            if got_set != want {
                failures.push(format!("{}: {set}: got {got_set:?}, want {want:?}", case.name));
            }
        }
        if got.has_any != case.has_any {
            failures.push(format!("{}: has_any: got {}, want {}", case.name, got.has_any, case.has_any));
        }
        // Whatever the table says, all_reachable is exactly the union of the two sets.
        let union: Vec<String> = got
            .cluster
            .iter()
            .chain(&got.local)
            .map(ToString::to_string)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if actual(&got.all_reachable) != union {
            failures.push(format!("{}: all_reachable is not the union of cluster and local", case.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
