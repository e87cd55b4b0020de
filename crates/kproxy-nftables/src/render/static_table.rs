//! The parts of a table that do not depend on services: sets, maps, base chains and the
//! fixed chains they jump to.

use ipnet::IpNet;
use kproxy_core::{IpFamily, ProxyState};

use super::names::*;
use super::{Chain, Element, RenderContext};

/// A set or map declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDecl {
    /// `set` or `map`.
    pub kind: &'static str,
    /// Its name.
    pub name: &'static str,
    /// Its declaration body.
    pub spec: String,
}

/// A chain that does not depend on services; `hook` is set for base chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticChain {
    /// The chain and its rules.
    pub chain: Chain,
    /// `type … hook … priority …; policy accept;` for base chains.
    pub hook: Option<&'static str>,
}

/// Declarations and fixed chains of one family's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticTable {
    /// Sets and maps.
    pub sets: Vec<SetDecl>,
    /// Elements of the static sets (cluster CIDRs, node-port CIDRs).
    pub elements: Vec<Element>,
    /// Named counters (the rules count into them; metrics read them).
    pub counters: Vec<&'static str>,
    /// Fixed chains.
    pub chains: Vec<StaticChain>,
}

/// Renders the static part of the table.
pub fn render_static(ctx: &RenderContext<'_>, state: &ProxyState) -> StaticTable {
    let service_cidrs = IpNet::aggregate(&state.service_cidrs_of(ctx.family.0).collect());
    StaticTable {
        sets: set_decls(ctx),
        elements: static_elements(ctx),
        counters: counters(ctx),
        chains: static_chains(ctx, &service_cidrs),
    }
}

/// The named counters of the table.
pub(crate) fn counters(ctx: &RenderContext<'_>) -> Vec<&'static str> {
    let mut counters = vec![CT_STATE_INVALID_DROPPED];
    if !ctx.config.localhost_nodeports_served {
        counters.push(LOCALHOST_NODEPORTS_REJECTED);
    }
    counters
}

/// Counts (without a verdict) the node's new connections to a served node port on
/// loopback, when nothing serves node ports there.
fn localhost_nodeports_rejected(ctx: &RenderContext<'_>) -> Option<String> {
    let (fam, loopback) = (ctx.family.keyword(), ctx.family.loopback());
    let counted = format!("meta l4proto . th dport @{SERVICE_NODEPORTS} ct state new");
    (!ctx.config.localhost_nodeports_served)
        .then(|| format!("{fam} daddr {loopback} {counted} counter name {LOCALHOST_NODEPORTS_REJECTED}"))
}

fn set_decls(ctx: &RenderContext<'_>) -> Vec<SetDecl> {
    let addr = ctx.family.addr_type();
    let fam = ctx.family.keyword();
    let vip = format!("{addr} . inet_proto . inet_service");
    let mut sets = vec![
        decl("set", CLUSTER_CIDRS, format!("type {addr}; flags interval;")),
        decl("set", NODEPORT_IPS, format!("type {addr}; flags interval;")),
        decl("set", HAIRPIN, format!("type {addr} . {addr};")),
        decl("set", CLUSTER_IPS, format!("type {addr};")),
        decl("set", FIREWALL_PROTECTED, format!("type {vip};")),
        decl("set", FIREWALL_ALLOW, format!("type {vip} . {addr}; flags interval;")),
        decl("map", SERVICE_IPS, format!("type {vip} : verdict;")),
        decl("map", SERVICE_NODEPORTS, "type inet_proto . inet_service : verdict;".to_owned()),
        decl("map", NO_ENDPOINT_SERVICES, format!("type {vip} : verdict;")),
        decl("map", NO_ENDPOINT_NODEPORTS, "type inet_proto . inet_service : verdict;".to_owned()),
    ];
    for kind in ENDPOINT_KINDS {
        for protocol in PROTOCOLS {
            let proto = protocol.as_lower_str();
            let value = format!("{fam} daddr . {proto} dport");
            let by_vip = format!("typeof {fam} daddr . {proto} dport . numgen random mod 1 : {value};");
            let by_nodeport = format!("typeof {proto} dport . numgen random mod 1 : {value};");
            sets.push(decl("map", kind.endpoints_map(protocol), by_vip));
            sets.push(decl("map", kind.nodeport_endpoints_map(protocol), by_nodeport));
        }
    }
    sets
}

fn decl(kind: &'static str, name: &'static str, spec: String) -> SetDecl {
    SetDecl { kind, name, spec }
}

fn static_elements(ctx: &RenderContext<'_>) -> Vec<Element> {
    let of_family = |net: &&ipnet::IpNet| IpFamily::of(&net.addr()) == ctx.family.0;
    let mut elements: Vec<Element> = ctx
        .config
        .cluster_cidrs
        .iter()
        .filter(of_family)
        .map(|c| Element { set: CLUSTER_CIDRS, key: c.to_string(), value: None })
        .collect();
    let nodeport = ctx.config.nodeport_addresses.cidrs(ctx.family.0).unwrap_or_default();
    elements.extend(nodeport.iter().map(|c| Element { set: NODEPORT_IPS, key: c.to_string(), value: None }));
    elements
}

/// The match of packets sent to a node port: a local, non-loopback address, or one of the
/// configured node-port addresses. `None` when this family accepts no node ports.
pub(crate) fn nodeport_match(ctx: &RenderContext<'_>) -> Option<String> {
    let fam = ctx.family.keyword();
    match ctx.config.nodeport_addresses.cidrs(ctx.family.0) {
        None => Some(format!("fib daddr type local {fam} daddr != {}", ctx.family.loopback())),
        // Only local addresses: a packet routed through this node to another host in one
        // of the CIDRs is not a node-port packet.
        Some(cidrs) => (!cidrs.is_empty()).then(|| format!("fib daddr type local {fam} daddr @{NODEPORT_IPS}")),
    }
}

fn static_chains(ctx: &RenderContext<'_>, service_cidrs: &[IpNet]) -> Vec<StaticChain> {
    let fam = ctx.family.keyword();
    let mark = format!("{:#010x}", ctx.config.masquerade_mark);
    let vip = format!("{fam} daddr . meta l4proto . th dport");
    let nodeport = nodeport_match(ctx);
    let on_nodeport = |rule: String| nodeport.as_ref().map(|m| format!("{m} {rule}"));
    let base = |name: &str, hook: &'static str, rules: Vec<String>| StaticChain {
        chain: chain(name, rules),
        hook: Some(hook),
    };
    let plain = |name: &str, rules: Vec<String>| StaticChain { chain: chain(name, rules), hook: None };
    vec![
        // The checks run before routing and DNAT, so a VIP without endpoints is refused
        // (or dropped) whatever the node's routes are.
        base(
            "filter-prerouting",
            "type filter hook prerouting priority dstnat - 10; policy accept;",
            vec![
                format!("ct state new jump {FIREWALL_CHECK}"),
                format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}"),
                format!("ct state new jump {NODEPORT_ENDPOINTS_CHECK}"),
            ],
        ),
        // Forwarded packets come here after DNAT: what still goes to a cluster IP or into
        // the service CIDRs matched no service port.
        base(
            "filter-forward",
            "type filter hook forward priority -110; policy accept;",
            std::iter::once(format!("ct state new jump {CLUSTER_IPS_CHECK}"))
                .chain(
                    (!ctx.config.conntrack_tcp_liberal)
                        .then(|| format!("ct state invalid counter name {CT_STATE_INVALID_DROPPED} drop")),
                )
                .collect(),
        ),
        base(
            "filter-output",
            "type filter hook output priority -110; policy accept;",
            vec![
                format!("ct state new jump {FIREWALL_CHECK}"),
                format!("ct state new jump {SERVICE_ENDPOINTS_CHECK}"),
                format!("ct state new jump {NODEPORT_ENDPOINTS_CHECK}"),
            ],
        ),
        // The node's own packets, after nat-output's DNAT.
        base(
            "filter-output-post-dnat",
            "type filter hook output priority -90; policy accept;",
            vec![format!("ct state new jump {CLUSTER_IPS_CHECK}")],
        ),
        base(
            "nat-prerouting",
            "type nat hook prerouting priority dstnat; policy accept;",
            vec![format!("jump {SERVICES}")],
        ),
        // A nat chain: the verdict map the count looks up holds DNAT chains.
        base(
            "nat-output",
            "type nat hook output priority -100; policy accept;",
            localhost_nodeports_rejected(ctx).into_iter().chain([format!("jump {SERVICES}")]).collect(),
        ),
        base(
            "nat-postrouting",
            "type nat hook postrouting priority srcnat; policy accept;",
            vec![format!("jump {MASQUERADING}")],
        ),
        plain(
            FIREWALL_CHECK,
            vec![format!("{vip} @{FIREWALL_PROTECTED} {vip} . {fam} saddr != @{FIREWALL_ALLOW} drop")],
        ),
        plain(CLUSTER_IPS_CHECK, cluster_ips_check(ctx, service_cidrs)),
        plain(SERVICE_ENDPOINTS_CHECK, vec![format!("{vip} vmap @{NO_ENDPOINT_SERVICES}")]),
        plain(
            NODEPORT_ENDPOINTS_CHECK,
            on_nodeport(format!("meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}")).into_iter().collect(),
        ),
        plain(REJECT, vec!["reject".to_owned()]),
        plain(SHORT_CIRCUIT_OR_DROP, short_circuit_or_drop(ctx)),
        plain(MARK_FOR_MASQUERADE, vec![format!("meta mark set meta mark | {mark}")]),
        plain(
            MASQUERADING,
            vec![
                format!("ct status dnat {fam} saddr . {fam} daddr @{HAIRPIN} masquerade"),
                format!("meta mark & {mark} == 0 return"),
                format!("meta mark set meta mark ^ {mark}"),
                "masquerade fully-random".to_owned(),
            ],
        ),
        plain(
            SERVICES,
            std::iter::once(format!("{vip} vmap @{SERVICE_IPS}"))
                .chain(on_nodeport(format!("meta l4proto . th dport vmap @{SERVICE_NODEPORTS}")))
                .collect(),
        ),
    ]
}

/// Upstream's `cluster-ips-check`: a new connection still addressed to an active cluster
/// IP after DNAT asked for a port no service has, and is refused; one addressed to an
/// unallocated address of the service CIDRs is dropped rather than routed on.
fn cluster_ips_check(ctx: &RenderContext<'_>, service_cidrs: &[IpNet]) -> Vec<String> {
    let fam = ctx.family.keyword();
    let mut rules = vec![format!("{fam} daddr @{CLUSTER_IPS} reject")];
    if !service_cidrs.is_empty() {
        let cidrs: Vec<String> = service_cidrs.iter().map(ToString::to_string).collect();
        rules.push(format!("{fam} daddr {{ {} }} drop", cidrs.join(", ")));
    }
    rules
}

/// The no-endpoint verdict of external destinations with policy Local and no local
/// endpoint: the traffic the external chain short-circuits to the cluster-IP path (from
/// pods, from the node itself) goes on; the rest is dropped.
fn short_circuit_or_drop(ctx: &RenderContext<'_>) -> Vec<String> {
    let mut rules = Vec::new();
    if let Some(local) = ctx.local_match(true) {
        rules.push(format!("{local} return"));
    }
    rules.push("fib saddr type local return".to_owned());
    rules.push("drop".to_owned());
    rules
}

fn chain(name: &str, rules: Vec<String>) -> Chain {
    Chain { name: name.to_owned(), rules }
}
