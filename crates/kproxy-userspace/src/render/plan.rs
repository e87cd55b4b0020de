//! Pure planning: which listeners, and which redirect-table elements, a [`ProxyState`] needs.
//!
//! Each service port gets up to three listeners, one per endpoint set it is reached with
//! ([`Role`]). Its addresses become elements of the redirect table's sets and maps
//! ([`Set`]); map elements name the listener whose port is their value, which is only
//! known once the relay has bound it. Nothing here does I/O.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use kproxy_core::render::{PortEntry, entries};
use kproxy_core::stale_flows::Destinations;
use kproxy_core::{
    CategorizedEndpoints, Endpoint, IpFamily, Protocol, ProxyState, ServicePort, ServicePortName, TopologyNode,
    categorize_endpoints,
};

use crate::config::UserspaceConfig;
use kproxy_netfilter::{LocalDetect, cidrs_of};

mod set;
pub use set::Set;

/// Which endpoints a listener relays to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The cluster-wide set (topology applied): internal policy Cluster, external policy
    /// Cluster, and pods or the node calling an external address.
    Cluster,
    /// This node's endpoints: internal or external traffic policy Local.
    Local,
    /// Load-balancer IPs with `loadBalancerSourceRanges`, from outside the cluster: the
    /// external policy's set, and the relay admits only sources in the ranges.
    Firewall,
}

impl Role {
    /// A short name for logs and rendered text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cluster => "cluster",
            Self::Local => "local",
            Self::Firewall => "firewall",
        }
    }
}

/// Identifies a listener: one role of one service port of one family.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    /// The family (the listener binds an address of it).
    pub family: IpFamily,
    /// The service port.
    pub name: ServicePortName,
    /// Its role.
    pub role: Role,
}

/// What a listener does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Where it relays to, ordered by address; never empty.
    pub endpoints: Vec<SocketAddr>,
    /// ClientIP affinity timeout, if affinity is on.
    pub affinity: Option<Duration>,
    /// Sources it admits; empty admits every source.
    pub allowed_sources: Vec<IpNet>,
    /// Where clients reach it (what the flows of a removed UDP listener are keyed on).
    pub destinations: Destinations,
    /// Where it listens; `None`: the relay's bind address, on a port from its range (the
    /// redirect table points there). Localhost node ports listen on their node port.
    pub address: Option<SocketAddr>,
}

/// The redirect table of one family, with listener names where ports will go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyPlan {
    /// The family.
    pub family: IpFamily,
    /// Where prerouting rules send traffic (`None`: `redirect`).
    pub portal_ip: Option<IpAddr>,
    /// How pod traffic is recognised (the CIDR modes match the `cluster-cidrs` set).
    pub local_detect: LocalDetect,
    /// Elements: (set, key in nft syntax) → the listener whose port is the value (maps).
    pub elements: BTreeMap<(Set, String), Option<ListenerKey>>,
}

/// Everything a state needs: listeners, and one redirect table per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every listener, by key.
    pub listeners: BTreeMap<ListenerKey, ListenerSpec>,
    /// IPv4 first.
    pub families: [FamilyPlan; 2],
    /// Service ports left out (SCTP: a byte-stream relay cannot carry it).
    pub skipped: Vec<ServicePortName>,
    /// Each node port (family, protocol, port) with endpoints, and the listener that
    /// relays the node's own connections to it: upstream short-circuits traffic from the
    /// node to the cluster-wide endpoints (`fib saddr type local`), whatever the external
    /// traffic policy. The first Service (in name order) keeps a port two of them claim.
    pub node_ports: BTreeMap<(IpFamily, Protocol, u16), ListenerKey>,
}

/// Plans `state` for `config`.
pub fn plan(config: &UserspaceConfig, state: &ProxyState) -> Plan {
    let mut listeners = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut node_ports = BTreeMap::new();
    let families = IpFamily::ALL.map(|family| {
        let portal_ip = portal_ip(config, state, family);
        let local_detect = config.local_detect.clone();
        let mut out = FamilyPlan { family, portal_ip, local_detect, elements: BTreeMap::new() };
        let local_cidrs = match config.local_detect {
            LocalDetect::NodeCidr => &state.node.pod_cidrs,
            _ => &config.cluster_cidrs,
        };
        let cidrs: Vec<IpNet> = cidrs_of(local_cidrs, family).copied().collect();
        for cidr in IpNet::aggregate(&cidrs) {
            out.elements.insert((Set::ClusterCidrs, cidr.to_string()), None);
        }
        for PortEntry { name, port, endpoints } in entries(state.family(family)) {
            if port.protocol == Protocol::Sctp {
                skipped.push(name.clone());
                continue;
            }
            let mut ctx = PortPlan { family, name, port, node: state.topology_node(), listeners: &mut listeners };
            if let Some(short) = ctx.plan(endpoints, &mut out.elements)
                && let Some(node_port) = port.node_port
            {
                node_ports.entry((family, port.protocol, node_port)).or_insert(short);
            }
        }
        out
    });
    Plan { listeners, families, skipped, node_ports }
}

/// The portal address of `family`: configured, or the Node's first of that family.
fn portal_ip(config: &UserspaceConfig, state: &ProxyState, family: IpFamily) -> Option<IpAddr> {
    let configured = config.portal_ips.iter().find(|ip| IpFamily::of(ip) == family);
    configured.or_else(|| state.node.addresses.iter().find(|ip| IpFamily::of(ip) == family)).copied()
}

type Elements = BTreeMap<(Set, String), Option<ListenerKey>>;

/// Plans one service port.
struct PortPlan<'a> {
    family: IpFamily,
    name: &'a ServicePortName,
    port: &'a ServicePort,
    node: TopologyNode<'a>,
    listeners: &'a mut BTreeMap<ListenerKey, ListenerSpec>,
}

impl PortPlan<'_> {
    /// Plans the port's elements and listeners; returns the listener the node's own
    /// connections to its node port go to, if it has one.
    fn plan(&mut self, endpoints: &[Endpoint], elements: &mut Elements) -> Option<ListenerKey> {
        let sets = categorize_endpoints(endpoints, self.port, self.node);
        let proto = self.port.protocol.as_lower_str();
        let (service_port, cluster_ip) = (self.port.port, self.port.cluster_ip);
        let external: Vec<IpAddr> = dedup(self.port.external_vips());
        let key = |ip: &IpAddr| format!("{ip} . {proto} . {service_port}");
        let node_port_key = self.port.node_port.map(|p| format!("{proto} . {p}"));
        if !sets.has_any {
            for ip in std::iter::once(&cluster_ip).chain(&external) {
                first(elements, Set::NoEndpoints, key(ip), None);
            }
            if let Some(np) = node_port_key {
                first(elements, Set::NoEndpointNodePorts, np, None);
            }
            return None;
        }
        let internal = if self.port.internal_policy_local { Role::Local } else { Role::Cluster };
        let outside = if self.port.external_policy_local { Role::Local } else { Role::Cluster };
        first(elements, Set::ServiceIps, key(&cluster_ip), None);
        first(elements, Set::Internal, key(&cluster_ip), self.listener(internal, &sets));
        for ip in &external {
            first(elements, Set::ServiceIps, key(ip), None);
            first(elements, Set::Short, key(ip), self.listener(Role::Cluster, &sets));
            let firewalled =
                !self.port.load_balancer_source_ranges.is_empty() && self.port.load_balancer_vips.contains(ip);
            let role = if firewalled { Role::Firewall } else { outside };
            first(elements, Set::External, key(ip), self.listener(role, &sets));
            if firewalled {
                first(elements, Set::Firewall, key(ip), None);
                for range in IpNet::aggregate(&self.port.load_balancer_source_ranges) {
                    first(elements, Set::FirewallAllowed, format!("{} . {range}", key(ip)), None);
                }
            }
        }
        let np = node_port_key?;
        let short = self.listener(Role::Cluster, &sets);
        first(elements, Set::ServiceNodePorts, np.clone(), None);
        first(elements, Set::ShortNodePorts, np.clone(), short.clone());
        first(elements, Set::ExternalNodePorts, np, self.listener(outside, &sets));
        short
    }

    /// The listener of `role`, added to the plan on first use; `None` when its endpoint
    /// set is empty (traffic that would go to it is dropped).
    fn listener(&mut self, role: Role, sets: &CategorizedEndpoints<'_>) -> Option<ListenerKey> {
        let outside_local = self.port.external_policy_local;
        let chosen = match role {
            Role::Cluster => &sets.cluster,
            Role::Local => &sets.local,
            Role::Firewall if outside_local => &sets.local,
            Role::Firewall => &sets.cluster,
        };
        if chosen.is_empty() {
            return None;
        }
        let key = ListenerKey { family: self.family, name: self.name.clone(), role };
        if !self.listeners.contains_key(&key) {
            let spec = self.spec(role, chosen);
            self.listeners.insert(key.clone(), spec);
        }
        Some(key)
    }

    fn spec(&self, role: Role, endpoints: &[&Endpoint]) -> ListenerSpec {
        let mut addrs: Vec<SocketAddr> = endpoints.iter().map(|e| e.socket_addr()).collect();
        addrs.sort();
        addrs.dedup();
        let allowed_sources =
            if role == Role::Firewall { IpNet::aggregate(&self.port.load_balancer_source_ranges) } else { Vec::new() };
        ListenerSpec {
            protocol: self.port.protocol,
            endpoints: addrs,
            affinity: self.port.sticky_max_age_seconds().map(|s| Duration::from_secs(u64::from(s))),
            allowed_sources,
            destinations: Destinations::of(self.port),
            address: None,
        }
    }
}

fn dedup(ips: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = ips.collect();
    out.sort();
    out.dedup();
    out
}

/// Inserts an element unless its key is taken (two Services claiming one address and
/// port: the first, in name order, keeps it).
fn first(elements: &mut Elements, set: Set, key: String, value: Option<ListenerKey>) {
    if set.is_port_map() && value.is_none() {
        return;
    }
    elements.entry((set, key)).or_insert(value);
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
