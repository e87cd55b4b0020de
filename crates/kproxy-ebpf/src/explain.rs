//! What `kproxy explain` shows of this dataplane: the `kp_services` entry the destination
//! is looked up under and its endpoint slots, from the same plan a sync writes.

use kproxy_core::explain::{MasqueradeModel, ModeProfile, PodDetection, PortTarget, RuleRef};
use kproxy_core::{NodePortAddresses, ProxyState};

use crate::layout::KpServiceKey;
use crate::plan::{PlanContext, plan_port};

/// Socket-level balancing: the source is never rewritten.
pub(crate) fn profile(name: &str) -> ModeProfile {
    ModeProfile {
        mode: name.to_owned(),
        masquerade: MasqueradeModel::SourceKept,
        pods: PodDetection::ClusterCidrs(Vec::new()),
    }
}

/// The `kp_services` entry keyed on the destination, with its endpoints in slot order;
/// nothing when the plan has no entry for it (the call is left alone).
pub(crate) fn rules(addresses: &NodePortAddresses, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
    let ctx = PlanContext::of(state, addresses);
    let entry = target.entry;
    let plan = plan_port(&ctx, target.family, entry.port, entry.endpoints);
    let dst = target.destination;
    let key = KpServiceKey::new(dst.ip, dst.port, dst.protocol);
    let Some(service) = plan.entries.get(&key) else {
        return Vec::new();
    };
    let slots = plan.sets.get(&service.role).map(Vec::as_slice).unwrap_or_default();
    let slots: Vec<String> = slots.iter().map(|e| e.socket_addr().to_string()).collect();
    let detail = format!(
        "{:?} set, flags={} affinity={}s -> [{}]",
        service.role,
        service.flags,
        service.affinity_secs,
        slots.join(" ")
    );
    let name = format!("{}/{}", key.socket_addr(), dst.protocol.as_lower_str());
    vec![RuleRef::new("map_entry", "kp_services", name, Some(detail))]
}
