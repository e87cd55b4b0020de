//! Pure planning: the map entries one service port needs. Nothing here does I/O.
//!
//! A service port balances over up to two endpoint sets ([`Role`]): the cluster set
//! (topology applied) and the local set. Its ClusterIP uses the set its internal traffic
//! policy names; its external IPs, load-balancer IPs and node ports (on the node's own
//! addresses) use the cluster set, because every client these programs see is on the node
//! (upstream short-circuits node and pod traffic to external addresses the same way).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use kproxy_core::{Endpoint, IpFamily, ProxyState, ServicePort, ServicePortName, TopologyNode, categorize_endpoints};

use crate::layout::{KpAddr, KpServiceKey, SVC_AFFINITY, SVC_REJECT};

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

/// The map entries of one service port of one family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// The endpoints of each set its entries use, in slot order.
    pub sets: BTreeMap<Role, Vec<KpAddr>>,
    /// Its service addresses.
    pub entries: BTreeMap<KpServiceKey, Entry>,
}

/// What planning needs besides the state.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// This node, for topology.
    pub node: TopologyNode<'a>,
    /// This node's addresses (node ports are balanced on those of the port's family).
    pub node_addresses: &'a [IpAddr],
    /// Narrows the node-port addresses; empty: every node address.
    pub nodeport_cidrs: &'a [IpNet],
}

impl<'a> PlanContext<'a> {
    /// The context of `state` with `nodeport_cidrs`.
    pub fn of(state: &'a ProxyState, nodeport_cidrs: &'a [IpNet]) -> Self {
        Self { node: state.topology_node(), node_addresses: &state.node.addresses, nodeport_cidrs }
    }

    fn node_port_addresses(&self, family: IpFamily) -> impl Iterator<Item = IpAddr> + '_ {
        self.node_addresses.iter().copied().filter(move |ip| {
            IpFamily::of(ip) == family
                && (self.nodeport_cidrs.is_empty() || self.nodeport_cidrs.iter().any(|c| c.contains(ip)))
        })
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
    plan.sets.retain(|role, _| plan.entries.values().any(|e| e.role == *role));
    plan
}

/// Every service port of `state`, planned.
pub fn plan_state(state: &ProxyState, nodeport_cidrs: &[IpNet]) -> BTreeMap<(IpFamily, ServicePortName), PortPlan> {
    let ctx = PlanContext::of(state, nodeport_cidrs);
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
