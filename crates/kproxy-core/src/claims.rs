//! Claims: what a service port takes for itself on a node (an address, protocol and port, or
//! a node port), and the one deterministic winner when several service ports claim the same.
//!
//! Two Services listing the same `externalIPs` entry is an everyday misconfiguration that a
//! real apiserver accepts; programming both would make the kernel reject the whole ruleset
//! (duplicate map keys). Instead the oldest Service wins (`creationTimestamp`, then
//! namespace/name, then port name), the others lose that one claim and keep the rest, and
//! the loss is reported as a [`Conflict`]. When the winner goes, the next claimant takes over.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::SystemTime;

use crate::names::{Protocol, ServicePortName};
use crate::service_port::ServicePort;

/// Something only one service port can have on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    /// Traffic to `ip:port/protocol`: a cluster IP, an external IP or a load-balancer VIP.
    Address {
        /// The address.
        ip: IpAddr,
        /// The protocol.
        protocol: Protocol,
        /// The port.
        port: u16,
    },
    /// A node port of a protocol.
    NodePort {
        /// The protocol.
        protocol: Protocol,
        /// The node port.
        port: u16,
    },
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address { ip: IpAddr::V6(ip), protocol, port } => write!(f, "[{ip}]:{port}/{protocol}"),
            Self::Address { ip, protocol, port } => write!(f, "{ip}:{port}/{protocol}"),
            Self::NodePort { protocol, port } => write!(f, "node port {port}/{protocol}"),
        }
    }
}

/// Which field of a service port makes a claim; a port claiming one address through two
/// fields keeps the first in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClaimKind {
    /// The cluster IP.
    ClusterIp,
    /// An entry of `spec.externalIPs`.
    ExternalIp,
    /// A load-balancer ingress IP.
    LoadBalancerIp,
    /// The node port.
    NodePort,
}

/// A claim a service port lost to an older one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Conflict {
    /// What both claim.
    pub claim: Claim,
    /// The service port that has it.
    pub winner: ServicePortName,
    /// The service port that does not get it.
    pub loser: ServicePortName,
    /// Through which field the loser claimed it.
    pub kind: ClaimKind,
}

/// One claimant of a claim, ordered by precedence: older Services first (a missing creation
/// time counts as newest), then by name, then by field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Claimant {
    newest: bool,
    created: Option<SystemTime>,
    name: ServicePortName,
    kind: ClaimKind,
}

impl Claimant {
    fn new(name: &ServicePortName, port: &ServicePort, kind: ClaimKind) -> Self {
        Self { newest: port.created.is_none(), created: port.created, name: name.clone(), kind }
    }
}

/// Every claim of a port, with the field that makes it.
pub(crate) fn claims_of(port: &ServicePort) -> impl Iterator<Item = (Claim, ClaimKind)> + '_ {
    let address = move |ip: IpAddr| Claim::Address { ip, protocol: port.protocol, port: port.port };
    let cluster = std::iter::once((address(port.cluster_ip), ClaimKind::ClusterIp));
    let external = port.external_ips.iter().map(move |ip| (address(*ip), ClaimKind::ExternalIp));
    let balancer = port.load_balancer_vips.iter().map(move |ip| (address(*ip), ClaimKind::LoadBalancerIp));
    let node_port = port.node_port.map(|p| (Claim::NodePort { protocol: port.protocol, port: p }, ClaimKind::NodePort));
    cluster.chain(external).chain(balancer).chain(node_port)
}

/// The claimants of one claim, in precedence order (the winner first): a sorted list sized
/// exactly, as nearly every claim has one claimant (a set's node would reserve eleven).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Claimants(Vec<Claimant>);

impl Claimants {
    fn insert(&mut self, claimant: Claimant) {
        if let Err(at) = self.0.binary_search(&claimant) {
            self.0.reserve_exact(1);
            self.0.insert(at, claimant);
        }
    }

    fn remove(&mut self, claimant: &Claimant) {
        if let Ok(at) = self.0.binary_search(claimant) {
            self.0.remove(at);
            self.0.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn first(&self) -> Option<&Claimant> {
        self.0.first()
    }

    fn iter(&self) -> std::slice::Iter<'_, Claimant> {
        self.0.iter()
    }
}

/// Every claim of every service port of one family, and who wins each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClaimIndex {
    claimants: HashMap<Claim, Claimants>,
    /// Claims with more than one claimant.
    contested: BTreeSet<Claim>,
}

impl ClaimIndex {
    /// Records `port`'s claims.
    pub(crate) fn add(&mut self, name: &ServicePortName, port: &ServicePort) {
        for (claim, kind) in claims_of(port) {
            let set = self.claimants.entry(claim).or_default();
            set.insert(Claimant::new(name, port, kind));
            if set.len() > 1 {
                self.contested.insert(claim);
            }
        }
    }

    /// Forgets `port`'s claims.
    pub(crate) fn remove(&mut self, name: &ServicePortName, port: &ServicePort) {
        for (claim, kind) in claims_of(port) {
            let Some(set) = self.claimants.get_mut(&claim) else { continue };
            set.remove(&Claimant::new(name, port, kind));
            match set.len() {
                0 => {
                    self.claimants.remove(&claim);
                    self.contested.remove(&claim);
                }
                1 => {
                    self.contested.remove(&claim);
                }
                _ => {}
            }
        }
    }

    /// Every service port that claims `claim`.
    pub(crate) fn claimants(&self, claim: &Claim) -> impl Iterator<Item = &ServicePortName> {
        self.claimants.get(claim).into_iter().flat_map(Claimants::iter).map(|c| &c.name)
    }

    /// Whether `name` holds `claim` through `kind`.
    fn holds(&self, claim: &Claim, name: &ServicePortName, kind: ClaimKind) -> bool {
        self.claimants.get(claim).and_then(|set| set.first()).is_some_and(|c| &c.name == name && c.kind == kind)
    }

    /// What `name` gets of `raw`: the port without the claims it lost, or `None` when it
    /// lost its cluster IP (a port cannot be programmed without one).
    pub(crate) fn effective(&self, name: &ServicePortName, raw: &ServicePort) -> Option<ServicePort> {
        let address = |ip: IpAddr| Claim::Address { ip, protocol: raw.protocol, port: raw.port };
        if !self.holds(&address(raw.cluster_ip), name, ClaimKind::ClusterIp) {
            return None;
        }
        let mut port = raw.clone();
        let mut seen = BTreeSet::new();
        port.external_ips.retain(|ip| seen.insert(*ip) && self.holds(&address(*ip), name, ClaimKind::ExternalIp));
        seen.clear();
        port.load_balancer_vips
            .retain(|ip| seen.insert(*ip) && self.holds(&address(*ip), name, ClaimKind::LoadBalancerIp));
        if let Some(node_port) = port.node_port
            && !self.holds(&Claim::NodePort { protocol: raw.protocol, port: node_port }, name, ClaimKind::NodePort)
        {
            port.node_port = None;
        }
        Some(port)
    }

    /// Every claim lost to another service port, in a stable order. A port claiming one
    /// address through two of its own fields is not a conflict.
    pub(crate) fn conflicts(&self) -> Vec<Conflict> {
        let mut out = Vec::new();
        for claim in &self.contested {
            let Some(set) = self.claimants.get(claim) else { continue };
            let mut claimants = set.iter();
            let Some(winner) = claimants.next() else { continue };
            for loser in claimants.filter(|c| c.name != winner.name) {
                out.push(Conflict {
                    claim: *claim,
                    winner: winner.name.clone(),
                    loser: loser.name.clone(),
                    kind: loser.kind,
                });
            }
        }
        out
    }
}
