//! One service port: which chains it needs (upstream's decisions in `syncProxyRules`), and
//! its rules in the shared chains.

use kproxy_core::render::PortEntry;
use kproxy_core::{CategorizedEndpoints, Endpoint, ServicePort, ServicePortName, categorize_endpoints};

use kproxy_netfilter::LOCALHOST_NODEPORTS_ACCEPTED;

use super::names::{KUBE_EXTERNAL_SERVICES, KUBE_NODEPORTS, KUBE_PROXY_FIREWALL, KUBE_SERVICES, PortChains};
use super::rule::{comment, proto};
use super::{Destinations, PortRender, RenderContext, Shared, SharedRule, chains};
use crate::config::IptablesConfig;

/// What upstream decides for a port before writing any rule.
pub(super) struct Plan<'a> {
    pub(super) names: PortChains,
    pub(super) protocol: &'static str,
    pub(super) endpoints: CategorizedEndpoints<'a>,
    /// Some endpoint is usable anywhere: otherwise everything is rejected.
    pub(super) has_endpoints: bool,
    /// ClusterIP traffic has endpoints (internal policy Local needs local ones).
    pub(super) has_internal: bool,
    /// External traffic has endpoints (external policy Local needs local ones).
    pub(super) has_external: bool,
    /// `KUBE-SVC` or `KUBE-SVL`: where ClusterIP traffic goes.
    pub(super) internal_chain: String,
    /// `KUBE-SVC` or `KUBE-SVL`: where external traffic ends up.
    pub(super) external_policy_chain: String,
    pub(super) uses_cluster_chain: bool,
    pub(super) uses_local_chain: bool,
    pub(super) uses_external_chain: bool,
    pub(super) uses_firewall_chain: bool,
}

impl<'a> Plan<'a> {
    fn new(ctx: &RenderContext<'_>, name: &ServicePortName, port: &ServicePort, endpoints: &'a [Endpoint]) -> Self {
        let names = PortChains::of(name);
        let endpoints = categorize_endpoints(endpoints, port, ctx.node);
        let has_endpoints = endpoints.has_any;
        let no_local = endpoints.local.is_empty();
        let pick = |local: bool| if local { names.local.clone() } else { names.cluster.clone() };
        Self {
            protocol: name.protocol.as_lower_str(),
            has_endpoints,
            has_internal: has_endpoints && !(port.internal_policy_local && no_local),
            has_external: has_endpoints && !(port.external_policy_local && no_local),
            internal_chain: pick(port.internal_policy_local),
            external_policy_chain: pick(port.external_policy_local),
            uses_cluster_chain: !endpoints.cluster.is_empty() && port.uses_cluster_endpoints(),
            uses_local_chain: !no_local && port.uses_local_endpoints(),
            uses_external_chain: has_endpoints && port.externally_accessible(),
            uses_firewall_chain: has_endpoints
                && !port.load_balancer_vips.is_empty()
                && !port.load_balancer_source_ranges.is_empty(),
            names,
            endpoints,
        }
    }

    /// `-m tcp -p tcp -d IP --dport PORT`.
    pub(super) fn dest(&self, ip: impl std::fmt::Display, port: u16) -> String {
        format!("{} -d {ip} --dport {port}", proto(self.protocol))
    }

    /// The filter verdict and comment for traffic without endpoints of its kind.
    fn filter_target(&self, has: bool) -> Option<(&'static str, String)> {
        match (self.has_endpoints, has) {
            (false, _) => Some(("REJECT", format!("{} has no endpoints", self.names.name))),
            (true, false) => Some(("DROP", format!("{} has no local endpoints", self.names.name))),
            (true, true) => None,
        }
    }
}

/// Renders one service port: its rules in the shared chains and its own chains.
pub fn render_port(ctx: &RenderContext<'_>, entry: PortEntry<'_>) -> PortRender {
    let PortEntry { name, port, endpoints } = entry;
    let plan = Plan::new(ctx, name, port, endpoints);
    let mut shared = Vec::new();
    cluster_ip(&plan, port, &mut shared);
    external_ips(&plan, port, &mut shared);
    load_balancer_ips(&plan, port, &mut shared);
    node_port(ctx, &plan, port, &mut shared);
    health_check_node_port(&plan, port, &mut shared);
    PortRender { shared, chains: chains::render_chains(ctx, &plan, port), destinations: Destinations::of(port) }
}

fn cluster_ip(plan: &Plan<'_>, port: &ServicePort, out: &mut Vec<SharedRule>) {
    let dest = plan.dest(port.cluster_ip, port.port);
    if plan.has_internal {
        let c = comment(&format!("{} cluster IP", plan.names.name));
        let rule = format!("-A {KUBE_SERVICES} {c} {dest} -j {}", plan.internal_chain);
        out.push((Shared::NatServices, rule));
    } else if let Some((target, text)) = plan.filter_target(plan.has_internal) {
        out.push((Shared::FilterServices, format!("-A {KUBE_SERVICES} {} {dest} -j {target}", comment(&text))));
    }
}

fn external_ips(plan: &Plan<'_>, port: &ServicePort, out: &mut Vec<SharedRule>) {
    for ip in &port.external_ips {
        let dest = plan.dest(ip, port.port);
        if plan.has_endpoints {
            let c = comment(&format!("{} external IP", plan.names.name));
            out.push((Shared::NatServices, format!("-A {KUBE_SERVICES} {c} {dest} -j {}", plan.names.external)));
        }
        if let Some((target, text)) = plan.filter_target(plan.has_external) {
            let rule = format!("-A {KUBE_EXTERNAL_SERVICES} {} {dest} -j {target}", comment(&text));
            out.push((Shared::FilterExternalServices, rule));
        }
    }
}

fn load_balancer_ips(plan: &Plan<'_>, port: &ServicePort, out: &mut Vec<SharedRule>) {
    let target = if plan.uses_firewall_chain { &plan.names.firewall } else { &plan.names.external };
    for ip in &port.load_balancer_vips {
        let dest = plan.dest(ip, port.port);
        if plan.has_endpoints {
            let c = comment(&format!("{} loadbalancer IP", plan.names.name));
            out.push((Shared::NatServices, format!("-A {KUBE_SERVICES} {c} {dest} -j {target}")));
        }
        if plan.uses_firewall_chain {
            let c = comment(&format!("{} traffic not accepted by {}", plan.names.name, plan.names.firewall));
            out.push((Shared::FilterFirewall, format!("-A {KUBE_PROXY_FIREWALL} {c} {dest} -j DROP")));
        }
    }
    if let Some((target, text)) = plan.filter_target(plan.has_external) {
        for ip in &port.load_balancer_vips {
            let dest = plan.dest(ip, port.port);
            let rule = format!("-A {KUBE_EXTERNAL_SERVICES} {} {dest} -j {target}", comment(&text));
            out.push((Shared::FilterExternalServices, rule));
        }
    }
}

fn node_port(ctx: &RenderContext<'_>, plan: &Plan<'_>, port: &ServicePort, out: &mut Vec<SharedRule>) {
    let Some(node_port) = port.node_port else {
        return;
    };
    let matches = format!("{} --dport {node_port}", proto(plan.protocol));
    if plan.has_endpoints
        && ctx.config.localhost_nodeports_in(ctx.family)
        && ctx.config.counters.localhost_nodeports_accepted
    {
        // Only to count them (upstream's `localhost_nps_accepted_pkts`): the next rule
        // would accept them too.
        let (c, ext) = (comment(&plan.names.name), &plan.names.external);
        let count = IptablesConfig::nfacct_match(true, LOCALHOST_NODEPORTS_ACCEPTED);
        let localhost = plan.dest("127.0.0.0/8", node_port);
        out.push((Shared::NatNodePorts, format!("-A {KUBE_NODEPORTS} {c} {localhost} {count}-j {ext}")));
    }
    if plan.has_endpoints {
        let rule = format!("-A {KUBE_NODEPORTS} {} {matches} -j {}", comment(&plan.names.name), plan.names.external);
        out.push((Shared::NatNodePorts, rule));
    }
    if let Some((target, text)) = plan.filter_target(plan.has_external) {
        let c = comment(&text);
        let rule = format!("-A {KUBE_EXTERNAL_SERVICES} {c} -m addrtype --dst-type LOCAL {matches} -j {target}");
        out.push((Shared::FilterExternalServices, rule));
    }
}

fn health_check_node_port(plan: &Plan<'_>, port: &ServicePort, out: &mut Vec<SharedRule>) {
    if let Some(hc) = port.health_check_node_port {
        let c = comment(&format!("{} health check node port", plan.names.name));
        out.push((Shared::FilterNodePorts, format!("-A {KUBE_NODEPORTS} {c} -m tcp -p tcp --dport {hc} -j ACCEPT")));
    }
}
