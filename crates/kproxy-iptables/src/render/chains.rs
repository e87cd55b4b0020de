//! The nat chains of one service port: `KUBE-EXT`, `KUBE-FW`, `KUBE-SVC`, `KUBE-SVL` and
//! one `KUBE-SEP` per endpoint, in upstream's shapes.

use kproxy_core::{Endpoint, ServicePort};

use super::names::KUBE_MARK_MASQ;
use super::port::Plan;
use super::rule::{comment, probability, proto};
use super::{Chain, RenderContext};

/// Every chain the port needs, in upstream's order of creation.
pub(super) fn render_chains(ctx: &RenderContext<'_>, plan: &Plan<'_>, port: &ServicePort) -> Vec<Chain> {
    let mut chains = Vec::new();
    if plan.uses_external_chain {
        chains.push(external_chain(ctx, plan));
    }
    if plan.uses_firewall_chain {
        chains.push(firewall_chain(ctx, plan, port));
    }
    if plan.uses_cluster_chain {
        chains.push(policy_chain(ctx, plan, port, &plan.names.cluster, &plan.endpoints.cluster));
    }
    if plan.uses_local_chain {
        chains.push(policy_chain(ctx, plan, port, &plan.names.local, &plan.endpoints.local));
    }
    for endpoint in &plan.endpoints.all_reachable {
        chains.push(endpoint_chain(ctx, plan, port, endpoint));
    }
    chains
}

/// `KUBE-EXT`: masquerade (policy Cluster) or short-circuit pods and the node (policy
/// Local), then the policy chain.
fn external_chain(ctx: &RenderContext<'_>, plan: &Plan<'_>) -> Chain {
    let name = &plan.names.external;
    let svc = &plan.names.name;
    let mut rules = Vec::new();
    if plan.external_policy_chain == plan.names.cluster {
        let c = comment(&format!("masquerade traffic for {svc} external destinations"));
        rules.push(format!("-A {name} {c} -j {KUBE_MARK_MASQ}"));
    } else {
        if let Some(local) = ctx.config.local_match(ctx.family, true) {
            let c = comment(&format!("pod traffic for {svc} external destinations"));
            rules.push(format!("-A {name} {c} {local} -j {}", plan.names.cluster));
        }
        let c = comment(&format!("masquerade LOCAL traffic for {svc} external destinations"));
        rules.push(format!("-A {name} {c} -m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}"));
        let c = comment(&format!("route LOCAL traffic for {svc} external destinations"));
        rules.push(format!("-A {name} {c} -m addrtype --src-type LOCAL -j {}", plan.names.cluster));
    }
    if plan.has_external {
        rules.push(format!("-A {name} -j {}", plan.external_policy_chain));
    }
    Chain { name: name.clone(), rules }
}

/// `KUBE-FW`: admitted source ranges go on to `KUBE-EXT`; the rest falls through and is
/// dropped by filter `KUBE-PROXY-FIREWALL`.
fn firewall_chain(ctx: &RenderContext<'_>, plan: &Plan<'_>, port: &ServicePort) -> Chain {
    let name = &plan.names.firewall;
    let svc = &plan.names.name;
    let c = comment(&format!("{svc} loadbalancer IP"));
    let mut rules = Vec::new();
    for cidr in &port.load_balancer_source_ranges {
        rules.push(format!("-A {name} {c} -s {cidr} -j {}", plan.names.external));
    }
    let node_in_range = ctx.node_ip.is_some_and(|ip| port.load_balancer_source_ranges.iter().any(|r| r.contains(&ip)));
    if node_in_range {
        for ip in &port.load_balancer_vips {
            rules.push(format!("-A {name} {c} -s {ip} -j {}", plan.names.external));
        }
    }
    let c = comment(&format!("other traffic to {svc} will be dropped by KUBE-PROXY-FIREWALL"));
    rules.push(format!("-A {name} {c}"));
    Chain { name: name.clone(), rules }
}

/// `KUBE-SVC` or `KUBE-SVL`: the ClusterIP masquerade rule when this is the internal
/// chain, affinity checks, then one probability rule per endpoint.
fn policy_chain(
    ctx: &RenderContext<'_>,
    plan: &Plan<'_>,
    port: &ServicePort,
    name: &str,
    endpoints: &[&Endpoint],
) -> Chain {
    let mut rules = Vec::new();
    if plan.has_internal && name == plan.internal_chain {
        let c = comment(&format!("{} cluster IP", plan.names.name));
        let args = format!("-A {name} {c} {}", plan.dest(port.cluster_ip, port.port));
        if ctx.config.masquerade_all {
            rules.push(format!("{args} -j {KUBE_MARK_MASQ}"));
        } else if let Some(not_local) = ctx.config.local_match(ctx.family, false) {
            rules.push(format!("{args} {not_local} -j {KUBE_MARK_MASQ}"));
        }
    }
    let endpoint_comment = |e: &Endpoint| endpoint_rule_comment(ctx, &format!("{} -> {e}", plan.names.name));
    if let Some(seconds) = port.sticky_max_age_seconds() {
        for endpoint in endpoints {
            let sep = plan.names.endpoint(plan.protocol, endpoint);
            let c = endpoint_comment(endpoint);
            rules.push(format!("-A {name}{c} -m recent --name {sep} --rcheck --seconds {seconds} --reap -j {sep}"));
        }
    }
    let n = endpoints.len();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let sep = plan.names.endpoint(plan.protocol, endpoint);
        let c = endpoint_comment(endpoint);
        if i + 1 < n {
            let p = probability(n - i);
            rules.push(format!("-A {name}{c} -m statistic --mode random --probability {p} -j {sep}"));
        } else {
            rules.push(format!("-A {name}{c} -j {sep}"));
        }
    }
    Chain { name: name.to_owned(), rules }
}

/// `KUBE-SEP`: hairpin masquerade, affinity bookkeeping, DNAT.
fn endpoint_chain(ctx: &RenderContext<'_>, plan: &Plan<'_>, port: &ServicePort, endpoint: &Endpoint) -> Chain {
    let name = plan.names.endpoint(plan.protocol, endpoint);
    let c = endpoint_rule_comment(ctx, &plan.names.name);
    let masq = format!("-A {name}{c} -s {} -j {KUBE_MARK_MASQ}", endpoint.ip);
    let recent =
        if port.sticky_max_age_seconds().is_some() { format!(" -m recent --name {name} --set") } else { String::new() };
    let dnat = format!("-A {name}{c}{recent} {} -j DNAT --to-destination {endpoint}", proto(plan.protocol));
    Chain { name, rules: vec![masq, dnat] }
}

/// ` -m comment --comment …`, or nothing in large-cluster mode.
fn endpoint_rule_comment(ctx: &RenderContext<'_>, text: &str) -> String {
    if ctx.large_cluster { String::new() } else { format!(" {}", comment(text)) }
}
