//! [`to_event`]: what the trackers hear of one watcher step whose objects may not decode.
//! Nothing is stored here: an undecodable object in a relist is named in its piece's
//! `undecodable` list, and the trackers keep that object's previous state (as they do for
//! one that decodes but fails conversion), so no copy of every object is kept around.

use kproxy_core::{ConversionError, ObjectKind};
use kube::Resource;

use super::ObjectEvent;
use super::lenient::{Lenient, Undecodable};

/// One step of a watch: a change, or a piece of a (re)list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Batch<T> {
    /// Added or updated.
    Apply(T),
    /// Deleted.
    Delete(T),
    /// A relist begins (`Init`).
    ListStart,
    /// Objects of the relist in progress (`InitApply`…).
    Listed(Vec<T>),
    /// The relist is complete (`InitDone`).
    ListEnd,
}

/// The event the trackers hear of `batch`, a step of a watch of objects of `kind`.
pub(crate) fn to_event<K: Resource<DynamicType = ()> + Default>(
    kind: ObjectKind,
    batch: Batch<Lenient<K>>,
) -> ObjectEvent<K> {
    match batch {
        Batch::Apply(Lenient::Decoded(object)) => ObjectEvent::Apply(object),
        Batch::Apply(Lenient::Undecodable(undecodable)) => ObjectEvent::Undecodable(error(kind, &undecodable)),
        Batch::Delete(Lenient::Decoded(object)) => ObjectEvent::Delete(object),
        // Deleted by name (and labels, which tie a slice to its Service).
        Batch::Delete(Lenient::Undecodable(undecodable)) => ObjectEvent::Delete(bare(*undecodable)),
        Batch::ListStart => ObjectEvent::ListStart,
        Batch::ListEnd => ObjectEvent::ListEnd,
        Batch::Listed(items) => {
            let mut objects = Vec::with_capacity(items.len());
            let mut undecodable = Vec::new();
            for item in items {
                match item {
                    Lenient::Decoded(object) => objects.push(object),
                    Lenient::Undecodable(bad) => undecodable.push(error(kind, &bad)),
                }
            }
            ObjectEvent::Listed { objects, undecodable }
        }
    }
}

fn error(kind: ObjectKind, undecodable: &Undecodable) -> ConversionError {
    let error = undecodable.error(kind);
    tracing::debug!(%error, message = %undecodable.message, "object does not decode");
    error
}

/// An object of which only the metadata is known (to delete it by name and labels).
fn bare<K: Resource + Default>(undecodable: Undecodable) -> K {
    let mut object = K::default();
    *object.meta_mut() = undecodable.metadata;
    object
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
