//! Conntrack flow deletion (stale UDP flows after an endpoint goes away).

use std::sync::{Arc, Mutex, PoisonError};

use kproxy_core::ServicePortName;
pub use kproxy_core::stale_flows::FlowFilter;

use crate::command::{CommandError, Netns};

/// Deletes conntrack flows.
#[async_trait::async_trait]
pub trait Conntrack: Send + Sync {
    /// Deletes the UDP flows matching `filter`; matching nothing is not an error.
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<(), CommandError>;
}

/// Deletes the flows of `flows` (each with the service port it belongs to, for the log).
/// Failures are logged, not returned: the rules are in place and the flows time out anyway.
pub async fn delete_stale_flows(conntrack: &dyn Conntrack, flows: Vec<(ServicePortName, FlowFilter)>) {
    for (name, filter) in flows {
        if let Err(error) = conntrack.delete_udp_flows(&filter).await {
            tracing::warn!(%error, service = %name, "cannot delete stale UDP flows");
        }
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
