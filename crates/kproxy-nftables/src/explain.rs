//! What `kproxy explain` shows of this dataplane: the chains and map elements one service
//! port's path uses, taken from [`render_port`] itself (nothing is named twice).

use kproxy_core::ProxyState;
use kproxy_core::explain::{EndpointSet, MasqueradeModel, MatchKind, ModeProfile, PortTarget, RuleRef};

use crate::Family;
use crate::config::NftablesConfig;
use crate::render::names::{EndpointKind, HAIRPIN};
use crate::render::{Element, RenderContext, render_port};

/// kube-proxy's masquerade rules, with this dataplane's settings.
pub(crate) fn profile(name: &str, config: &NftablesConfig) -> ModeProfile {
    ModeProfile {
        mode: name.to_owned(),
        masquerade: MasqueradeModel::Netfilter { masquerade_all: config.masquerade_all },
        pods: config.local_detect.pod_detection(&config.cluster_cidrs),
    }
}

/// The port's chains, and the map elements keyed on the destination (plus its hairpin
/// elements), as a full sync writes them.
pub(crate) fn rules(config: &NftablesConfig, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
    let family = Family(target.family);
    let ctx = RenderContext { family, config, node: state.topology_node() };
    let render = render_port(&ctx, target.entry);
    let table = format!("{} {}", family.keyword(), config.table);
    let chains = render.chains.iter().map(|chain| {
        let rules = chain.rules.join("\n");
        RuleRef::new("chain", table.clone(), chain.name.clone(), Some(rules))
    });
    let elements = render
        .elements
        .iter()
        .filter(|e| on_path(e, target))
        .map(|e| RuleRef::new("element", format!("{table} {}", e.set), e.key.clone(), e.value.clone()));
    elements.chain(chains).collect()
}

/// An element the destination's packets meet: keyed on it, in the endpoint map of the set
/// it uses, or a hairpin pair.
fn on_path(element: &Element, target: &PortTarget<'_>) -> bool {
    if element.set == HAIRPIN {
        return true;
    }
    let protocol = target.entry.port.protocol;
    let unused = match target.endpoint_set {
        EndpointSet::Cluster => EndpointKind::Local,
        EndpointSet::Local => EndpointKind::Cluster,
    };
    if element.set == unused.endpoints_map(protocol) || element.set == unused.nodeport_endpoints_map(protocol) {
        return false;
    }
    let dst = target.destination;
    let proto = protocol.as_lower_str();
    match target.matched_by {
        MatchKind::NodePort => {
            element.key == format!("{proto} . {}", dst.port) || element.key.starts_with(&format!("{} . ", dst.port))
        }
        _ => {
            element.key.starts_with(&format!("{} . {proto} . {}", dst.ip, dst.port))
                || element.key.starts_with(&format!("{} . {} . ", dst.ip, dst.port))
        }
    }
}
