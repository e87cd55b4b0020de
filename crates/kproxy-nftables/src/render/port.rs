//! One service port's chains and elements.

use std::net::IpAddr;

use kproxy_core::render::PortEntry;
use kproxy_core::stale_flows::Destinations;
use kproxy_core::{CategorizedEndpoints, Endpoint, IpFamily, ServicePort, ServicePortName, categorize_endpoints};

use super::chains::ChainSink;
use super::names::*;
use super::{Element, PortRender, RenderContext};

/// Renders what a port needs in the table, given its endpoints.
pub fn render_port(ctx: &RenderContext<'_>, entry: PortEntry<'_>) -> PortRender {
    let PortEntry { name, port, endpoints } = entry;
    let categorized = categorize_endpoints(endpoints, port, ctx.node);
    let mut render = PortRender { destinations: Destinations::of(port), ..PortRender::default() };
    let mut sink = ChainSink::default();
    let writer = PortWriter { ctx, name, port, categorized: &categorized };
    writer.endpoint_elements(&mut render);
    let internal = writer.internal(&mut sink, &mut render);
    if port.externally_accessible() {
        writer.external(&mut sink, &mut render, internal.as_deref());
        writer.firewall(&mut render);
    }
    writer.hairpin(&mut render);
    render.chains = sink.chains;
    render.sets = sink.sets;
    render
}

struct PortWriter<'a> {
    ctx: &'a RenderContext<'a>,
    name: &'a ServicePortName,
    port: &'a ServicePort,
    categorized: &'a CategorizedEndpoints<'a>,
}

impl PortWriter<'_> {
    fn internal_kind(&self) -> EndpointKind {
        if self.port.internal_policy_local { EndpointKind::Local } else { EndpointKind::Cluster }
    }

    fn external_kind(&self) -> EndpointKind {
        if self.port.external_policy_local { EndpointKind::Local } else { EndpointKind::Cluster }
    }

    fn endpoints(&self, kind: EndpointKind) -> &[&Endpoint] {
        match kind {
            EndpointKind::Cluster => &self.categorized.cluster,
            EndpointKind::Local => &self.categorized.local,
        }
    }

    fn proto(&self) -> &'static str {
        self.port.protocol.as_lower_str()
    }

    fn vip_key(&self, vip: IpAddr) -> String {
        format!("{vip} . {} . {}", self.proto(), self.port.port)
    }

    /// `index : endpoint` elements of every endpoint set a path of this port uses, keyed
    /// by each address of the port and by its node port.
    fn endpoint_elements(&self, render: &mut PortRender) {
        if self.port.sticky_max_age_seconds().is_some() {
            // Affinity chains DNAT to each endpoint themselves.
            return;
        }
        let mut kinds = vec![self.internal_kind()];
        if self.port.externally_accessible() && self.external_kind() != self.internal_kind() {
            kinds.push(self.external_kind());
        }
        for kind in kinds {
            for (i, endpoint) in self.endpoints(kind).iter().enumerate() {
                let value = format!("{} . {}", endpoint.ip, endpoint.port);
                let protocol = self.port.protocol;
                for vip in &render.destinations.vips {
                    let key = format!("{vip} . {} . {i}", self.port.port);
                    render.elements.push(Element {
                        set: kind.endpoints_map(protocol),
                        key,
                        value: Some(value.clone()),
                    });
                }
                if let Some(node_port) = self.port.node_port {
                    let key = format!("{node_port} . {i}");
                    let set = kind.nodeport_endpoints_map(protocol);
                    render.elements.push(Element { set, key, value: Some(value.clone()) });
                }
            }
        }
    }

    /// The chain choosing among the endpoints of `kind`; `None` when there are none.
    fn target(&self, sink: &mut ChainSink, kind: EndpointKind) -> Option<String> {
        let endpoints = self.endpoints(kind);
        if endpoints.is_empty() {
            return None;
        }
        Some(match self.port.sticky_max_age_seconds() {
            Some(timeout) => sink.affinity(self.ctx, self.name, kind, endpoints, timeout),
            None => sink.pick_endpoint(self.ctx, kind, self.port.protocol, endpoints.len()),
        })
    }

    /// Where traffic to a service without usable endpoints goes: refused when the service
    /// has no endpoint anywhere, dropped when the policy in force excludes the ones it has.
    fn no_endpoint_verdict(&self) -> String {
        if self.categorized.has_any { "drop".to_owned() } else { format!("goto {REJECT}") }
    }

    /// The cluster-IP path (and the cluster IP among the active ones); returns its chain
    /// for external traffic to short-circuit to.
    fn internal(&self, sink: &mut ChainSink, render: &mut PortRender) -> Option<String> {
        let cluster_ip = Element { set: CLUSTER_IPS, key: self.port.cluster_ip.to_string(), value: None };
        render.elements.push(cluster_ip);
        let key = self.vip_key(self.port.cluster_ip);
        let chain = self.target(sink, self.internal_kind()).map(|target| sink.internal(self.ctx, &target));
        let element = match &chain {
            Some(chain) => Element { set: SERVICE_IPS, key, value: Some(format!("goto {chain}")) },
            None => Element { set: NO_ENDPOINT_SERVICES, key, value: Some(self.no_endpoint_verdict()) },
        };
        render.elements.push(element);
        chain
    }

    /// External IPs, load-balancer IPs and the node port.
    fn external(&self, sink: &mut ChainSink, render: &mut PortRender, internal: Option<&str>) {
        let target = self.target(sink, self.external_kind());
        let chain = match self.external_kind() {
            EndpointKind::Cluster => target.as_deref().map(|t| sink.external_cluster(t)),
            EndpointKind::Local => sink.external_local(self.ctx, target.as_deref(), internal),
        };
        let dispatch = chain.as_ref().map(|c| format!("goto {c}"));
        let refuse = target.is_none().then(|| match &chain {
            // Policy Local without local endpoints, but pods and the node itself are
            // short-circuited to the cluster-IP path: drop only the rest. (The check runs
            // before DNAT, so a plain `drop` would also drop the short-circuited traffic.)
            Some(_) => format!("goto {SHORT_CIRCUIT_OR_DROP}"),
            None => self.no_endpoint_verdict(),
        });
        for vip in self.port.external_vips() {
            push(render, SERVICE_IPS, self.vip_key(vip), &dispatch);
            push(render, NO_ENDPOINT_SERVICES, self.vip_key(vip), &refuse);
        }
        if let Some(node_port) = self.port.node_port {
            let key = format!("{} . {node_port}", self.proto());
            push(render, SERVICE_NODEPORTS, key.clone(), &dispatch);
            push(render, NO_ENDPOINT_NODEPORTS, key, &refuse);
        }
    }

    /// loadBalancerSourceRanges: only those sources reach the load-balancer IPs.
    fn firewall(&self, render: &mut PortRender) {
        let ranges = &self.port.load_balancer_source_ranges;
        if ranges.is_empty() {
            return;
        }
        for vip in &self.port.load_balancer_vips {
            let key = self.vip_key(*vip);
            render.elements.push(Element { set: FIREWALL_PROTECTED, key: key.clone(), value: None });
            for range in ranges.iter().filter(|r| IpFamily::of(&r.addr()) == self.ctx.family.0) {
                render.elements.push(Element { set: FIREWALL_ALLOW, key: format!("{key} . {range}"), value: None });
            }
        }
    }

    /// An endpoint reaching itself through the service is masqueraded.
    fn hairpin(&self, render: &mut PortRender) {
        for endpoint in &self.categorized.all_reachable {
            render.elements.push(Element { set: HAIRPIN, key: format!("{0} . {0}", endpoint.ip), value: None });
        }
    }
}

fn push(render: &mut PortRender, set: &'static str, key: String, value: &Option<String>) {
    if let Some(value) = value {
        render.elements.push(Element { set, key, value: Some(value.clone()) });
    }
}
