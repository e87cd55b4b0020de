//! [`Lenient`]: an object of a known kind that decodes from any JSON object, so that one
//! object with a field of the wrong type never fails a whole list or watch.
//!
//! Upstream's reflector fails the whole list when one item does not decode, and relists
//! with backoff until the object is fixed: nothing new is programmed meanwhile. kproxy
//! decodes every item on its own instead and skips the one that does not fit, like an
//! object that decodes but cannot be converted.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kproxy_core::{ConversionError, Invalid, NamespacedName, ObjectKind};
use kube::Resource;
use serde::de::{Deserialize, DeserializeOwned, Deserializer};
use serde_json::Value;
use serde_path_to_error::Segment;

/// The longest offending value quoted in a report.
const MAX_QUOTED: usize = 64;

/// An object of kind `K` as the apiserver sent it: decoded, or what could be read of it.
///
/// It is a [`Resource`] of `K`'s kind, so `kube`'s watcher lists and watches it as it
/// would `K`, with the metadata (resourceVersion included) that could be read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lenient<K> {
    /// The object fits `K`.
    Decoded(K),
    /// The object does not fit `K` (boxed: it is rare, and would make every `Lenient` large).
    Undecodable(Box<Undecodable>),
}

/// An object that does not fit its kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Undecodable {
    /// What could be read of its metadata (name, namespace, resourceVersion, labels…).
    pub(crate) metadata: ObjectMeta,
    /// The path of the first offending field, e.g. `spec.ports[0].port`.
    pub(crate) field: String,
    /// What is wrong with it.
    pub(crate) reason: Invalid,
    /// The decoder's own words, for the logs.
    pub(crate) message: String,
}

impl<K: DeserializeOwned> Lenient<K> {
    /// Decodes `value` as a `K`, or says which field does not fit.
    pub(crate) fn decode(value: &Value) -> Self {
        match serde_path_to_error::deserialize::<_, K>(value) {
            Ok(object) => Self::Decoded(object),
            Err(error) => Self::Undecodable(Box::new(Undecodable::new(value, &error))),
        }
    }
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    /// Fails only on what is not JSON at all; any JSON value decodes. `metadata.managedFields`
    /// (often the largest part of an object, and of no use to a proxy) is dropped first.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        Ok(Self::decode(&value))
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Lenient<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Decoded(object) => object.meta(),
            Self::Undecodable(undecodable) => &undecodable.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Self::Decoded(object) => object.meta_mut(),
            Self::Undecodable(undecodable) => &mut undecodable.metadata,
        }
    }
}

impl Undecodable {
    fn new(value: &Value, error: &serde_path_to_error::Error<serde_json::Error>) -> Self {
        let message = error.inner().to_string();
        let path: Vec<&Segment> = error.path().iter().collect();
        let mut field = field_path(&path);
        let reason = match missing_field(&message) {
            Some(missing) => {
                field = if field.is_empty() { missing.to_owned() } else { format!("{field}.{missing}") };
                Invalid::Missing
            }
            None => Invalid::Value(value_at(value, &path).map_or_else(|| message.clone(), quoted)),
        };
        Self { metadata: lenient_metadata(value.get("metadata")), field, reason, message }
    }

    /// The error to report: `kind`, the object's name, the field and the reason.
    pub(crate) fn error(&self, kind: ObjectKind) -> ConversionError {
        ConversionError::new(kind, &object_name(kind, &self.metadata), self.field.clone(), self.reason.clone())
    }
}

/// The name the trackers know an object by: Nodes and ServiceCIDRs have no namespace, and
/// other kinds default to `default` as the conversions do.
pub(crate) fn object_name(kind: ObjectKind, meta: &ObjectMeta) -> NamespacedName {
    let name = meta.name.as_deref().unwrap_or_default();
    match kind {
        ObjectKind::Node | ObjectKind::ServiceCidr => NamespacedName::new("", name),
        ObjectKind::Service | ObjectKind::EndpointSlice => {
            NamespacedName::new(meta.namespace.as_deref().unwrap_or("default"), name)
        }
    }
}

/// `spec.ports[0].port` from its segments.
fn field_path(path: &[&Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

fn push_key(out: &mut String, key: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(key);
}

/// The name in serde's "missing field `name`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The value the path leads to, if it leads anywhere.
fn value_at<'v>(value: &'v Value, path: &[&Segment]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, segment| match segment {
        Segment::Seq { index } => v.get(index),
        Segment::Map { key } => v.get(key.as_str()),
        Segment::Enum { .. } | Segment::Unknown => None,
    })
}

/// A string as itself, anything else as JSON; cut to a readable length.
fn quoted(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text.char_indices().nth(MAX_QUOTED) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// The metadata, field by field where the whole does not decode: a wrongly typed
/// annotation must not hide the name, resourceVersion or labels.
fn lenient_metadata(metadata: Option<&Value>) -> ObjectMeta {
    let Some(metadata) = metadata else { return ObjectMeta::default() };
    if let Ok(meta) = ObjectMeta::deserialize(metadata) {
        return meta;
    }
    let text = |field: &str| metadata.get(field).and_then(Value::as_str).map(str::to_owned);
    let labels = metadata
        .get("labels")
        .and_then(Value::as_object)
        .map(|labels| labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect());
    ObjectMeta {
        name: text("name"),
        namespace: text("namespace"),
        resource_version: text("resourceVersion"),
        uid: text("uid"),
        labels,
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
#[path = "lenient_tests.rs"]
mod tests;
