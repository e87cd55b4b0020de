//! What `kproxy explain` shows of this dataplane: the relay listeners of the matched port
//! (with the ports the relay bound) and the redirect-table elements keyed on the
//! destination, from the same plan a sync programs.

use std::collections::BTreeMap;

use kproxy_core::ProxyState;
use kproxy_core::explain::{MasqueradeModel, MatchKind, ModeProfile, PortTarget, RuleRef};
use kproxy_netfilter::nft_text::Family;

use crate::config::UserspaceConfig;
use crate::render::plan::{ListenerKey, plan};

/// A relay: endpoints always see the node's address.
pub(crate) fn profile(name: &str, config: &UserspaceConfig) -> ModeProfile {
    ModeProfile {
        mode: name.to_owned(),
        masquerade: MasqueradeModel::Relay,
        pods: config.local_detect.pod_detection(&config.cluster_cidrs),
    }
}

/// The port's listeners (port 0: not bound yet), then its elements on the destination.
pub(crate) fn rules(
    config: &UserspaceConfig,
    ports: &BTreeMap<ListenerKey, u16>,
    state: &ProxyState,
    target: &PortTarget<'_>,
) -> Vec<RuleRef> {
    let plan = plan(config, state);
    let mut out = Vec::new();
    for (key, spec) in plan.listeners.iter().filter(|(k, _)| k.family == target.family && k.name == *target.entry.name)
    {
        let port = ports.get(key).copied().unwrap_or(0);
        let endpoints: Vec<String> = spec.endpoints.iter().map(ToString::to_string).collect();
        let detail = format!("port {port} -> {}", endpoints.join(", "));
        out.push(RuleRef::new("listener", "relay", format!("{} {}", key.name, key.role.as_str()), Some(detail)));
    }
    let dst = target.destination;
    let proto = dst.protocol.as_lower_str();
    let on_path = |key: &str| match target.matched_by {
        MatchKind::NodePort => key == format!("{proto} . {}", dst.port),
        _ => key.starts_with(&format!("{} . {proto} . {}", dst.ip, dst.port)),
    };
    let family = &plan.families[target.family.index()];
    let table = format!("{} {}", Family(target.family).keyword(), config.table);
    for ((set, key), listener) in family.elements.iter().filter(|((_, key), _)| on_path(key)) {
        let detail = listener.as_ref().map(|l| format!("port of the {} listener", l.role.as_str()));
        out.push(RuleRef::new("element", format!("{table} {}", set.name()), key.clone(), detail));
    }
    out
}
