//! A node's model without a kernel, for tests that render or drive a dataplane against
//! fakes (golden files, hostile names, fake runners): API objects go through a
//! [`ChangeTracker`] into a [`ProxyState`], as the daemon's sources put them. Objects that
//! do not convert fail the calling test.

use std::time::UNIX_EPOCH;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::{ChangeTracker, Changes, ProxyState};

/// One node's tracker, with its Node object seen, and the state it checks out into.
pub struct OfflineNode {
    /// The tracker objects go into.
    pub tracker: ChangeTracker,
    /// The state of the last [`OfflineNode::checkout`].
    pub state: ProxyState,
}

impl OfflineNode {
    /// The model of `node`, before any Service.
    pub fn new(node: &Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut tracker = ChangeTracker::new(&name, UNIX_EPOCH);
        tracker.on_node_update(node).expect("node converts");
        Self { tracker, state: ProxyState::new(&name) }
    }

    /// The state of `node` holding `services` and `slices`.
    pub fn with(node: &Node, services: &[Service], slices: &[EndpointSlice]) -> Self {
        let mut offline = Self::new(node);
        offline.apply(services, slices);
        offline.checkout();
        offline
    }

    /// Adds or updates `services` and `slices` (seen at the next checkout).
    pub fn apply(&mut self, services: &[Service], slices: &[EndpointSlice]) {
        for service in services {
            self.tracker.on_service_update(service).expect("service converts");
        }
        for slice in slices {
            self.tracker.on_slice_update(slice).expect("slice converts");
        }
    }

    /// Adds or updates a ServiceCIDR (seen at the next checkout).
    pub fn apply_service_cidr(&mut self, object: &ServiceCIDR) {
        self.tracker.on_service_cidr_update(object).expect("ServiceCIDR converts");
    }

    /// Checks the pending changes out into the state.
    pub fn checkout(&mut self) -> Changes {
        self.tracker.checkout_into(&mut self.state)
    }
}
