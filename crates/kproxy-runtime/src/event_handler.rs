//! `EventHandler`: feeds source events into the [`ChangeTracker`], reports malformed objects
//! (those that do not convert, and those the source could not even decode) once each, and
//! knows when every initial list has arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kproxy_core::{ChangeTracker, ConversionError, NamespacedName, ObjectKind};

use crate::source::{ObjectEvent, SourceEvent};

/// Called once for every newly reported malformed object (e.g. to count it in a metric).
pub type MalformedHook = Box<dyn Fn(&ConversionError) + Send>;

/// Applies [`SourceEvent`]s to a shared [`ChangeTracker`].
pub struct EventHandler {
    tracker: Arc<Mutex<ChangeTracker>>,
    synced_services: bool,
    synced_slices: bool,
    synced_node: bool,
    reported: HashMap<(ObjectKind, NamespacedName), ConversionError>,
    on_malformed: MalformedHook,
}

impl EventHandler {
    /// A handler for `tracker`; `on_malformed` hears of each malformed object once.
    pub fn new(tracker: Arc<Mutex<ChangeTracker>>, on_malformed: MalformedHook) -> Self {
        Self {
            tracker,
            synced_services: false,
            synced_slices: false,
            synced_node: false,
            reported: HashMap::new(),
            on_malformed,
        }
    }

    /// Every initial list (Services, EndpointSlices, this Node) has arrived.
    pub fn initialized(&self) -> bool {
        self.synced_services && self.synced_slices && self.synced_node
    }

    /// Applies one event; returns whether a sync should be requested (initialized, and
    /// something is pending).
    pub fn handle(&mut self, event: SourceEvent) -> bool {
        let tracker = Arc::clone(&self.tracker);
        let errors = self.apply(&mut tracker.lock().unwrap_or_else(PoisonError::into_inner), event);
        for (kind, outcome) in errors {
            self.record(kind, outcome);
        }
        let pending = self.tracker.lock().unwrap_or_else(PoisonError::into_inner).pending();
        self.initialized() && pending
    }

    /// Applies `event`; returns, per object touched, its conversion outcome.
    fn apply(&mut self, tracker: &mut ChangeTracker, event: SourceEvent) -> Vec<(ObjectKind, Outcome)> {
        match event {
            SourceEvent::Service(ObjectEvent::Apply(svc)) => {
                vec![(ObjectKind::Service, Outcome::of(name(&svc.metadata), tracker.on_service_update(&svc)))]
            }
            SourceEvent::Service(ObjectEvent::Delete(svc)) => {
                tracker.on_service_delete(&name(&svc.metadata));
                vec![(ObjectKind::Service, Outcome::Gone(name(&svc.metadata)))]
            }
            SourceEvent::Service(ObjectEvent::Reset { objects, undecodable }) => {
                self.synced_services = true;
                let errors = tracker.on_services_reset(&objects);
                vec![(ObjectKind::Service, Outcome::reset(errors, undecodable))]
            }
            SourceEvent::EndpointSlice(ObjectEvent::Apply(slice)) => {
                let result = tracker.on_slice_update(&slice);
                vec![(ObjectKind::EndpointSlice, Outcome::of(name(&slice.metadata), result))]
            }
            SourceEvent::EndpointSlice(ObjectEvent::Delete(slice)) => {
                tracker.on_slice_delete(&slice);
                vec![(ObjectKind::EndpointSlice, Outcome::Gone(name(&slice.metadata)))]
            }
            SourceEvent::EndpointSlice(ObjectEvent::Reset { objects, undecodable }) => {
                self.synced_slices = true;
                vec![(ObjectKind::EndpointSlice, Outcome::reset(tracker.on_slices_reset(&objects), undecodable))]
            }
            SourceEvent::Node(ObjectEvent::Apply(node)) => {
                vec![(ObjectKind::Node, Outcome::of(node_name(&node), tracker.on_node_update(&node)))]
            }
            // This node's object going away changes nothing we program; keep its last state.
            SourceEvent::Node(ObjectEvent::Delete(_)) => Vec::new(),
            SourceEvent::Node(ObjectEvent::Reset { objects, undecodable }) => {
                self.synced_node = true;
                let errors = objects.iter().filter_map(|n| tracker.on_node_update(n).err()).collect();
                vec![(ObjectKind::Node, Outcome::reset(errors, undecodable))]
            }
            // The tracker keeps the object's previous state: it hears nothing.
            SourceEvent::Service(ObjectEvent::Undecodable(error))
            | SourceEvent::EndpointSlice(ObjectEvent::Undecodable(error))
            | SourceEvent::Node(ObjectEvent::Undecodable(error)) => vec![(error.kind, Outcome::Bad(error))],
        }
    }

    fn record(&mut self, kind: ObjectKind, outcome: Outcome) {
        match outcome {
            Outcome::Good(name) | Outcome::Gone(name) => {
                self.reported.remove(&(kind, name));
            }
            Outcome::Bad(error) => self.report(error),
            Outcome::Reset(errors) => {
                let bad: std::collections::HashSet<NamespacedName> = errors.iter().map(|e| e.object.clone()).collect();
                self.reported.retain(|(k, n), _| *k != kind || bad.contains(n));
                errors.into_iter().for_each(|e| self.report(e));
            }
        }
    }

    /// Logs and counts `error`, unless this object was already reported with the same error.
    fn report(&mut self, error: ConversionError) {
        let key = (error.kind, error.object.clone());
        if self.reported.get(&key) == Some(&error) {
            return;
        }
        tracing::error!(
            kind = %error.kind,
            namespace = ?error.object.namespace,
            name = ?error.object.name,
            field = %error.field,
            reason = %error.reason,
            "skipping malformed object"
        );
        (self.on_malformed)(&error);
        self.reported.insert(key, error);
    }
}

/// What became of one object.
enum Outcome {
    Good(NamespacedName),
    Gone(NamespacedName),
    Bad(ConversionError),
    Reset(Vec<ConversionError>),
}

impl Outcome {
    /// A relist's errors: the conversion errors, and the objects that did not decode (whose
    /// last good state, listed in their place, may fail to convert too: the decoding error
    /// is the one reported).
    fn reset(conversion: Vec<ConversionError>, undecodable: Vec<ConversionError>) -> Self {
        let names: std::collections::HashSet<NamespacedName> = undecodable.iter().map(|e| e.object.clone()).collect();
        Self::Reset(conversion.into_iter().filter(|e| !names.contains(&e.object)).chain(undecodable).collect())
    }

    fn of(name: NamespacedName, result: Result<bool, ConversionError>) -> Self {
        match result {
            Ok(_) => Self::Good(name),
            Err(e) => Self::Bad(e),
        }
    }
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> NamespacedName {
    NamespacedName::new(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
}

fn node_name(node: &k8s_openapi::api::core::v1::Node) -> NamespacedName {
    NamespacedName::new("", node.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
#[path = "event_handler_tests.rs"]
mod tests;
