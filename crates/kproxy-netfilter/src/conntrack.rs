//! Conntrack flow deletion (stale UDP flows after an endpoint goes away).

use std::sync::{Arc, Mutex, PoisonError};

use kproxy_core::IpFamily;
use kproxy_core::ServicePortName;
pub use kproxy_core::stale_flows::{FlowCleanup, FlowFilter};

use crate::command::CommandError;

mod netlink;

pub use netlink::{Flow, NetlinkConntrack, Tuple};

/// Deletes conntrack flows.
#[async_trait::async_trait]
pub trait Conntrack: Send + Sync {
    /// Deletes the UDP flows matching `filter`; matching nothing is not an error. Returns
    /// how many flows it deleted.
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<u64, CommandError>;

    /// Deletes the UDP flows matching any of `filters` (one table dump for all of them
    /// where the implementation can). Returns the flows deleted per family (indexed by
    /// [`IpFamily::index`]).
    async fn delete_udp_flows_matching(&self, filters: &[FlowFilter]) -> Result<[u64; 2], CommandError> {
        let mut deleted = [0; 2];
        for filter in filters {
            deleted[IpFamily::of(&filter.endpoint).index()] += self.delete_udp_flows(filter).await?;
        }
        Ok(deleted)
    }
}

/// Deletes the flows of `flows` (each with the service port it belongs to, for the log), in
/// one pass over the conntrack table, and says what it did (`None` when there was nothing
/// to delete). Failures are logged, not returned: the rules are in place and the flows time
/// out anyway.
pub async fn delete_stale_flows(
    conntrack: &dyn Conntrack,
    flows: Vec<(ServicePortName, FlowFilter)>,
) -> Option<FlowCleanup> {
    if flows.is_empty() {
        return None;
    }
    let started = std::time::Instant::now();
    let filters: Vec<FlowFilter> = flows.iter().map(|(_, filter)| filter.clone()).collect();
    let mut families = [false; 2];
    filters.iter().for_each(|f| families[IpFamily::of(&f.endpoint).index()] = true);
    let deleted = match conntrack.delete_udp_flows_matching(&filters).await {
        Ok(deleted) => deleted,
        Err(error) => {
            let services: std::collections::BTreeSet<String> = flows.iter().map(|(name, _)| name.to_string()).collect();
            tracing::warn!(%error, ?services, "cannot delete stale UDP flows");
            [0; 2]
        }
    };
    Some(FlowCleanup { duration: started.elapsed(), families, deleted })
}

/// A fake conntrack that records the filters it was asked to delete.
#[derive(Debug, Clone, Default)]
pub struct FakeConntrack {
    deleted: Arc<Mutex<Vec<FlowFilter>>>,
}

impl FakeConntrack {
    /// Every filter deleted so far.
    pub fn deleted(&self) -> Vec<FlowFilter> {
        self.deleted.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait::async_trait]
impl Conntrack for FakeConntrack {
    /// Records `filter` and counts it as one deleted flow.
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<u64, CommandError> {
        self.deleted.lock().unwrap_or_else(PoisonError::into_inner).push(filter.clone());
        Ok(1)
    }
}
