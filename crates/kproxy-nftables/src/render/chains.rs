//! The chains service ports jump to. Generic ones are named after what they do
//! (`cluster-3`: pick one of 3 cluster endpoints), so ports share them.

use kproxy_core::{Endpoint, Protocol, ServicePortName};
use kproxy_netfilter::{nft_name, nft_name_part};

use super::names::{EndpointKind, MARK_FOR_MASQUERADE};
use super::{Chain, OwnedSet, RenderContext};

/// Chains and sets a target needs, collected while rendering one port.
#[derive(Debug, Default)]
pub(crate) struct ChainSink {
    pub(crate) chains: Vec<Chain>,
    pub(crate) sets: Vec<OwnedSet>,
}

impl ChainSink {
    /// Adds a chain (once) under `name` made safe by [`nft_name`]; returns that name.
    fn add(&mut self, name: String, rules: Vec<String>) -> String {
        let name = nft_name(&name);
        if !self.chains.iter().any(|c| c.name == name) {
            self.chains.push(Chain { name: name.clone(), rules });
        }
        name
    }

    /// The generic chain that DNATs to one of `n` endpoints of `kind` and `protocol`,
    /// looked up by destination (service IPs) or by node port.
    pub(crate) fn pick_endpoint(
        &mut self,
        ctx: &RenderContext<'_>,
        kind: EndpointKind,
        protocol: Protocol,
        n: usize,
    ) -> String {
        let fam = ctx.family.keyword();
        let proto = protocol.as_lower_str();
        let dnat = format!("meta l4proto {proto} dnat {fam} to");
        let rules = vec![
            format!("{dnat} {fam} daddr . {proto} dport . numgen random mod {n} map @{}", kind.endpoints_map(protocol)),
            format!("{dnat} {proto} dport . numgen random mod {n} map @{}", kind.nodeport_endpoints_map(protocol)),
        ];
        self.add(format!("{}-{proto}-{n}", kind.as_str()), rules)
    }

    /// A port's own chain choosing among `endpoints` with ClientIP affinity (upstream's
    /// shape: a dynamic set per endpoint remembers its clients).
    pub(crate) fn affinity(
        &mut self,
        ctx: &RenderContext<'_>,
        port: &ServicePortName,
        kind: EndpointKind,
        endpoints: &[&Endpoint],
        timeout_seconds: u32,
    ) -> String {
        let fam = ctx.family.keyword();
        let id = format!("{}-{}", kind.as_str(), port_id(port));
        let mut rules = Vec::new();
        let mut choices = Vec::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let suffix = format!("{id}__{}", endpoint_id(endpoint));
            let set = nft_name(&format!("affinity-{suffix}"));
            let chain = self.endpoint_chain(ctx, &suffix, &set, endpoint, port.protocol);
            let spec = format!("type {}; flags dynamic,timeout; timeout {timeout_seconds}s;", ctx.family.addr_type());
            self.sets.push(OwnedSet { name: set.clone(), spec });
            rules.push(format!("{fam} saddr @{set} goto {chain}"));
            choices.push(format!("{i} : goto {chain}"));
        }
        rules.push(format!("numgen random mod {} vmap {{ {} }}", endpoints.len(), choices.join(", ")));
        self.add(format!("affinity-{id}"), rules)
    }

    fn endpoint_chain(
        &mut self,
        ctx: &RenderContext<'_>,
        suffix: &str,
        set: &str,
        endpoint: &Endpoint,
        protocol: Protocol,
    ) -> String {
        let fam = ctx.family.keyword();
        let rules = vec![
            format!("update @{set} {{ {fam} saddr }}"),
            format!(
                "meta l4proto {} dnat {fam} to {}",
                protocol.as_lower_str(),
                ctx.family.socket(endpoint.ip, endpoint.port)
            ),
        ];
        self.add(format!("endpoint-{suffix}"), rules)
    }

    /// The chain of traffic to the cluster IP: masquerade what does not come from a pod
    /// (or everything, with masquerade-all), then go to `target`.
    pub(crate) fn internal(&mut self, ctx: &RenderContext<'_>, target: &str) -> String {
        let mut rules = Vec::new();
        if ctx.config.masquerade_all {
            rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
        } else if let Some(not_local) = ctx.local_match(false) {
            rules.push(format!("{not_local} jump {MARK_FOR_MASQUERADE}"));
        }
        rules.push(format!("goto {target}"));
        self.add(format!("internal-to-{target}"), rules)
    }

    /// External traffic with policy Cluster: always masqueraded.
    pub(crate) fn external_cluster(&mut self, target: &str) -> String {
        let rules = vec![format!("jump {MARK_FOR_MASQUERADE}"), format!("goto {target}")];
        self.add(format!("external-to-{target}"), rules)
    }

    /// External traffic with policy Local: pods and the node itself are sent to the
    /// internal chain (the node's own traffic masqueraded); the rest keeps its source and
    /// goes to local endpoints. `None` when there is nothing to do.
    pub(crate) fn external_local(
        &mut self,
        ctx: &RenderContext<'_>,
        target: Option<&str>,
        internal: Option<&str>,
    ) -> Option<String> {
        let mut rules = Vec::new();
        if let Some(internal) = internal {
            if let Some(local) = ctx.local_match(true) {
                rules.push(format!("{local} goto {internal}"));
            }
            rules.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
            rules.push(format!("fib saddr type local goto {internal}"));
        }
        if let Some(target) = target {
            rules.push(format!("goto {target}"));
        }
        if rules.is_empty() {
            return None;
        }
        let name = format!("external-local-to-{}-via-{}", target.unwrap_or("none"), internal.unwrap_or("none"));
        Some(self.add(name, rules))
    }
}

/// `ns/name/proto/port`, upstream's chain suffix for a service port; each piece of object
/// text goes through [`nft_name_part`], so the suffix is always part of an nft identifier
/// and two ports never share one.
pub(crate) fn port_id(port: &ServicePortName) -> String {
    let svc = &port.service;
    let (ns, name, port_name) = (nft_name_part(&svc.namespace), nft_name_part(&svc.name), nft_name_part(&port.port));
    format!("{ns}/{name}/{}/{port_name}", port.protocol.as_lower_str())
}

/// `10.0.0.1/8080` (colons of IPv6 addresses become dashes, as names do not allow them).
fn endpoint_id(endpoint: &Endpoint) -> String {
    format!("{}/{}", endpoint.ip.to_string().replace(':', "-"), endpoint.port)
}
