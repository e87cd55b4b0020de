//! Per-endpoint verdicts: whether the packet may use each endpoint of the matched port, and
//! why. The decision is [`categorize_endpoints`](crate::categorize_endpoints)'; this only
//! words it.

use super::{EndpointSet, EndpointVerdict, contains};
use crate::endpoint::Endpoint;
use crate::proxy_state::ProxyState;
use crate::render::PortEntry;
use crate::topology::CategorizedEndpoints;

/// The verdict of every endpoint of `entry` for the endpoint set `set`; adds a note when
/// topology hints narrow the cluster set.
pub(super) fn verdicts(
    state: &ProxyState,
    entry: &PortEntry<'_>,
    categorized: &CategorizedEndpoints<'_>,
    set: EndpointSet,
    notes: &mut Vec<String>,
) -> Vec<EndpointVerdict> {
    let chosen = match set {
        EndpointSet::Cluster => &categorized.cluster,
        EndpointSet::Local => &categorized.local,
    };
    let words = Words { state, categorized, chosen, set, endpoints: entry.endpoints };
    if set == EndpointSet::Cluster && words.topology_filtered() {
        let zone = state.node.zone().unwrap_or("none");
        notes.push(format!(
            "topology-aware routing: only endpoints hinted for this node ({}) or its zone ({zone}) are used",
            state.node.name
        ));
    }
    entry.endpoints.iter().map(|e| words.verdict(e)).collect()
}

struct Words<'a> {
    state: &'a ProxyState,
    categorized: &'a CategorizedEndpoints<'a>,
    chosen: &'a [&'a Endpoint],
    set: EndpointSet,
    endpoints: &'a [Endpoint],
}

impl Words<'_> {
    fn verdict(&self, endpoint: &Endpoint) -> EndpointVerdict {
        let eligible = contains(self.chosen, endpoint);
        let reason = if eligible { self.why(endpoint) } else { self.why_not(endpoint) };
        EndpointVerdict {
            address: endpoint.to_string(),
            node: endpoint.node_name.as_deref().map(str::to_owned),
            zone: endpoint.zone.as_deref().map(str::to_owned),
            local: endpoint.is_local,
            ready: endpoint.ready,
            serving: endpoint.serving,
            terminating: endpoint.terminating,
            eligible,
            reason,
        }
    }

    /// Ready endpoints left out of the cluster set: only topology does that.
    fn topology_filtered(&self) -> bool {
        self.endpoints.iter().any(|e| e.ready && !contains(&self.categorized.cluster, e))
            && !self.categorized.cluster.is_empty()
    }

    fn why(&self, endpoint: &Endpoint) -> String {
        let mut reason = if endpoint.ready {
            "ready".to_owned()
        } else if self.set == EndpointSet::Local {
            "serving and terminating: used because no endpoint on this node is ready".to_owned()
        } else {
            "serving and terminating: used because no endpoint is ready".to_owned()
        };
        if self.set == EndpointSet::Local {
            reason.push_str(", on this node (traffic policy Local)");
        } else if self.topology_filtered() {
            reason.push_str(", hinted for this node or its zone");
        }
        reason
    }

    fn why_not(&self, endpoint: &Endpoint) -> String {
        if !endpoint.ready && !endpoint.is_serving_terminating() {
            return if endpoint.terminating { "terminating and no longer serving" } else { "not ready" }.to_owned();
        }
        if self.set == EndpointSet::Local && !endpoint.is_local {
            let node = endpoint.node_name.as_deref().unwrap_or("another node");
            return format!("runs on {node}: traffic policy Local uses this node's endpoints only");
        }
        if !endpoint.ready {
            let whom = if self.set == EndpointSet::Local { "endpoints on this node are" } else { "endpoints are" };
            return format!("terminating: not used while ready {whom} available");
        }
        if self.set == EndpointSet::Cluster {
            return format!("topology hints exclude it: {}", self.hints(endpoint));
        }
        "not in the endpoint set this packet uses".to_owned()
    }

    fn hints(&self, endpoint: &Endpoint) -> String {
        let list = |names: &crate::HintNames| names.iter().collect::<Vec<_>>().join(", ");
        let node = &self.state.node;
        format!(
            "hinted for zones [{}], nodes [{}]; this node is {} in zone {}",
            list(&endpoint.zone_hints),
            list(&endpoint.node_hints),
            node.name,
            node.zone().unwrap_or("none")
        )
    }
}
