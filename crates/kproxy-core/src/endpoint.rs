//! `Endpoint`: one address and port that serves a service port.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The names of a topology hint (`hints.forZones` or `hints.forNodes`), as a set. Most
/// endpoints have none: then it takes no allocation, and endpoints that share hints share
/// one copy of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HintNames(Option<Arc<BTreeSet<String>>>);

impl HintNames {
    /// No name at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|names| names.contains(name))
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|names| names.iter().map(String::as_str))
    }
}

impl From<BTreeSet<String>> for HintNames {
    fn from(names: BTreeSet<String>) -> Self {
        Self((!names.is_empty()).then(|| Arc::new(names)))
    }
}

impl FromIterator<String> for HintNames {
    fn from_iter<I: IntoIterator<Item = String>>(names: I) -> Self {
        names.into_iter().collect::<BTreeSet<String>>().into()
    }
}

impl PartialEq<BTreeSet<String>> for HintNames {
    fn eq(&self, other: &BTreeSet<String>) -> bool {
        self.iter().eq(other.iter().map(String::as_str))
    }
}

/// One endpoint of one service port: upstream's `BaseEndpointInfo`.
///
/// Conditions follow upstream's defaults for absent values: ready and serving default to
/// true, terminating to false.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The endpoint's IP (the first address of the EndpointSlice endpoint).
    pub ip: IpAddr,
    /// The target port.
    pub port: u16,
    /// Runs on this node (`nodeName` equals this node's name).
    pub is_local: bool,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// The node the endpoint runs on, when known (shared with the slice it came from).
    pub node_name: Option<Arc<str>>,
    /// The zone the endpoint runs in, when known (shared with the slice it came from).
    pub zone: Option<Arc<str>>,
    /// `hints.forZones`: zones that should use this endpoint.
    pub zone_hints: HintNames,
    /// `hints.forNodes`: nodes that should use this endpoint.
    pub node_hints: HintNames,
}

impl Endpoint {
    /// A ready, serving, non-terminating endpoint without hints.
    pub fn new(ip: IpAddr, port: u16) -> Self {
        Self {
            ip,
            port,
            is_local: false,
            ready: true,
            serving: true,
            terminating: false,
            node_name: None,
            zone: None,
            zone_hints: HintNames::default(),
            node_hints: HintNames::default(),
        }
    }

    /// The endpoint as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// Serving and terminating: usable as a fallback when no endpoint is ready.
    pub fn is_serving_terminating(&self) -> bool {
        self.serving && self.terminating
    }
}

impl fmt::Display for Endpoint {
    /// `ip:port`, with brackets around IPv6 addresses: upstream's endpoint string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.socket_addr())
    }
}
