//! Pure rendering: a [`ProxyState`] becomes, per IP family, a [`TableRender`]: the static
//! declarations of the table plus, per service port, the chains, map elements and sets
//! it needs. Nothing here touches the kernel.

mod chains;
pub mod names;
mod port;
mod static_table;
pub(crate) mod text;

use kproxy_core::render::FamilyRender;
use kproxy_core::stale_flows::Destinations;
use kproxy_core::{IpFamily, ProxyState, TopologyNode};

use crate::Family;
use crate::config::NftablesConfig;

pub use port::render_port;
pub use static_table::{StaticTable, render_static};
pub use text::render_text;

/// A chain and its rules. Chains with the same name always have the same rules: generic
/// chains are named after what they do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Chain {
    /// The chain's name.
    pub name: String,
    /// Its rules, in order.
    pub rules: Vec<String>,
}

/// One element of a set or map: `key` (and `: value` for maps).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The set or map.
    pub set: &'static str,
    /// The key, in nft syntax (`172.30.0.1 . tcp . 80`).
    pub key: String,
    /// The value of a map element (`goto cluster-2`, `10.0.0.1 . 8080`).
    pub value: Option<String>,
}

/// A set owned by one service port (ClientIP affinity), declared and removed with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnedSet {
    /// The set's name.
    pub name: String,
    /// Its declaration body (`type ipv4_addr; flags dynamic,timeout; timeout 10800s;`).
    pub spec: String,
}

/// What one service port adds to a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRender {
    /// Chains it uses (generic ones are shared with other ports).
    pub chains: Vec<Chain>,
    /// Map and set elements.
    pub elements: Vec<Element>,
    /// Sets of its own.
    pub sets: Vec<OwnedSet>,
    /// Where clients reach it (what its stale UDP flows are keyed on once it is gone).
    pub destinations: Destinations,
}

/// Everything one family's table holds: the sets, maps and chains that do not depend on
/// services, and what each service port adds.
pub type TableRender = FamilyRender<StaticTable, PortRender>;

/// What rendering needs besides the port itself.
#[derive(Debug, Clone, Copy)]
pub struct RenderContext<'a> {
    /// The family being rendered.
    pub family: Family,
    /// The dataplane's configuration.
    pub config: &'a NftablesConfig,
    /// This node, for topology.
    pub node: TopologyNode<'a>,
}

impl RenderContext<'_> {
    /// Whether a cluster CIDR of this family is configured.
    pub fn has_cluster_cidrs(&self) -> bool {
        self.config.cluster_cidrs.iter().any(|c| IpFamily::of(&c.addr()) == self.family.0)
    }

    /// The match of traffic from this node's pods (`local`) or of the rest, as
    /// `--detect-local-mode` says; `None` when nothing is recognised as local.
    pub fn local_match(&self, local: bool) -> Option<String> {
        let set = self.has_cluster_cidrs().then_some(names::CLUSTER_CIDRS);
        self.config.local_detect.nft_match(self.family.keyword(), set, local)
    }
}

/// Renders one family's table for `state`.
pub fn render_family(config: &NftablesConfig, state: &ProxyState, family: IpFamily) -> TableRender {
    let ctx = RenderContext { family: Family(family), config, node: state.topology_node() };
    FamilyRender::new(state.family(family), render_static(&ctx, state), |entry| render_port(&ctx, entry))
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
