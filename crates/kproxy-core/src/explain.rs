//! `explain`: what happens to one packet sent to a destination, from a source, on this node:
//! which service port matches, which endpoints are eligible and why, whether the packet is
//! masqueraded, and what the dataplane programs for it. One pure function,
//! [`explain`], serves `kproxy explain --manifests` and the daemon's `/explain`.
//!
//! Endpoint eligibility is [`categorize_endpoints`]' decision; this module only says which
//! of its sets applies to the packet and words the reasons. The names of chains, map
//! elements, listeners or map keys come from the dataplane ([`Dataplane::explain_rules`]).
//!
//! [`Dataplane::explain_rules`]: crate::Dataplane::explain_rules

mod destination;
mod endpoints;
mod masquerade;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
use crate::names::{IpFamily, ServicePortName};
use crate::proxy_state::ProxyState;
use crate::render::{PortEntry, entries};
use crate::service_port::ServicePort;
use crate::topology::categorize_endpoints;

pub use destination::{Destination, ParseDestinationError, parse_protocol};

/// A question: a packet to `destination`, from `source` when known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    /// Where the packet goes.
    pub destination: Destination,
    /// Where it comes from; `None`: a client outside the node that is not a pod.
    pub source: Option<IpAddr>,
}

/// How a destination matched a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The port's cluster IP.
    ClusterIp,
    /// One of `spec.externalIPs`.
    ExternalIp,
    /// A load-balancer ingress IP.
    LoadBalancerIp,
    /// The node port, on an address of this node.
    NodePort,
}

impl MatchKind {
    /// Whether traffic matched this way is external (external traffic policy applies).
    pub fn is_external(self) -> bool {
        self != Self::ClusterIp
    }

    /// `cluster IP`, `external IP`, `load-balancer IP`, `node port`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ClusterIp => "cluster IP",
            Self::ExternalIp => "external IP",
            Self::LoadBalancerIp => "load-balancer IP",
            Self::NodePort => "node port",
        }
    }
}

/// What the source of the packet is, as the rules tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Not given.
    Unknown,
    /// A pod: inside a cluster CIDR (the local-traffic detector).
    Pod,
    /// This node itself: one of its addresses, or loopback.
    Node,
    /// Anything else: a client outside the cluster (or a pod no cluster CIDR tells apart).
    Other,
}

/// Which endpoint set the packet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointSet {
    /// Every usable endpoint in the cluster, topology applied (policy Cluster).
    Cluster,
    /// This node's endpoints (policy Local).
    Local,
}

/// What happens to the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// DNAT to one of the eligible endpoints.
    Forward,
    /// Refused (ICMP unreachable / TCP reset): the service has no usable endpoint anywhere.
    Reject,
    /// Dropped: endpoints exist, but none this packet may use (or its source is not allowed).
    Drop,
    /// No service port matches: kproxy leaves the packet alone.
    NotAService,
}

/// Whether the packet leaves with a node address as its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Masqueraded.
    Yes,
    /// The source is kept.
    No,
    /// It depends on what is not known (the source, or which endpoint is picked).
    Depends,
}

/// The matched service port, as the packet meets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchedPort {
    /// `namespace/name:port` (upstream's `ServicePortName` text).
    pub service_port: String,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name (empty for an unnamed port).
    pub port_name: String,
    /// `IPv4` or `IPv6`.
    pub family: IpFamily,
    /// How the destination matched.
    pub matched_by: MatchKind,
    /// The port's cluster IP.
    pub cluster_ip: IpAddr,
    /// The service port number.
    pub port: u16,
    /// The node port, if any.
    pub node_port: Option<u16>,
    /// `internal` (cluster IP) or `external` traffic.
    pub external_traffic: bool,
    /// The traffic policy in force for this packet: `Cluster` or `Local`.
    pub traffic_policy: String,
    /// External traffic from a pod or the node to a Local-policy service goes the
    /// cluster-wide way instead (upstream's short circuit).
    pub short_circuit: bool,
    /// The endpoint set used.
    pub endpoint_set: EndpointSet,
    /// ClientIP session affinity timeout in seconds; `None`: no affinity.
    pub session_affinity_seconds: Option<u32>,
    /// `loadBalancerSourceRanges` (CIDRs), when the load-balancer IP matched and has some.
    pub source_ranges: Vec<String>,
    /// `spec.trafficDistribution`, if set.
    pub traffic_distribution: Option<String>,
}

/// One endpoint of the matched port, and whether this packet may use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointVerdict {
    /// `ip:port`.
    pub address: String,
    /// The node it runs on, when known.
    pub node: Option<String>,
    /// The zone it runs in, when known.
    pub zone: Option<String>,
    /// Runs on this node.
    pub local: bool,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// In the set this packet uses.
    pub eligible: bool,
    /// Why (not).
    pub reason: String,
}

/// The masquerade decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masquerade {
    /// Masqueraded, kept, or depends.
    pub decision: Decision,
    /// The rules that decide it, in the order they apply.
    pub reasons: Vec<String>,
}

/// One thing a dataplane programs for the packet's path: a chain, a rule, a map element,
/// a listener or a map key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    /// `chain`, `rule`, `element`, `listener` or `map_entry`.
    pub kind: String,
    /// Where it lives: a table, a set or map, a chain.
    pub table: String,
    /// The chain's name, the element's key, the rule, the listener.
    pub name: String,
    /// A value or detail (the element's verdict, the listener's port).
    pub detail: Option<String>,
}

impl RuleRef {
    /// A reference of `kind` in `table` named `name`.
    pub fn new(kind: &str, table: impl Into<String>, name: impl Into<String>, detail: Option<String>) -> Self {
        Self { kind: kind.to_owned(), table: table.into(), name: name.into(), detail }
    }
}

/// Everything `kproxy explain` says about one packet. Serialized as the documented JSON of
/// `kproxy explain --output json` and `/explain`; field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The packet's destination.
    pub destination: Destination,
    /// The packet's source, if given.
    pub source: Option<IpAddr>,
    /// What the source is.
    pub source_kind: SourceKind,
    /// This node's name.
    pub node: String,
    /// The proxy mode.
    pub mode: String,
    /// The matched service port; `None` when none matches.
    pub service: Option<MatchedPort>,
    /// What happens to the packet.
    pub verdict: Verdict,
    /// Why.
    pub verdict_reason: String,
    /// Every endpoint of the matched port (of the destination's family).
    pub endpoints: Vec<EndpointVerdict>,
    /// Whether the packet is masqueraded.
    pub masquerade: Masquerade,
    /// What the dataplane programs for this path.
    pub rules: Vec<RuleRef>,
    /// Remarks: assumptions made, topology in force, affinity.
    pub notes: Vec<String>,
}

/// How a mode treats a packet's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasqueradeModel {
    /// kube-proxy's netfilter rules: masquerade-all, the local-traffic detector (cluster
    /// CIDRs), external traffic with policy Cluster, hairpin.
    Netfilter {
        /// `--masquerade-all`.
        masquerade_all: bool,
    },
    /// A relay in the middle: endpoints always see a node address.
    Relay,
    /// Socket-level balancing: the destination is rewritten at `connect()`, the source never.
    SourceKept,
    /// The mode does not say.
    Unknown,
}

/// What [`explain`] needs to know of the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeProfile {
    /// The mode's name.
    pub mode: String,
    /// How it treats sources.
    pub masquerade: MasqueradeModel,
    /// How it tells a pod's packets (upstream's local-traffic detector).
    pub pods: PodDetection,
}

impl ModeProfile {
    /// A mode that tells nothing about masquerading.
    pub fn unknown(mode: &str) -> Self {
        Self {
            mode: mode.to_owned(),
            masquerade: MasqueradeModel::Unknown,
            pods: PodDetection::ClusterCidrs(Vec::new()),
        }
    }
}

/// How a mode tells traffic from this node's pods from other traffic (`--detect-local-mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodDetection {
    /// Sources inside these CIDRs (`ClusterCIDR`: `--cluster-cidr`; none: detection is off).
    ClusterCidrs(Vec<IpNet>),
    /// Sources inside this node's `spec.podCIDRs` (`NodeCIDR`).
    NodeCidrs,
    /// Packets arriving through an interface (`BridgeInterface`, `InterfaceNamePrefix`),
    /// described (e.g. `bridge cbr0`): a source address alone cannot tell.
    Interface(String),
}

impl PodDetection {
    /// Whether `source` is a pod's address: `None` when an address cannot tell.
    fn is_pod(&self, state: &ProxyState, source: IpAddr) -> Option<bool> {
        match self {
            Self::ClusterCidrs(cidrs) => Some(cidrs.iter().any(|c| c.contains(&source))),
            Self::NodeCidrs => Some(state.node.pod_cidrs.iter().any(|c| c.contains(&source))),
            Self::Interface(_) => None,
        }
    }

    /// Whether any traffic is recognised as a pod's at all.
    fn is_on(&self, state: &ProxyState) -> bool {
        match self {
            Self::ClusterCidrs(cidrs) => !cidrs.is_empty(),
            Self::NodeCidrs => !state.node.pod_cidrs.is_empty(),
            Self::Interface(_) => true,
        }
    }
}

/// The matched port and path, handed to the dataplane for the names of what it programs.
#[derive(Debug, Clone, Copy)]
pub struct PortTarget<'a> {
    /// The family of the destination.
    pub family: IpFamily,
    /// The service port with its endpoints.
    pub entry: PortEntry<'a>,
    /// How the destination matched.
    pub matched_by: MatchKind,
    /// The destination.
    pub destination: &'a Destination,
    /// The endpoint set the packet uses.
    pub endpoint_set: EndpointSet,
}

/// Explains `query` against `state` for a mode described by `profile`; `rules` names what
/// the mode programs for the matched port.
pub fn explain(
    state: &ProxyState,
    query: &Query,
    profile: &ModeProfile,
    rules: impl FnOnce(&PortTarget<'_>) -> Vec<RuleRef>,
) -> Explanation {
    let source_kind = classify_source(state, profile, query.source);
    let mut out = Explanation {
        destination: query.destination,
        source: query.source,
        source_kind,
        node: state.node.name.clone(),
        mode: profile.mode.clone(),
        service: None,
        verdict: Verdict::NotAService,
        verdict_reason: String::new(),
        endpoints: Vec::new(),
        masquerade: Masquerade { decision: Decision::No, reasons: Vec::new() },
        rules: Vec::new(),
        notes: Vec::new(),
    };
    let family = IpFamily::of(&query.destination.ip);
    let Some((entry, matched_by)) = find_port(state, family, &query.destination) else {
        out.verdict_reason = format!(
            "no service port has {} as its cluster IP, external IP or load-balancer IP, nor as a node port on this node",
            query.destination
        );
        out.masquerade.reasons.push("kproxy does not touch the packet".to_owned());
        return out;
    };
    if query.source.is_none() {
        out.notes.push(if matched_by.is_external() {
            "no --from: the source is taken as a client outside the node that is not a pod".to_owned()
        } else {
            "no --from: the source decides only the masquerading".to_owned()
        });
    }
    let path = Path::of(entry.port, matched_by, source_kind);
    let categorized = categorize_endpoints(entry.endpoints, entry.port, state.topology_node());
    let eligible = match path.set {
        EndpointSet::Cluster => &categorized.cluster,
        EndpointSet::Local => &categorized.local,
    };
    out.endpoints = endpoints::verdicts(state, &entry, &categorized, path.set, &mut out.notes);
    let firewall = source_ranges(entry.port, matched_by);
    let blocked = match (query.source, firewall.is_empty()) {
        (_, true) => false,
        (Some(ip), false) => !firewall.iter().any(|range| range.contains(&ip)),
        (None, false) => {
            out.notes.push(format!("only sources in {} reach this load-balancer IP", join(&firewall)));
            false
        }
    };
    (out.verdict, out.verdict_reason) = verdict(&path, eligible.len(), categorized.has_any, blocked);
    out.masquerade = if out.verdict == Verdict::Forward {
        masquerade::decide(profile, profile.pods.is_on(state), &path, source_kind, query.source, eligible)
    } else {
        Masquerade { decision: Decision::No, reasons: vec!["the packet is not forwarded".to_owned()] }
    };
    if let Some(timeout) = entry.port.sticky_max_age_seconds() {
        out.notes.push(format!(
            "ClientIP session affinity: a client keeps its endpoint for {timeout}s after its last packet"
        ));
    }
    let target = PortTarget { family, entry, matched_by, destination: &query.destination, endpoint_set: path.set };
    out.rules = rules(&target);
    out.service = Some(matched_port(&entry, family, matched_by, &path, firewall));
    out
}

/// The service port `destination` reaches, and how: its addresses first (as the service
/// dispatch tries them before node ports), then node ports on this node's addresses.
fn find_port<'a>(
    state: &'a ProxyState,
    family: IpFamily,
    destination: &Destination,
) -> Option<(PortEntry<'a>, MatchKind)> {
    let view = state.family(family);
    let same = |port: &ServicePort| port.protocol == destination.protocol;
    let by_address = entries(view).filter(|e| same(e.port) && e.port.port == destination.port).find_map(|e| {
        let kind = if e.port.cluster_ip == destination.ip {
            MatchKind::ClusterIp
        } else if e.port.external_ips.contains(&destination.ip) {
            MatchKind::ExternalIp
        } else if e.port.load_balancer_vips.contains(&destination.ip) {
            MatchKind::LoadBalancerIp
        } else {
            return None;
        };
        Some((e, kind))
    });
    by_address.or_else(|| {
        if !is_node_address(state, destination.ip) {
            return None;
        }
        entries(view)
            .find(|e| same(e.port) && e.port.node_port == Some(destination.port))
            .map(|e| (e, MatchKind::NodePort))
    })
}

fn is_node_address(state: &ProxyState, ip: IpAddr) -> bool {
    ip.is_loopback() || state.node.addresses.contains(&ip)
}

fn classify_source(state: &ProxyState, profile: &ModeProfile, source: Option<IpAddr>) -> SourceKind {
    match source {
        None => SourceKind::Unknown,
        Some(ip) if is_node_address(state, ip) => SourceKind::Node,
        Some(ip) => match profile.pods.is_pod(state, ip) {
            Some(true) => SourceKind::Pod,
            Some(false) => SourceKind::Other,
            None => SourceKind::Unknown,
        },
    }
}

/// The way a packet takes through a port's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Path {
    matched_by: MatchKind,
    /// The policy in force is Local.
    policy_local: bool,
    /// External traffic from a pod or the node, sent the cluster-wide way.
    short_circuit: bool,
    set: EndpointSet,
}

impl Path {
    fn of(port: &ServicePort, matched_by: MatchKind, source: SourceKind) -> Self {
        let policy_local =
            if matched_by.is_external() { port.external_policy_local } else { port.internal_policy_local };
        let short_circuit =
            matched_by.is_external() && policy_local && matches!(source, SourceKind::Pod | SourceKind::Node);
        let set = if policy_local && !short_circuit { EndpointSet::Local } else { EndpointSet::Cluster };
        Self { matched_by, policy_local, short_circuit, set }
    }

    fn policy_name(&self) -> &'static str {
        if self.policy_local { "Local" } else { "Cluster" }
    }

    fn policy_field(&self) -> &'static str {
        if self.matched_by.is_external() { "externalTrafficPolicy" } else { "internalTrafficPolicy" }
    }
}

fn source_ranges(port: &ServicePort, matched_by: MatchKind) -> Vec<IpNet> {
    if matched_by == MatchKind::LoadBalancerIp { port.load_balancer_source_ranges.clone() } else { Vec::new() }
}

fn verdict(path: &Path, eligible: usize, has_any: bool, blocked: bool) -> (Verdict, String) {
    if !has_any {
        return (Verdict::Reject, "the service has no ready or serving endpoint anywhere: refused".to_owned());
    }
    if blocked {
        return (Verdict::Drop, "the source is outside loadBalancerSourceRanges: dropped".to_owned());
    }
    if eligible == 0 {
        let reason = format!(
            "{} {} and no endpoint on this node: dropped (endpoints exist elsewhere)",
            path.policy_field(),
            path.policy_name()
        );
        return (Verdict::Drop, reason);
    }
    let via = if path.short_circuit {
        " (short-circuited: pods and the node reach external addresses of Local-policy services cluster-wide)"
    } else {
        ""
    };
    (Verdict::Forward, format!("DNAT to one of {eligible} eligible endpoint(s){via}"))
}

fn matched_port(
    entry: &PortEntry<'_>,
    family: IpFamily,
    matched_by: MatchKind,
    path: &Path,
    source_ranges: Vec<IpNet>,
) -> MatchedPort {
    let (name, port): (&ServicePortName, &ServicePort) = (entry.name, entry.port);
    MatchedPort {
        service_port: name.to_string(),
        namespace: name.service.namespace.clone(),
        name: name.service.name.clone(),
        port_name: name.port.clone(),
        family,
        matched_by,
        cluster_ip: port.cluster_ip,
        port: port.port,
        node_port: port.node_port,
        external_traffic: matched_by.is_external(),
        traffic_policy: path.policy_name().to_owned(),
        short_circuit: path.short_circuit,
        endpoint_set: path.set,
        session_affinity_seconds: port.sticky_max_age_seconds(),
        source_ranges: source_ranges.iter().map(ToString::to_string).collect(),
        traffic_distribution: port.traffic_distribution.clone(),
    }
}

fn join(items: &[impl ToString]) -> String {
    items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Whether `endpoint` is one of `set` (the same object, as sets borrow from one slice).
fn contains(set: &[&Endpoint], endpoint: &Endpoint) -> bool {
    set.iter().any(|e| std::ptr::eq(*e, endpoint))
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
