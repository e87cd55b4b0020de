//! Pure rendering: a [`ProxyState`] becomes, per IP family, a [`FamilyRender`]: the rules
//! of the chains every sync rewrites ([`Statics`]) plus, per service port, its rules in
//! those shared chains and its own nat chains ([`PortRender`]). [`restore_text`] turns
//! (parts of) a render into `iptables-restore --noflush` input. Nothing here touches the
//! kernel.

mod chains;
pub mod names;
mod port;
mod rule;
mod statics;
mod text;

use kproxy_core::render::{self as core_render, entries};
use kproxy_core::{IpFamily, ProxyState, TopologyNode};

use crate::config::IptablesConfig;

pub use kproxy_core::stale_flows::Destinations;
pub use port::render_port;
pub use rule::probability;
pub use statics::{Jump, Statics, render_statics};
pub use text::{RestoreInput, restore_text};

/// A chain shared by every service port: rewritten completely on every sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shared {
    /// nat `KUBE-SERVICES`: service VIPs.
    NatServices,
    /// nat `KUBE-NODEPORTS`: node ports.
    NatNodePorts,
    /// filter `KUBE-SERVICES`: ClusterIPs without usable endpoints.
    FilterServices,
    /// filter `KUBE-EXTERNAL-SERVICES`: external destinations without usable endpoints.
    FilterExternalServices,
    /// filter `KUBE-NODEPORTS`: health-check node ports.
    FilterNodePorts,
    /// filter `KUBE-PROXY-FIREWALL`: load-balancer traffic no source range admitted.
    FilterFirewall,
}

impl Shared {
    /// The table: `nat` or `filter`.
    pub fn table(self) -> &'static str {
        match self {
            Self::NatServices | Self::NatNodePorts => "nat",
            _ => "filter",
        }
    }

    /// The chain's name.
    pub fn chain(self) -> &'static str {
        match self {
            Self::NatServices | Self::FilterServices => names::KUBE_SERVICES,
            Self::NatNodePorts | Self::FilterNodePorts => names::KUBE_NODEPORTS,
            Self::FilterExternalServices => names::KUBE_EXTERNAL_SERVICES,
            Self::FilterFirewall => names::KUBE_PROXY_FIREWALL,
        }
    }
}

/// One rule a service port adds to a shared chain: the chain and the whole
/// `-A CHAIN …` line.
pub type SharedRule = (Shared, String);

/// A nat chain of one service port and its rules (whole `-A CHAIN …` lines).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    /// `KUBE-SVC-…`, `KUBE-SEP-…`, …
    pub name: String,
    /// Its rules, in order.
    pub rules: Vec<String>,
}

/// What one service port adds to a family's tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRender {
    /// Its rules in the shared chains, in order.
    pub shared: Vec<SharedRule>,
    /// Its own nat chains (`KUBE-SVC`, `KUBE-SVL`, `KUBE-EXT`, `KUBE-FW`, `KUBE-SEP`).
    pub chains: Vec<Chain>,
    /// Where clients reach it (what its stale UDP flows are keyed on once it is gone).
    pub destinations: Destinations,
}

/// Everything one family's tables hold: the rules that do not depend on services, and
/// what each service port adds.
pub type FamilyRender = core_render::FamilyRender<Statics, PortRender>;

/// What rendering a port needs besides the port itself.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The family being rendered.
    pub family: IpFamily,
    /// The dataplane's configuration.
    pub config: &'a IptablesConfig,
    /// This node, for topology.
    pub node: TopologyNode<'a>,
    /// This node's address of the family (source ranges that contain it also admit
    /// traffic from the load-balancer IP itself).
    pub node_ip: Option<std::net::IpAddr>,
    /// More than 1,000 endpoints: rule comments on endpoint rules are left out, as
    /// upstream's "large cluster mode" does.
    pub large_cluster: bool,
}

/// Upstream's `largeClusterEndpointsThreshold`.
pub const LARGE_CLUSTER_ENDPOINTS: usize = 1000;

impl<'a> RenderContext<'a> {
    /// The context of `family` for `state`.
    pub fn new(config: &'a IptablesConfig, state: &'a ProxyState, family: IpFamily) -> Self {
        let endpoints: usize = entries(state.family(family)).map(|entry| entry.endpoints.len()).sum();
        Self {
            family,
            config,
            node: state.topology_node(),
            node_ip: state.node.addresses.iter().find(|ip| IpFamily::of(ip) == family).copied(),
            large_cluster: endpoints > LARGE_CLUSTER_ENDPOINTS,
        }
    }
}

/// Renders one family's tables for `state`.
pub fn render_family(config: &IptablesConfig, state: &ProxyState, family: IpFamily) -> FamilyRender {
    let ctx = RenderContext::new(config, state, family);
    FamilyRender::new(state.family(family), render_statics(config, family), |entry| render_port(&ctx, entry))
}

/// The restore text a full sync into empty tables writes for `render`: canaries, every
/// chain and every jump from the built-in chains.
pub fn render_text(render: &FamilyRender) -> String {
    let input = RestoreInput {
        statics: &render.statics,
        shared: render.ports.values().map(|p| p.shared.as_slice()).collect(),
        chains: render.ports.values().flat_map(|p| &p.chains).collect(),
        stale: Vec::new(),
        jumps: render.statics.jumps.iter().collect(),
        canary: true,
    };
    restore_text(&input)
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
