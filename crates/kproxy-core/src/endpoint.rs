//! `Endpoint`: one address and port that serves a service port.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

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
    /// The node the endpoint runs on, when known.
    pub node_name: Option<String>,
    /// The zone the endpoint runs in, when known.
    pub zone: Option<String>,
    /// `hints.forZones`: zones that should use this endpoint.
    pub zone_hints: BTreeSet<String>,
    /// `hints.forNodes`: nodes that should use this endpoint.
    pub node_hints: BTreeSet<String>,
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
            zone_hints: BTreeSet::new(),
            node_hints: BTreeSet::new(),
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
