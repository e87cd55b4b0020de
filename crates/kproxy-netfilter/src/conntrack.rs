//! Conntrack flow deletion (stale UDP flows after an endpoint goes away).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::command::CommandError;

mod netlink;

pub use netlink::{Flow, NetlinkConntrack, Tuple};

/// Which flows to delete: UDP flows whose original destination is `service` (an IP, or any
/// local address when `None`) and port `port`, answered by `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowFilter {
    /// The service address the client sent to; `None` for a node port (any address).
    pub service: Option<IpAddr>,
    /// The port the client sent to (service port or node port).
    pub port: u16,
    /// The endpoint that answered.
    pub endpoint: IpAddr,
}

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
