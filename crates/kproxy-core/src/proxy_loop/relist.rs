//! Relists that arrive in pieces ([`ObjectEvent::ListStart`], [`ObjectEvent::Listed`]…,
//! [`ObjectEvent::ListEnd`]). Services and EndpointSlices are folded into the tracker as
//! they come, so a large list is never held whole; what the relist did not list is deleted
//! at its end. The Node and ServiceCIDRs (a handful of objects) are gathered and folded as
//! one [`ObjectEvent::Reset`] at the end.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
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
        SourceEvent::Service(event) => streamed(relists, tracker, lists, event),
        SourceEvent::EndpointSlice(event) => streamed(relists, tracker, lists, event),
        SourceEvent::Node(event) => gather(&mut relists.node, event, SourceEvent::Node),
        SourceEvent::ServiceCidr(event) => gather(&mut relists.service_cidrs, event, SourceEvent::ServiceCidr),
    }
}

/// A kind whose relists are folded into the tracker as they come.
trait StreamedKind: Sized {
    /// What a relist remembers of each object it listed.
    type Key;
    const KIND: ObjectKind;
    fn relist(relists: &mut Relists) -> &mut Option<Streamed<Self::Key>>;
    /// Folds one listed object into the tracker, noting its keys in `listed`.
    fn fold(tracker: &mut ChangeTracker, object: &Self, listed: &mut HashSet<Self::Key>)
    -> Result<(), ConversionError>;
    /// Deletes what `relist` did not list (nor could read).
    fn end(tracker: &mut ChangeTracker, relist: &mut Streamed<Self::Key>);
    fn mark_listed(lists: &mut InitialLists);
    fn wrap(event: ObjectEvent<Self>) -> SourceEvent;
}

impl StreamedKind for Service {
    type Key = NamespacedName;
    const KIND: ObjectKind = ObjectKind::Service;

    fn relist(relists: &mut Relists) -> &mut Option<Streamed<NamespacedName>> {
        &mut relists.services
    }

    fn fold(
        tracker: &mut ChangeTracker,
        service: &Service,
        listed: &mut HashSet<NamespacedName>,
    ) -> Result<(), ConversionError> {
        listed.insert(name(&service.metadata));
        tracker.on_service_update(service).map(drop)
    }

    fn end(tracker: &mut ChangeTracker, relist: &mut Streamed<NamespacedName>) {
        relist.listed.extend(relist.kept.iter().cloned());
        tracker.on_services_relist_end(&relist.listed);
    }

    fn mark_listed(lists: &mut InitialLists) {
        lists.services = true;
    }

    fn wrap(event: ObjectEvent<Service>) -> SourceEvent {
        SourceEvent::Service(event)
    }
}

impl StreamedKind for EndpointSlice {
    type Key = SliceKey;
    const KIND: ObjectKind = ObjectKind::EndpointSlice;

    fn relist(relists: &mut Relists) -> &mut Option<Streamed<SliceKey>> {
        &mut relists.slices
    }

    fn fold(
        tracker: &mut ChangeTracker,
        slice: &EndpointSlice,
        listed: &mut HashSet<SliceKey>,
    ) -> Result<(), ConversionError> {
        listed.extend(slice_key(slice));
        tracker.on_slice_update(slice).map(drop)
    }

    fn end(tracker: &mut ChangeTracker, relist: &mut Streamed<SliceKey>) {
        tracker.on_slices_relist_end(&relist.listed, &relist.kept);
    }

    fn mark_listed(lists: &mut InitialLists) {
        lists.slices = true;
    }

    fn wrap(event: ObjectEvent<EndpointSlice>) -> SourceEvent {
        SourceEvent::EndpointSlice(event)
    }
}

fn streamed<K: StreamedKind>(
    relists: &mut Relists,
    tracker: &mut ChangeTracker,
    lists: &mut InitialLists,
    event: ObjectEvent<K>,
) -> Piece {
    match event {
        ObjectEvent::ListStart => *K::relist(relists) = Some(Streamed::default()),
        ObjectEvent::Listed { objects, undecodable } => {
            let relist = K::relist(relists).get_or_insert_with(Streamed::default);
            for object in objects {
                if let Err(error) = K::fold(tracker, &object, &mut relist.listed) {
                    relist.conversion.push(error);
                }
            }
            relist.unreadable(undecodable);
        }
        ObjectEvent::ListEnd => {
            let mut relist = K::relist(relists).take().unwrap_or_default();
            K::end(tracker, &mut relist);
            K::mark_listed(lists);
            return Piece::Ended(K::KIND, relist.outcome());
        }
        other => return Piece::Event(K::wrap(other)),
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
