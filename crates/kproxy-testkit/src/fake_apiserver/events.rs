//! events.k8s.io/v1 Events: created (`POST`) and patched (`PATCH`, a merge patch) as
//! `kube::runtime::events::Recorder` does, kept in order for tests to read; not listed or
//! watched.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::discovery::{failure_response, not_found};
use super::shared::Shared;

/// Where namespaced Events live.
pub(crate) const PATH: &str = "/apis/events.k8s.io/v1/namespaces/{ns}/events";

/// `POST` of an Event: stored with `metadata.namespace` from the path; 409 if its name is taken.
pub(crate) async fn create(State(shared): State<Arc<Shared>>, Path(ns): Path<String>, body: Bytes) -> Response {
    let mut event = match object(&body) {
        Ok(event) => event,
        Err(message) => return failure_response(400, "BadRequest", &message),
    };
    let name = event.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    if name.is_empty() {
        return failure_response(422, "Invalid", "metadata.name: Required value");
    }
    if let Some(meta) = event.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".into(), ns.clone().into());
    }
    let mut events = shared.events();
    if events.iter().any(|e| is(e, &ns, &name)) {
        return failure_response(409, "AlreadyExists", &format!("events {name:?} already exists"));
    }
    events.push(event.clone());
    (StatusCode::CREATED, Json(event)).into_response()
}

/// `PATCH` of an Event: the body is merged into the stored one (RFC 7386).
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let patch = match object(&body) {
        Ok(patch) => patch,
        Err(message) => return failure_response(400, "BadRequest", &message),
    };
    let mut events = shared.events();
    let Some(event) = events.iter_mut().find(|e| is(e, &ns, &name)) else {
        return not_found(&format!("events {name:?}"));
    };
    merge(event, patch);
    Json(event.clone()).into_response()
}

/// The body as a JSON object, with `metadata` an object.
fn object(body: &[u8]) -> Result<Value, String> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let root = value.as_object_mut().ok_or("the body is not a JSON object")?;
    root.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    Ok(value)
}

fn is(event: &Value, namespace: &str, name: &str) -> bool {
    let field = |f: &str| event.pointer(&format!("/metadata/{f}")).and_then(Value::as_str);
    field("namespace") == Some(namespace) && field("name") == Some(name)
}

/// RFC 7386 merge patch: `null` removes a key, objects merge, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge;

    #[test]
    fn a_merge_patch_merges_objects_replaces_values_and_removes_nulls() {
        let mut event = json!({"note": "a", "series": {"count": 2}, "related": {"name": "x"}});
        merge(&mut event, json!({"series": {"count": 3}, "related": null, "type": "Warning"}));
        assert_eq!(event, json!({"note": "a", "series": {"count": 3}, "type": "Warning"}));
    }
}
