//! `ProxyState`: the model a dataplane programs, and `Changes`: what changed since the
//! last successful sync.

use std::collections::BTreeSet;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::endpoint::Endpoint;
use crate::endpoints_map::EndpointsMap;
use crate::local_node::LocalNode;
use crate::names::{IpFamily, ServicePortName};
use crate::service_port_map::ServicePortMap;
use crate::topology::TopologyNode;

/// The model of one IP family: its service ports and their endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyState {
    /// The family.
    pub family: IpFamily,
    /// Every proxied service port of this family.
    pub services: ServicePortMap,
    /// The endpoints of those ports (of this family).
    pub endpoints: EndpointsMap,
}

impl FamilyState {
    /// An empty state of `family`.
    pub fn new(family: IpFamily) -> Self {
        Self { family, services: ServicePortMap::default(), endpoints: EndpointsMap::default() }
    }
}

/// Everything a dataplane needs to program this node: one [`FamilyState`] per IP family,
/// this node's own information and the cluster's service CIDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyState {
    /// This node.
    pub node: LocalNode,
    /// The ranges cluster IPs are allocated from: every CIDR of every ServiceCIDR object,
    /// both families, sorted and without duplicates (empty until any is known). A change
    /// of them comes with a full sync.
    pub service_cidrs: Vec<IpNet>,
    families: [FamilyState; 2],
}

impl ProxyState {
    /// An empty state for node `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        Self {
            node: LocalNode::named(node_name),
            service_cidrs: Vec::new(),
            families: IpFamily::ALL.map(FamilyState::new),
        }
    }

    /// The service CIDRs of one family (upstream's nftables proxier keeps those of its own).
    pub fn service_cidrs_of(&self, family: IpFamily) -> impl Iterator<Item = IpNet> + '_ {
        self.service_cidrs.iter().copied().filter(move |cidr| IpFamily::of(&cidr.addr()) == family)
    }

    /// The view of one family.
    pub fn family(&self, family: IpFamily) -> &FamilyState {
        &self.families[family.index()]
    }

    /// The view of one family, to change it.
    pub fn family_mut(&mut self, family: IpFamily) -> &mut FamilyState {
        &mut self.families[family.index()]
    }

    /// Both families, IPv4 first.
    pub fn families(&self) -> impl Iterator<Item = &FamilyState> {
        self.families.iter()
    }

    /// This node as topology sees it.
    pub fn topology_node(&self) -> TopologyNode<'_> {
        self.node.topology()
    }
}

/// What changed in one family since the last successful sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyChanges {
    /// Service ports whose Service or endpoints changed (added, removed or modified).
    pub service_ports: BTreeSet<ServicePortName>,
    /// UDP endpoints that are gone or stopped serving: their conntrack entries are stale.
    pub stale_udp_endpoints: Vec<(ServicePortName, Endpoint)>,
    /// `last-change-trigger-time`s of this family's endpoint changes included, for
    /// `kubeproxy_network_programming_duration_seconds` after a successful sync.
    pub trigger_times: Vec<SystemTime>,
}

/// What a sync has to do: a full resync, or the service ports that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    full: bool,
    families: [FamilyChanges; 2],
}

impl Changes {
    /// A request to rebuild everything.
    pub fn full_sync() -> Self {
        Self { full: true, ..Self::default() }
    }

    /// Whether the dataplane must rebuild everything rather than only the changed ports.
    pub fn full(&self) -> bool {
        self.full
    }

    /// Marks these changes as a full resync.
    pub fn set_full(&mut self) {
        self.full = true;
    }

    /// The changes of one family.
    pub fn family(&self, family: IpFamily) -> &FamilyChanges {
        &self.families[family.index()]
    }

    /// The changes of one family, to fill them in.
    pub fn family_mut(&mut self, family: IpFamily) -> &mut FamilyChanges {
        &mut self.families[family.index()]
    }

    /// Nothing to do: not a full sync, no changed port and no stale flow.
    pub fn is_empty(&self) -> bool {
        !self.full && self.families.iter().all(|f| f.service_ports.is_empty() && f.stale_udp_endpoints.is_empty())
    }

    /// Folds `later` into these changes, for a sync that failed and is retried with what
    /// arrived since.
    pub fn merge(&mut self, later: Changes) {
        self.full |= later.full;
        for (mine, theirs) in self.families.iter_mut().zip(later.families) {
            mine.service_ports.extend(theirs.service_ports);
            mine.stale_udp_endpoints.extend(theirs.stale_udp_endpoints);
            mine.trigger_times.extend(theirs.trigger_times);
        }
    }
}
