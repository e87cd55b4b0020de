//! Folding source events into the tracker: malformed objects are reported once each while
//! they stay malformed, and the initial lists are counted in.

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::relist::{self, Piece, Relists};
use crate::change_tracker::ChangeTracker;
use crate::convert::object_name as name;
use crate::convert::service_cidr_name;
use crate::error::{ConversionError, ObjectKind};
use crate::event::{ObjectEvent, SourceEvent};
use crate::names::NamespacedName;

/// An object of an event that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Why; the object keeps its previous state.
    pub error: ConversionError,
    /// This error of this object is new: log and count it. `false` when an earlier event
    /// reported the same error of the same object and it has lasted since.
    pub first_report: bool,
}

/// Which initial lists have arrived.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct InitialLists {
    pub(super) services: bool,
    pub(super) slices: bool,
    node: bool,
}

impl InitialLists {
    /// Every initial list (Services, EndpointSlices, this Node) has arrived.
    pub(super) fn complete(self) -> bool {
        self.services && self.slices && self.node
    }
}

/// The malformed objects reported, with the error each was reported with.
#[derive(Debug, Default)]
pub(super) struct Reports {
    reported: HashMap<(ObjectKind, NamespacedName), ConversionError>,
}

/// What became of the objects of one event.
pub(super) enum Outcome {
    Good(NamespacedName),
    Gone(NamespacedName),
    Bad(ConversionError),
    Reset(Vec<ConversionError>),
}

/// The objects of `errors`: listed, but unreadable, so they keep their previous state.
fn names_of(errors: &[ConversionError]) -> Vec<NamespacedName> {
    errors.iter().map(|e| e.object.clone()).collect()
}

/// What `event` says of this node's eligibility for load-balancer traffic, if anything.
pub(super) fn node_eligibility(event: &SourceEvent) -> Option<bool> {
    match event {
        SourceEvent::Node(ObjectEvent::Apply(node)) => Some(crate::convert::node_eligible(node)),
        SourceEvent::Node(ObjectEvent::Reset { objects, .. } | ObjectEvent::Listed { objects, .. }) => {
            objects.first().map(crate::convert::node_eligible)
        }
        SourceEvent::Node(ObjectEvent::Delete(_)) => Some(false),
        _ => None,
    }
}

/// Applies `event` to `tracker`; returns the kind it is about and what became of its
/// objects (`None`: nothing to report).
pub(super) fn fold(
    tracker: &mut ChangeTracker,
    lists: &mut InitialLists,
    relists: &mut Relists,
    event: SourceEvent,
) -> Option<(ObjectKind, Outcome)> {
    let event = match relist::take(relists, tracker, lists, event) {
        Piece::Event(event) => event,
        Piece::Folded => return None,
        Piece::Ended(kind, outcome) => return Some((kind, outcome)),
    };
    let kind = event.kind();
    let outcome = match event {
        SourceEvent::Service(ObjectEvent::Apply(svc)) => {
            Outcome::of(name(&svc.metadata), tracker.on_service_update(&svc))
        }
        SourceEvent::Service(ObjectEvent::Delete(svc)) => {
            tracker.on_service_delete(&name(&svc.metadata));
            Outcome::Gone(name(&svc.metadata))
        }
        SourceEvent::Service(ObjectEvent::Reset { objects, undecodable }) => {
            lists.services = true;
            Outcome::reset(tracker.on_services_relisted(&objects, &names_of(&undecodable)), undecodable)
        }
        SourceEvent::EndpointSlice(ObjectEvent::Apply(slice)) => {
            Outcome::of(name(&slice.metadata), tracker.on_slice_update(&slice))
        }
        SourceEvent::EndpointSlice(ObjectEvent::Delete(slice)) => {
            tracker.on_slice_delete(&slice);
            Outcome::Gone(name(&slice.metadata))
        }
        SourceEvent::EndpointSlice(ObjectEvent::Reset { objects, undecodable }) => {
            lists.slices = true;
            Outcome::reset(tracker.on_slices_relisted(&objects, &names_of(&undecodable)), undecodable)
        }
        SourceEvent::Node(ObjectEvent::Apply(node)) => {
            Outcome::of(node_name(&node.metadata), tracker.on_node_update(&node))
        }
        // This node's object going away changes nothing we program; keep its last state.
        SourceEvent::Node(ObjectEvent::Delete(_)) => return None,
        SourceEvent::Node(ObjectEvent::Reset { objects, undecodable }) => {
            lists.node = true;
            let errors = objects.iter().filter_map(|n| tracker.on_node_update(n).err()).collect();
            Outcome::reset(errors, undecodable)
        }
        SourceEvent::ServiceCidr(ObjectEvent::Apply(object)) => {
            Outcome::of(service_cidr_name(&object), tracker.on_service_cidr_update(&object))
        }
        SourceEvent::ServiceCidr(ObjectEvent::Delete(object)) => {
            let name = service_cidr_name(&object);
            tracker.on_service_cidr_delete(&name.name);
            Outcome::Gone(name)
        }
        // Not an initial list the first sync waits for: upstream programs without
        // ServiceCIDRs (older apiservers serve none) and adds the drop rule once they come.
        SourceEvent::ServiceCidr(ObjectEvent::Reset { objects, undecodable }) => {
            Outcome::reset(tracker.on_service_cidrs_relisted(&objects, &names_of(&undecodable)), undecodable)
        }
        // Pieces of relists were taken above.
        SourceEvent::Service(ObjectEvent::ListStart | ObjectEvent::Listed { .. } | ObjectEvent::ListEnd)
        | SourceEvent::EndpointSlice(ObjectEvent::ListStart | ObjectEvent::Listed { .. } | ObjectEvent::ListEnd)
        | SourceEvent::Node(ObjectEvent::ListStart | ObjectEvent::Listed { .. } | ObjectEvent::ListEnd)
        | SourceEvent::ServiceCidr(ObjectEvent::ListStart | ObjectEvent::Listed { .. } | ObjectEvent::ListEnd) => {
            return None;
        }
        // The tracker keeps the object's previous state: it hears nothing.
        SourceEvent::Service(ObjectEvent::Undecodable(error))
        | SourceEvent::EndpointSlice(ObjectEvent::Undecodable(error))
        | SourceEvent::Node(ObjectEvent::Undecodable(error))
        | SourceEvent::ServiceCidr(ObjectEvent::Undecodable(error)) => Outcome::Bad(error),
    };
    Some((kind, outcome))
}

impl Reports {
    /// Records what became of an event's objects; returns its malformed ones.
    pub(super) fn record(&mut self, kind: ObjectKind, outcome: Outcome) -> Vec<Malformed> {
        match outcome {
            Outcome::Good(name) | Outcome::Gone(name) => {
                self.reported.remove(&(kind, name));
                Vec::new()
            }
            Outcome::Bad(error) => vec![self.report(error)],
            Outcome::Reset(errors) => {
                let bad: HashSet<&NamespacedName> = errors.iter().map(|e| &e.object).collect();
                self.reported.retain(|(k, n), _| *k != kind || bad.contains(n));
                errors.into_iter().map(|e| self.report(e)).collect()
            }
        }
    }

    /// `error`, noting whether this object was reported with the same error before.
    fn report(&mut self, error: ConversionError) -> Malformed {
        let key = (error.kind, error.object.clone());
        let first_report = self.reported.get(&key) != Some(&error);
        if first_report {
            self.reported.insert(key, error.clone());
        }
        Malformed { error, first_report }
    }
}

impl Outcome {
    /// A relist's errors: the conversion errors, and the objects that did not decode (whose
    /// last good state, listed in their place, may fail to convert too: the decoding error
    /// is the one reported).
    pub(super) fn reset(conversion: Vec<ConversionError>, undecodable: Vec<ConversionError>) -> Self {
        let names: HashSet<NamespacedName> = undecodable.iter().map(|e| e.object.clone()).collect();
        Self::Reset(conversion.into_iter().filter(|e| !names.contains(&e.object)).chain(undecodable).collect())
    }

    fn of(name: NamespacedName, result: Result<bool, ConversionError>) -> Self {
        match result {
            Ok(_) => Self::Good(name),
            Err(e) => Self::Bad(e),
        }
    }
}

fn node_name(meta: &ObjectMeta) -> NamespacedName {
    NamespacedName::new("", meta.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
