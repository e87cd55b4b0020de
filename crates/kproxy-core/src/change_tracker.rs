//! `ChangeTracker`: the Service, EndpointSlice and Node trackers of both IP families and the
//! ServiceCIDRs behind one API object interface, and their checkout into a [`ProxyState`].

use std::collections::HashSet;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use crate::convert::{EndpointSliceInfo, LABEL_SERVICE_NAME, NodeInfo, ServiceInfo};
use crate::endpoints_change_tracker::EndpointsChangeTracker;
use crate::error::ConversionError;
use crate::local_node::LocalNode;
use crate::names::{IpFamily, NamespacedName};
use crate::proxy_state::{Changes, ProxyState};
use crate::service_change_tracker::ServiceChangeTracker;
use crate::service_cidrs::ServiceCidrs;

/// A slice as a relist knows it: its Service and its own name.
pub type SliceKey = (NamespacedName, String);

/// The key of `slice`, when it names its Service.
pub fn slice_key(slice: &EndpointSlice) -> Option<SliceKey> {
    let name = crate::convert::object_name(&slice.metadata);
    let service = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    Some((NamespacedName::new(name.namespace, service.clone()), name.name))
}

/// Folds API events into pending changes until the next sync checks them out.
///
/// Every `on_*` method returns whether changes are pending. A malformed object yields a
/// [`ConversionError`] and changes nothing: the object's previous state stays in force.
#[derive(Debug)]
pub struct ChangeTracker {
    services: [ServiceChangeTracker; 2],
    endpoints: [EndpointsChangeTracker; 2],
    node: NodeInfo,
    node_changed: bool,
    service_cidrs: ServiceCidrs,
    service_cidrs_changed: bool,
    needs_full_sync: bool,
}

impl ChangeTracker {
    /// Trackers for node `node_name`; trigger times before `start_time` are ignored.
    pub fn new(node_name: &str, start_time: SystemTime) -> Self {
        Self {
            services: IpFamily::ALL.map(ServiceChangeTracker::new),
            endpoints: IpFamily::ALL.map(|f| EndpointsChangeTracker::new(f, node_name, start_time)),
            node: NodeInfo::named(node_name),
            node_changed: false,
            service_cidrs: ServiceCidrs::default(),
            service_cidrs_changed: false,
            needs_full_sync: true,
        }
    }

    /// A Service was added or updated.
    pub fn on_service_update(&mut self, service: &Service) -> Result<bool, ConversionError> {
        let info = ServiceInfo::from_service(service)?;
        let name = crate::convert::object_name(&service.metadata);
        for tracker in &mut self.services {
            tracker.update(&name, info.as_ref());
        }
        Ok(self.pending())
    }

    /// A Service was deleted.
    pub fn on_service_delete(&mut self, name: &NamespacedName) -> bool {
        for tracker in &mut self.services {
            tracker.update(name, None);
        }
        self.pending()
    }

    /// A relist: `services` is the complete set. Services not in it are deleted; every
    /// malformed one is returned and keeps its previous state.
    pub fn on_services_reset(&mut self, services: &[Service]) -> Vec<ConversionError> {
        self.on_services_relisted(services, &[])
    }

    /// A relist as [`on_services_reset`](Self::on_services_reset), where the Services named in
    /// `kept` were listed but could not be read (they keep their previous state).
    pub fn on_services_relisted(&mut self, services: &[Service], kept: &[NamespacedName]) -> Vec<ConversionError> {
        let listed: HashSet<NamespacedName> =
            services.iter().map(|s| crate::convert::object_name(&s.metadata)).chain(kept.iter().cloned()).collect();
        self.on_services_relist_end(&listed);
        services.iter().filter_map(|s| self.on_service_update(s).err()).collect()
    }

    /// The end of a relist whose Services came one by one through
    /// [`on_service_update`](Self::on_service_update): every Service not `listed` (by name,
    /// those that could not be read included) is deleted.
    pub fn on_services_relist_end(&mut self, listed: &HashSet<NamespacedName>) -> bool {
        let gone: Vec<NamespacedName> =
            self.services.iter().flat_map(|t| t.known_services()).filter(|n| !listed.contains(*n)).cloned().collect();
        for name in gone {
            self.on_service_delete(&name);
        }
        self.pending()
    }

    /// An EndpointSlice was added or updated.
    /// A slice that is not for proxies (FQDN, headless, no Service label) counts as deleted,
    /// as upstream's informer would stop delivering it.
    pub fn on_slice_update(&mut self, slice: &EndpointSlice) -> Result<bool, ConversionError> {
        match EndpointSliceInfo::from_slice(slice)? {
            Some(info) => {
                for tracker in &mut self.endpoints {
                    tracker.update(&info);
                }
            }
            None => {
                self.on_slice_delete(slice);
            }
        }
        Ok(self.pending())
    }

    /// An EndpointSlice was deleted.
    pub fn on_slice_delete(&mut self, slice: &EndpointSlice) -> bool {
        let name = crate::convert::object_name(&slice.metadata);
        let labels = slice.metadata.labels.as_ref();
        if let Some(service) = labels.and_then(|l| l.get(LABEL_SERVICE_NAME)) {
            let service = NamespacedName::new(name.namespace, service.clone());
            for tracker in &mut self.endpoints {
                tracker.delete(&service, &name.name);
            }
        }
        self.pending()
    }

    /// A relist: `slices` is the complete set. Slices not in it are deleted; every
    /// malformed one is returned and keeps its previous state.
    pub fn on_slices_reset(&mut self, slices: &[EndpointSlice]) -> Vec<ConversionError> {
        self.on_slices_relisted(slices, &[])
    }

    /// A relist as [`on_slices_reset`](Self::on_slices_reset), where the slices named in
    /// `kept` (namespace and slice name) were listed but could not be read (they keep their
    /// previous state).
    pub fn on_slices_relisted(&mut self, slices: &[EndpointSlice], kept: &[NamespacedName]) -> Vec<ConversionError> {
        let listed: HashSet<SliceKey> = slices.iter().filter_map(slice_key).collect();
        self.on_slices_relist_end(&listed, kept);
        slices.iter().filter_map(|s| self.on_slice_update(s).err()).collect()
    }

    /// The end of a relist whose slices came one by one through
    /// [`on_slice_update`](Self::on_slice_update): every slice neither `listed` nor named in
    /// `kept` (listed, but it could not be read) is deleted.
    pub fn on_slices_relist_end(&mut self, listed: &HashSet<SliceKey>, kept: &[NamespacedName]) -> bool {
        for tracker in &mut self.endpoints {
            for (service, slice_name) in tracker.known_slices() {
                let unreadable = kept.iter().any(|k| k.namespace == service.namespace && k.name == slice_name);
                if !unreadable && !listed.contains(&(service.clone(), slice_name.clone())) {
                    tracker.delete(&service, &slice_name);
                }
            }
        }
        self.pending()
    }

    /// This node's object was added or updated. A change of what the proxy uses of it
    /// (labels for topology, addresses, pod CIDRs) asks for a full sync.
    pub fn on_node_update(&mut self, node: &Node) -> Result<bool, ConversionError> {
        let info = NodeInfo::from_node(node)?;
        if info != self.node {
            self.needs_full_sync = true;
            self.node = info;
            self.node_changed = true;
        }
        Ok(self.pending())
    }

    /// A ServiceCIDR was added or updated. A change of the service CIDRs (the union over
    /// every ServiceCIDR) asks for a full sync.
    pub fn on_service_cidr_update(&mut self, object: &ServiceCIDR) -> Result<bool, ConversionError> {
        let changed = self.service_cidrs.update(object)?;
        self.note_service_cidrs(changed);
        Ok(self.pending())
    }

    /// A ServiceCIDR (cluster-scoped: by name) was deleted.
    pub fn on_service_cidr_delete(&mut self, name: &str) -> bool {
        let changed = self.service_cidrs.delete(name);
        self.note_service_cidrs(changed);
        self.pending()
    }

    /// A relist: `objects` is the complete set of ServiceCIDRs; those named in `kept` were
    /// listed but could not be read (they keep their previous CIDRs). Every malformed one is
    /// returned and keeps its previous CIDRs.
    pub fn on_service_cidrs_relisted(
        &mut self,
        objects: &[ServiceCIDR],
        kept: &[NamespacedName],
    ) -> Vec<ConversionError> {
        let (changed, errors) = self.service_cidrs.relisted(objects, kept);
        self.note_service_cidrs(changed);
        errors
    }

    fn note_service_cidrs(&mut self, changed: bool) {
        if changed {
            self.service_cidrs_changed = true;
            self.needs_full_sync = true;
        }
    }

    /// Asks the next checkout for a full sync.
    pub fn request_full_sync(&mut self) {
        self.needs_full_sync = true;
    }

    /// Whether anything waits for a sync.
    pub fn pending(&self) -> bool {
        self.needs_full_sync
            || self.node_changed
            || self.service_cidrs_changed
            || self.services.iter().any(|t| t.pending() > 0)
            || self.endpoints.iter().any(|t| t.pending() > 0)
    }

    /// Pending Service changes, summed over families (`..._service_changes_pending`).
    pub fn service_changes_pending(&self) -> usize {
        self.services.iter().map(ServiceChangeTracker::pending).sum()
    }

    /// Pending endpoint changes, summed over families (`..._endpoint_changes_pending`).
    pub fn endpoint_changes_pending(&self) -> usize {
        self.endpoints.iter().map(EndpointsChangeTracker::pending).sum()
    }

    /// Applies every pending change to `state` and says what changed.
    pub fn checkout_into(&mut self, state: &mut ProxyState) -> Changes {
        let mut changes = Changes::default();
        if std::mem::take(&mut self.needs_full_sync) {
            changes.set_full();
        }
        if std::mem::take(&mut self.node_changed) {
            state.node = LocalNode::from(&self.node);
        }
        if std::mem::take(&mut self.service_cidrs_changed) {
            state.service_cidrs = self.service_cidrs.union();
        }
        for family in IpFamily::ALL {
            let service_changes = self.services[family.index()].checkout();
            let endpoint_changes = self.endpoints[family.index()].checkout();
            let view = state.family_mut(family);
            let out = changes.family_mut(family);
            out.service_ports = view.services.apply(&service_changes);
            let result = view.endpoints.apply(endpoint_changes.changes);
            out.service_ports.extend(result.changed_ports);
            out.stale_udp_endpoints = result.stale_udp_endpoints;
            out.trigger_times = endpoint_changes.trigger_times.into_values().flatten().collect();
        }
        changes
    }
}

#[cfg(test)]
#[path = "change_tracker_tests.rs"]
mod tests;
