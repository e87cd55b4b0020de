//! Conntrack flow deletion (stale UDP flows after an endpoint goes away).

use std::sync::{Arc, Mutex, PoisonError};

use kproxy_core::ServicePortName;
pub use kproxy_core::stale_flows::FlowFilter;

use crate::command::CommandError;

mod netlink;

pub use netlink::{Flow, NetlinkConntrack, Tuple};

/// Deletes conntrack flows.
#[async_trait::async_trait]
pub trait Conntrack: Send + Sync {
    /// Deletes the UDP flows matching `filter`; matching nothing is not an error.
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<(), CommandError>;

    /// Deletes the UDP flows matching any of `filters` (one table dump for all of them
    /// where the implementation can).
    async fn delete_udp_flows_matching(&self, filters: &[FlowFilter]) -> Result<(), CommandError> {
        for filter in filters {
            self.delete_udp_flows(filter).await?;
        }
        Ok(())
    }
}

/// Deletes the flows of `flows` (each with the service port it belongs to, for the log), in
/// one pass over the conntrack table. Failures are logged, not returned: the rules are in
/// place and the flows time out anyway.
pub async fn delete_stale_flows(conntrack: &dyn Conntrack, flows: Vec<(ServicePortName, FlowFilter)>) {
    if flows.is_empty() {
        return;
    }
    let filters: Vec<FlowFilter> = flows.iter().map(|(_, filter)| filter.clone()).collect();
    if let Err(error) = conntrack.delete_udp_flows_matching(&filters).await {
        let services: std::collections::BTreeSet<String> = flows.iter().map(|(name, _)| name.to_string()).collect();
        tracing::warn!(%error, ?services, "cannot delete stale UDP flows");
    }
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
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<(), CommandError> {
        self.deleted.lock().unwrap_or_else(PoisonError::into_inner).push(filter.clone());
        Ok(())
    }
}
