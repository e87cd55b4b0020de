//! Pure planning: the map entries one service port needs. Nothing here does I/O.
//!
//! A service port balances over up to two endpoint sets ([`Role`]): the cluster set
//! (topology applied) and the local set. Its ClusterIP uses the set its internal traffic
//! policy names; its external IPs, load-balancer IPs and node ports (on the node's own
//! addresses) use the cluster set, because every client these programs see is on the node
//! (upstream short-circuits node and pod traffic to external addresses the same way).
//!
//! Traffic from outside the node (the tc programs) has entries of its own
//! ([`PortPlan::external`]): external IPs, load-balancer IPs and node ports use the set the
//! external traffic policy names, masqueraded to a node address for Cluster and kept for
//! Local; the ClusterIP uses its internal set, masqueraded (the source is outside the
//! node). Load-balancer IPs check the source ranges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kproxy_core::{
    Endpoint, IpFamily, NodePortAddresses, ProxyState, ServicePort, ServicePortName, TopologyNode, categorize_endpoints,
};

use crate::layout::{KpAddr, KpServiceKey, SVC_AFFINITY, SVC_REJECT, SVC_SNAT};

/// Which endpoint set a service address balances over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The cluster-wide set, topology applied.
    Cluster,
    /// This node's endpoints.
    Local,
}

/// What one service address does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The set it balances over.
    pub role: Role,
    /// `SVC_REJECT`, `SVC_AFFINITY`.
    pub flags: u32,
    /// The affinity timeout in seconds (0 without affinity).
    pub affinity_secs: u32,
}

/// What one service address does for traffic from outside the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternalEntry {
    /// The set, flags (with `SVC_SNAT` to masquerade) and affinity.
    pub entry: Entry,
    /// The node address it masquerades to (with `SVC_SNAT`).
    pub snat: Option<IpAddr>,
    /// The source must be in the port's [`PortPlan::source_ranges`].
    pub source_ranges: bool,
}

/// The map entries of one service port of one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// The endpoints of each set its entries use, in slot order.
    pub sets: BTreeMap<Role, Vec<KpAddr>>,
    /// Its service addresses for clients on the node (socket programs).
    pub entries: BTreeMap<KpServiceKey, Entry>,
    /// Its service addresses for traffic from outside the node (tc programs).
    pub external: BTreeMap<KpServiceKey, ExternalEntry>,
    /// `loadBalancerSourceRanges` of this family (used by entries that say so).
    pub source_ranges: Vec<ipnet::IpNet>,
}

/// What planning needs besides the state.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// This node, for topology.
    pub node: TopologyNode<'a>,
    /// This node's addresses (node ports are balanced on those of the port's family).
    pub node_addresses: &'a [IpAddr],
    /// This node's primary IPs (`--nodeport-addresses primary`).
    pub primary_addresses: &'a [IpAddr],
    /// Which of the node's addresses accept node ports (`--nodeport-addresses`).
    pub nodeport_addresses: &'a NodePortAddresses,
}

impl<'a> PlanContext<'a> {
    /// The context of `state` with `nodeport_addresses`.
    pub fn of(state: &'a ProxyState, nodeport_addresses: &'a NodePortAddresses) -> Self {
        Self {
            node: state.topology_node(),
            node_addresses: &state.node.addresses,
            primary_addresses: &state.node.primary_addresses,
            nodeport_addresses,
        }
    }

    fn node_port_addresses(&self, family: IpFamily) -> impl Iterator<Item = IpAddr> + '_ {
        self.node_addresses.iter().copied().filter(move |ip| IpFamily::of(ip) == family && self.accepts_node_ports(ip))
    }

    /// Whether node address `ip` accepts node ports.
    fn accepts_node_ports(&self, ip: &IpAddr) -> bool {
        match self.nodeport_addresses {
            NodePortAddresses::Primary => self.primary_addresses.contains(ip),
            addresses => addresses.accepts(ip),
        }
    }

    /// The node address traffic of `family` from outside is masqueraded to (its first).
    fn masquerade_address(&self, family: IpFamily) -> Option<IpAddr> {
        self.node_addresses.iter().copied().find(|ip| IpFamily::of(ip) == family)
    }
}

/// The entries of `port` (family `family`) with `endpoints`.
pub fn plan_port(ctx: &PlanContext<'_>, family: IpFamily, port: &ServicePort, endpoints: &[Endpoint]) -> PortPlan {
    let categorized = categorize_endpoints(endpoints, port, ctx.node);
    let set_of = |role: Role| -> Vec<KpAddr> {
        let chosen = match role {
            Role::Cluster => &categorized.cluster,
            Role::Local => &categorized.local,
        };
        chosen.iter().filter(|e| IpFamily::of(&e.ip) == family).map(|e| KpAddr::new(e.socket_addr())).collect()
    };
    let mut flags = if categorized.has_any { 0 } else { SVC_REJECT };
    let affinity_secs = port.sticky_max_age_seconds().unwrap_or(0);
    if affinity_secs > 0 {
        flags |= SVC_AFFINITY;
    }
    let internal = if port.internal_policy_local { Role::Local } else { Role::Cluster };
    let mut addresses = vec![(port.cluster_ip, port.port, internal)];
    let external = port.external_ips.iter().chain(&port.load_balancer_vips);
    addresses.extend(external.map(|ip| (*ip, port.port, Role::Cluster)));
    if let Some(node_port) = port.node_port {
        addresses.extend(ctx.node_port_addresses(family).map(|ip| (ip, node_port, Role::Cluster)));
    }
    let mut plan = PortPlan::default();
    for (ip, number, role) in addresses {
        if IpFamily::of(&ip) != family || ip.is_unspecified() {
            continue;
        }
        let set = plan.sets.entry(role).or_insert_with(|| set_of(role));
        // Endpoints exist but none this client may use: leave the call alone (dropped on
        // the way, as the service address routes nowhere), unless it must be refused.
        if set.is_empty() && flags & SVC_REJECT == 0 {
            continue;
        }
        plan.entries.insert(KpServiceKey::new(ip, number, port.protocol), Entry { role, flags, affinity_secs });
    }
    plan_external(ctx, family, port, flags, affinity_secs, &mut plan);
    for role in plan.entries.values().map(|e| e.role).chain(plan.external.values().map(|e| e.entry.role)) {
        plan.sets.entry(role).or_insert_with(|| set_of(role));
    }
    plan.sets.retain(|role, _| {
        plan.entries.values().any(|e| e.role == *role) || plan.external.values().any(|e| e.entry.role == *role)
    });
    plan
}

/// The entries for traffic from outside the node (see the module docs). Every address
/// gets one, also with an empty set: the tc program drops such traffic (or, with
/// `SVC_REJECT`, leaves it to the node's stack, which refuses it).
fn plan_external(
    ctx: &PlanContext<'_>,
    family: IpFamily,
    port: &ServicePort,
    flags: u32,
    affinity_secs: u32,
    plan: &mut PortPlan,
) {
    let internal = if port.internal_policy_local { Role::Local } else { Role::Cluster };
    let external = if port.external_policy_local { Role::Local } else { Role::Cluster };
    let masquerade = ctx.masquerade_address(family);
    let ranges: Vec<ipnet::IpNet> =
        port.load_balancer_source_ranges.iter().copied().filter(|r| IpFamily::of(&r.addr()) == family).collect();
    let any_ranges = !port.load_balancer_source_ranges.is_empty();
    let masquerade_external = external == Role::Cluster;
    // (address, port, role, masquerades, masquerade to, checks source ranges)
    let mut addresses = vec![(port.cluster_ip, port.port, internal, true, masquerade, false)];
    let outside = |ip: &IpAddr, ranges| (*ip, port.port, external, masquerade_external, masquerade, ranges);
    addresses.extend(port.external_ips.iter().map(|ip| outside(ip, false)));
    addresses.extend(port.load_balancer_vips.iter().map(|ip| outside(ip, any_ranges)));
    if let Some(node_port) = port.node_port {
        // Masqueraded to the node address it came to.
        let on_node = |ip: IpAddr| (ip, node_port, external, masquerade_external, Some(ip), false);
        addresses.extend(ctx.node_port_addresses(family).map(on_node));
    }
    for (ip, number, role, masquerades, snat, source_ranges) in addresses {
        if IpFamily::of(&ip) != family || ip.is_unspecified() || (masquerades && snat.is_none()) {
            continue; // another family, or no node address of this family to masquerade to
        }
        let entry_flags = if masquerades { flags | SVC_SNAT } else { flags };
        let entry = Entry { role, flags: entry_flags, affinity_secs };
        let key = KpServiceKey::new(ip, number, port.protocol);
        plan.external.insert(key, ExternalEntry { entry, snat: snat.filter(|_| masquerades), source_ranges });
    }
    if plan.external.values().any(|e| e.source_ranges) {
        plan.source_ranges = ranges;
    }
}

/// Every service port of `state`, planned.
pub fn plan_state(
    state: &ProxyState,
    nodeport_addresses: &NodePortAddresses,
) -> BTreeMap<(IpFamily, ServicePortName), PortPlan> {
    let ctx = PlanContext::of(state, nodeport_addresses);
    let mut out = BTreeMap::new();
    for view in state.families() {
        for (name, port) in view.services.iter() {
            let plan = plan_port(&ctx, view.family, port, view.endpoints.get(name));
            out.insert((view.family, name.clone()), plan);
        }
    }
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
