//! What `kproxy explain` shows of this dataplane: the rules a destination's packets meet in
//! the shared chains and the port's own `KUBE-SVC-`/`KUBE-SVL-`/`KUBE-EXT-`/`KUBE-FW-`/
//! `KUBE-SEP-` chains, taken from [`render_port`] itself (names hashed once, there).

use kproxy_core::ProxyState;
use kproxy_core::explain::{MasqueradeModel, MatchKind, ModeProfile, PortTarget, RuleRef};

use crate::config::IptablesConfig;
use crate::render::{RenderContext, Shared, SharedRule, render_port};

/// kube-proxy's masquerade rules, with this dataplane's settings.
pub(crate) fn profile(name: &str, config: &IptablesConfig) -> ModeProfile {
    ModeProfile {
        mode: name.to_owned(),
        masquerade: MasqueradeModel::Netfilter { masquerade_all: config.masquerade_all },
        pods: config.local_detect.pod_detection(&config.cluster_cidrs),
    }
}

/// The shared-chain rules matching the destination, then the port's own chains with their
/// rules, as a full sync writes them.
pub(crate) fn rules(config: &IptablesConfig, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
    let ctx = RenderContext::new(config, state, target.family);
    let render = render_port(&ctx, target.entry);
    let shared =
        render.shared.iter().filter(|rule| on_path(rule, target)).map(|(chain, rule)| {
            RuleRef::new("rule", format!("{} {}", chain.table(), chain.chain()), rule.clone(), None)
        });
    let own = render
        .chains
        .iter()
        .map(|chain| RuleRef::new("chain", "nat", chain.name.clone(), Some(chain.rules.join("\n"))));
    shared.chain(own).collect()
}

fn on_path((chain, rule): &SharedRule, target: &PortTarget<'_>) -> bool {
    let dst = target.destination;
    match target.matched_by {
        MatchKind::NodePort => {
            matches!(chain, Shared::NatNodePorts | Shared::FilterExternalServices)
                && !rule.contains(" -d ")
                && rule.contains(&format!("--dport {} ", dst.port))
        }
        _ => rule.contains(&format!(" -d {} --dport {} ", dst.ip, dst.port)),
    }
}
