//! The object store: current objects, the global resourceVersion and the event history.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use super::kind::ResourceKind;
use super::selector::Filter;

/// Where an object lives: kind, namespace (empty for cluster-scoped kinds) and name.
type Key = (ResourceKind, String, String);

/// One write in the history, as watches replay it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The resourceVersion of the write.
    pub(crate) rv: u64,
    /// The kind of the written object.
    pub(crate) kind: ResourceKind,
    /// The object after the write; for deletes the last state, stamped with the delete's resourceVersion.
    pub(crate) object: Value,
    /// The object before the write, if it existed.
    pub(crate) old: Option<Value>,
    /// Whether the write deleted the object.
    pub(crate) deleted: bool,
}

/// The history a watch needs has been compacted away: answer 410 Gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired;

/// Objects, history and the resourceVersion counter, behind the server's lock.
#[derive(Debug)]
pub(crate) struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// Watches may start from this resourceVersion or later.
    compacted: u64,
    /// Events up to this resourceVersion were forgotten; open watches behind it expire.
    floor: u64,
    uids: u64,
}

impl Default for Store {
    fn default() -> Self {
        // Start at 1: resourceVersion "0" means "any" to list and watch requests.
        Store { rv: 1, objects: BTreeMap::new(), history: Vec::new(), compacted: 0, floor: 0, uids: 0 }
    }
}

impl Store {
    /// The current (latest) resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Creates or replaces an object, stamping its metadata; returns the new resourceVersion.
    pub(crate) fn upsert(&mut self, kind: ResourceKind, mut obj: Value) -> Result<u64, String> {
        let root = obj.as_object_mut().ok_or("the object is not a JSON object")?;
        root.insert("apiVersion".into(), kind.api_version().into());
        root.insert("kind".into(), kind.kind().into());
        let meta = metadata_mut(root)?;
        let key = key_of(kind, meta)?;
        let old = self.objects.get(&key).cloned();
        self.rv += 1;
        meta.insert("resourceVersion".into(), self.rv.to_string().into());
        let old_meta = old.as_ref().and_then(|o| o.get("metadata"));
        if !meta.contains_key("uid") {
            let uid = old_meta.and_then(|m| m.get("uid")).cloned().unwrap_or_else(|| self.next_uid().into());
            meta.insert("uid".into(), uid);
        }
        if !meta.contains_key("creationTimestamp") {
            let created = old_meta.and_then(|m| m.get("creationTimestamp")).cloned().unwrap_or_else(now);
            meta.insert("creationTimestamp".into(), created);
        }
        self.objects.insert(key, obj.clone());
        self.history.push(Change { rv: self.rv, kind, object: obj, old, deleted: false });
        Ok(self.rv)
    }

    /// Deletes an object; returns the new resourceVersion, or `None` if there was no such object.
    pub(crate) fn delete(&mut self, kind: ResourceKind, namespace: &str, name: &str) -> Option<u64> {
        let namespace = if kind.namespaced() { namespace } else { "" };
        let old = self.objects.remove(&(kind, namespace.to_owned(), name.to_owned()))?;
        self.rv += 1;
        let mut object = old.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), self.rv.to_string().into());
        }
        self.history.push(Change { rv: self.rv, kind, object, old: Some(old), deleted: true });
        Some(self.rv)
    }

    /// Forgets the history: watches starting from any resourceVersion handed out so far expire.
    ///
    /// Bumps the resourceVersion so that lists made afterwards return one that can be watched.
    pub(crate) fn compact(&mut self) -> u64 {
        self.floor = self.rv;
        self.history.clear();
        self.rv += 1;
        self.compacted = self.rv;
        self.rv
    }

    /// The current objects of `kind` that pass `filter`, in namespace/name order.
    pub(crate) fn list(&self, kind: ResourceKind, filter: &Filter) -> Vec<Value> {
        self.list_page(kind, filter, None, usize::MAX).0
    }

    /// Up to `limit` objects of `kind` matching `filter` after the one named `after`
    /// (`namespace`, `name`), in key order, and whether more follow. Only the page is
    /// copied: listing 50k objects 500 at a time must not copy all of them per page.
    pub(crate) fn list_page(
        &self,
        kind: ResourceKind,
        filter: &Filter,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> (Vec<Value>, bool) {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let start = match after {
            Some((namespace, name)) => Excluded((kind, namespace.clone(), name.clone())),
            None => Included((kind, String::new(), String::new())),
        };
        let mut matching = self
            .objects
            .range((start, Unbounded))
            .take_while(|((k, _, _), _)| *k == kind)
            .filter(|(_, obj)| filter.matches(obj))
            .map(|(_, obj)| obj);
        let page: Vec<Value> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        (page, more)
    }

    /// One object, if it exists.
    pub(crate) fn get(&self, kind: ResourceKind, namespace: &str, name: &str) -> Option<&Value> {
        let namespace = if kind.namespaced() { namespace } else { "" };
        self.objects.get(&(kind, namespace.to_owned(), name.to_owned()))
    }

    /// Checks that a watch may start from `rv`.
    pub(crate) fn check_watch_start(&self, rv: u64) -> Result<(), Expired> {
        if rv < self.compacted { Err(Expired) } else { Ok(()) }
    }

    /// The changes after `cursor`, oldest first; `Expired` if some of them were forgotten.
    pub(crate) fn changes_after(&self, cursor: u64) -> Result<&[Change], Expired> {
        if cursor < self.floor {
            return Err(Expired);
        }
        let start = self.history.partition_point(|c| c.rv <= cursor);
        Ok(&self.history[start..])
    }

    fn next_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids)
    }
}

/// `metadata` of an object, created if absent.
fn metadata_mut(root: &mut Map<String, Value>) -> Result<&mut Map<String, Value>, String> {
    root.entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| "metadata is not a JSON object".to_owned())
}

/// The store key of an object; defaults (and writes back) namespace `default` for namespaced kinds.
fn key_of(kind: ResourceKind, meta: &mut Map<String, Value>) -> Result<Key, String> {
    let name = meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or("metadata.name is missing")?;
    let name = name.to_owned();
    if !kind.namespaced() {
        return Ok((kind, String::new(), name));
    }
    let ns = meta.get("namespace").and_then(Value::as_str).filter(|n| !n.is_empty()).unwrap_or("default").to_owned();
    meta.insert("namespace".into(), ns.clone().into());
    Ok((kind, ns, name))
}

fn now() -> Value {
    Timestamp::from_second(Timestamp::now().as_second()).map(|t| t.to_string()).unwrap_or_default().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Expired, ResourceKind, Store};

    #[test]
    fn writes_stamp_metadata_and_bump_the_version() {
        let mut store = Store::default();
        let rv = store.upsert(ResourceKind::Service, json!({"metadata": {"name": "a"}}));
        assert_eq!(rv, Ok(2));
        let obj = store.get(ResourceKind::Service, "default", "a").cloned().unwrap_or_default();
        assert_eq!(obj["metadata"]["resourceVersion"], "2");
        assert_eq!(obj["kind"], "Service");
        let uid = obj["metadata"]["uid"].clone();
        assert!(uid.is_string());
        assert_eq!(store.upsert(ResourceKind::Service, json!({"metadata": {"name": "a"}})), Ok(3));
        let obj = store.get(ResourceKind::Service, "default", "a").cloned().unwrap_or_default();
        assert_eq!(obj["metadata"]["uid"], uid);
        assert!(store.upsert(ResourceKind::Service, json!({"metadata": {}})).is_err());
        assert_eq!(store.delete(ResourceKind::Service, "default", "a"), Some(4));
        assert_eq!(store.delete(ResourceKind::Service, "default", "a"), None);
    }

    #[test]
    fn compaction_expires_old_versions() {
        let mut store = Store::default();
        let _ = store.upsert(ResourceKind::Node, json!({"metadata": {"name": "n"}}));
        assert_eq!(store.changes_after(1).map(<[_]>::len), Ok(1));
        let rv = store.compact();
        assert_eq!(store.check_watch_start(rv - 1), Err(Expired));
        assert_eq!(store.check_watch_start(rv), Ok(()));
        assert_eq!(store.changes_after(1).map(<[_]>::len), Err(Expired));
        assert_eq!(store.changes_after(rv - 1).map(<[_]>::len), Ok(0));
    }
}
