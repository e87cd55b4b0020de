//! Relists that arrive in pieces ([`ObjectEvent::ListStart`], [`ObjectEvent::Listed`]…,
//! [`ObjectEvent::ListEnd`]). Services and EndpointSlices are folded into the tracker as
//! they come, so a large list is never held whole; what the relist did not list is deleted
//! at its end. The Node and ServiceCIDRs (a handful of objects) are gathered and folded as
//! one [`ObjectEvent::Reset`] at the end.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use super::fold::{InitialLists, Outcome};
use crate::change_tracker::{ChangeTracker, SliceKey, slice_key};
use crate::convert::object_name as name;
use crate::error::{ConversionError, ObjectKind};
use crate::event::{ObjectEvent, SourceEvent};
use crate::names::NamespacedName;

/// The relists in progress, per kind.
#[derive(Debug, Default)]
pub(super) struct Relists {
    services: Option<Streamed<NamespacedName>>,
    slices: Option<Streamed<SliceKey>>,
    node: Option<Gathered<Node>>,
    service_cidrs: Option<Gathered<ServiceCIDR>>,
}

/// A relist folded as it comes: what it listed, and what went wrong.
#[derive(Debug)]
struct Streamed<Key> {
    listed: HashSet<Key>,
    /// Listed but unreadable: they keep their previous state.
    kept: Vec<NamespacedName>,
    conversion: Vec<ConversionError>,
    undecodable: Vec<ConversionError>,
}

impl<Key> Default for Streamed<Key> {
    fn default() -> Self {
        Self { listed: HashSet::new(), kept: Vec::new(), conversion: Vec::new(), undecodable: Vec::new() }
    }
}

impl<Key> Streamed<Key> {
    fn unreadable(&mut self, undecodable: Vec<ConversionError>) {
        self.kept.extend(undecodable.iter().map(|e| e.object.clone()));
        self.undecodable.extend(undecodable);
    }

    fn outcome(self) -> Outcome {
        Outcome::reset(self.conversion, self.undecodable)
    }
}

/// A relist gathered whole.
#[derive(Debug)]
struct Gathered<K> {
    objects: Vec<K>,
    undecodable: Vec<ConversionError>,
}

impl<K> Default for Gathered<K> {
    fn default() -> Self {
        Self { objects: Vec::new(), undecodable: Vec::new() }
    }
}

impl<K> Gathered<K> {
    fn add(&mut self, objects: Vec<K>, undecodable: Vec<ConversionError>) {
        self.objects.extend(objects);
        self.undecodable.extend(undecodable);
    }

    fn into_reset(self) -> ObjectEvent<K> {
        ObjectEvent::Reset { objects: self.objects, undecodable: self.undecodable }
    }
}

/// What became of an event after the relists took their part.
#[expect(clippy::large_enum_variant, reason = "moved once, straight into the fold; boxing buys nothing")]
pub(super) enum Piece {
    /// Not a piece of a relist (or a gathered relist's end, turned into its reset).
    Event(SourceEvent),
    /// A piece folded in; nothing to report yet.
    Folded,
    /// A streamed relist ended: what became of its objects.
    Ended(ObjectKind, Outcome),
}

/// Takes `event` into the relist it belongs to, if it is a piece of one.
pub(super) fn take(
    relists: &mut Relists,
    tracker: &mut ChangeTracker,
    lists: &mut InitialLists,
    event: SourceEvent,
) -> Piece {
    match event {
        SourceEvent::Service(event) => services(relists, tracker, lists, event),
        SourceEvent::EndpointSlice(event) => slices(relists, tracker, lists, event),
        SourceEvent::Node(event) => gather(&mut relists.node, event, SourceEvent::Node),
        SourceEvent::ServiceCidr(event) => gather(&mut relists.service_cidrs, event, SourceEvent::ServiceCidr),
    }
}

fn services(
    relists: &mut Relists,
    tracker: &mut ChangeTracker,
    lists: &mut InitialLists,
    event: ObjectEvent<k8s_openapi::api::core::v1::Service>,
) -> Piece {
    match event {
        ObjectEvent::ListStart => relists.services = Some(Streamed::default()),
        ObjectEvent::Listed { objects, undecodable } => {
            let relist = relists.services.get_or_insert_with(Streamed::default);
            for service in objects {
                relist.listed.insert(name(&service.metadata));
                if let Err(error) = tracker.on_service_update(&service) {
                    relist.conversion.push(error);
                }
            }
            relist.listed.extend(undecodable.iter().map(|e| e.object.clone()));
            relist.unreadable(undecodable);
        }
        ObjectEvent::ListEnd => {
            let relist = relists.services.take().unwrap_or_default();
            tracker.on_services_relist_end(&relist.listed);
            lists.services = true;
            return Piece::Ended(ObjectKind::Service, relist.outcome());
        }
        other => return Piece::Event(SourceEvent::Service(other)),
    }
    Piece::Folded
}

fn slices(
    relists: &mut Relists,
    tracker: &mut ChangeTracker,
    lists: &mut InitialLists,
    event: ObjectEvent<k8s_openapi::api::discovery::v1::EndpointSlice>,
) -> Piece {
    match event {
        ObjectEvent::ListStart => relists.slices = Some(Streamed::default()),
        ObjectEvent::Listed { objects, undecodable } => {
            let relist = relists.slices.get_or_insert_with(Streamed::default);
            for slice in objects {
                relist.listed.extend(slice_key(&slice));
                if let Err(error) = tracker.on_slice_update(&slice) {
                    relist.conversion.push(error);
                }
            }
            relist.unreadable(undecodable);
        }
        ObjectEvent::ListEnd => {
            let relist = relists.slices.take().unwrap_or_default();
            tracker.on_slices_relist_end(&relist.listed, &relist.kept);
            lists.slices = true;
            return Piece::Ended(ObjectKind::EndpointSlice, relist.outcome());
        }
        other => return Piece::Event(SourceEvent::EndpointSlice(other)),
    }
    Piece::Folded
}

fn gather<K>(slot: &mut Option<Gathered<K>>, event: ObjectEvent<K>, wrap: fn(ObjectEvent<K>) -> SourceEvent) -> Piece {
    match event {
        ObjectEvent::ListStart => *slot = Some(Gathered::default()),
        ObjectEvent::Listed { objects, undecodable } => {
            slot.get_or_insert_with(Gathered::default).add(objects, undecodable);
        }
        ObjectEvent::ListEnd => return Piece::Event(wrap(slot.take().unwrap_or_default().into_reset())),
        other => return Piece::Event(wrap(other)),
    }
    Piece::Folded
}
