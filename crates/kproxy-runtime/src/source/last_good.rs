//! [`LastGood`]: the last decoded state of every object one watcher delivered, as an
//! informer's store holds it. An object that later arrives undecodable is reported and
//! keeps that state: a relist presents it with its last good state, so the trackers
//! neither delete it nor change it.

use std::collections::HashMap;

use kproxy_core::{ConversionError, NamespacedName, ObjectKind};
use kube::Resource;

use super::ObjectEvent;
use super::lenient::{Lenient, Undecodable, object_name};

/// One step of a watch: a change, or the complete set after a (re)list.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Batch<T> {
    /// Added or updated.
    Apply(T),
    /// Deleted.
    Delete(T),
    /// Everything listed, from `Init` to `InitDone`.
    Relisted(Vec<T>),
}

/// The last decoded state of every object of one kind (a clone of each, as upstream's
/// informer cache keeps one).
#[derive(Debug)]
pub(crate) struct LastGood<K> {
    kind: ObjectKind,
    objects: HashMap<NamespacedName, K>,
}

impl<K: Resource<DynamicType = ()> + Clone + Default> LastGood<K> {
    /// An empty store of objects of `kind`.
    pub(crate) fn new(kind: ObjectKind) -> Self {
        Self { kind, objects: HashMap::new() }
    }

    /// Records `batch` and says what the trackers should hear of it.
    pub(crate) fn absorb(&mut self, batch: Batch<Lenient<K>>) -> ObjectEvent<K> {
        match batch {
            Batch::Apply(Lenient::Decoded(object)) => {
                self.objects.insert(self.key(object.meta()), object.clone());
                ObjectEvent::Apply(object)
            }
            Batch::Apply(Lenient::Undecodable(undecodable)) => ObjectEvent::Undecodable(self.error(&undecodable)),
            Batch::Delete(item) => {
                let last = self.objects.remove(&self.key(item.meta()));
                ObjectEvent::Delete(match item {
                    Lenient::Decoded(object) => object,
                    Lenient::Undecodable(undecodable) => last.unwrap_or_else(|| bare(*undecodable)),
                })
            }
            Batch::Relisted(items) => self.relisted(items),
        }
    }

    /// A relist: the store becomes what was listed, an undecodable object keeping its
    /// last good state (if it ever had one).
    fn relisted(&mut self, items: Vec<Lenient<K>>) -> ObjectEvent<K> {
        let mut previous = std::mem::take(&mut self.objects);
        let mut objects = Vec::with_capacity(items.len());
        let mut undecodable = Vec::new();
        for item in items {
            match item {
                Lenient::Decoded(object) => objects.push(object),
                Lenient::Undecodable(bad) => {
                    undecodable.push(self.error(&bad));
                    objects.extend(previous.remove(&self.key(&bad.metadata)));
                }
            }
        }
        self.objects = objects.iter().map(|o| (self.key(o.meta()), o.clone())).collect();
        ObjectEvent::Reset { objects, undecodable }
    }

    fn key(&self, meta: &kube::core::ObjectMeta) -> NamespacedName {
        object_name(self.kind, meta)
    }

    fn error(&self, undecodable: &Undecodable) -> ConversionError {
        let error = undecodable.error(self.kind);
        tracing::debug!(%error, message = %undecodable.message, "object does not decode");
        error
    }
}

/// An object of which only the metadata is known (to delete it by name and labels).
fn bare<K: Resource + Default>(undecodable: Undecodable) -> K {
    let mut object = K::default();
    *object.meta_mut() = undecodable.metadata;
    object
}

#[cfg(test)]
#[path = "last_good_tests.rs"]
mod tests;
