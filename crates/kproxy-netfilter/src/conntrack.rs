//! Conntrack flow deletion (stale UDP flows after an endpoint goes away).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::command::{CommandError, Netns};

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

/// The `conntrack` tool, in this namespace or a named one.
#[derive(Debug, Clone, Default)]
pub struct ExecConntrack {
    netns: Netns,
}

impl ExecConntrack {
    /// `conntrack` in `netns` (`None`: this process's namespace).
    pub fn new(netns: Option<String>) -> Self {
        Self { netns: Netns(netns) }
    }
}

#[async_trait::async_trait]
impl Conntrack for ExecConntrack {
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<(), CommandError> {
        let port = filter.port.to_string();
        let endpoint = filter.endpoint.to_string();
        let family = if filter.endpoint.is_ipv6() { "ipv6" } else { "ipv4" };
        let mut args =
            vec!["conntrack", "-D", "-f", family, "-p", "udp", "--orig-port-dst", &port, "--reply-src", &endpoint];
        let service = filter.service.map(|s| s.to_string());
        if let Some(service) = &service {
            args.extend(["--orig-dst", service]);
        }
        match self.netns.run(&args, "").await {
            // conntrack exits 1 when no flow matched.
            Err(CommandError::Failed { stderr, .. }) if stderr.contains("0 flow entries") => Ok(()),
            other => other.map(drop),
        }
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
