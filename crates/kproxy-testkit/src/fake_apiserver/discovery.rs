//! Static answers: `Status` errors, `/version` and the discovery documents.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::kind::ResourceKind;

/// A `Status` object with `status: Failure`, as the apiserver sends for errors.
pub(crate) fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// An HTTP error answer carrying a `Status` body.
pub(crate) fn failure_response(code: u16, reason: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(failure(code, reason, message))).into_response()
}

/// `404 NotFound` for paths and objects the fake does not have.
pub(crate) fn not_found(what: &str) -> Response {
    failure_response(404, "NotFound", &format!("{what} not found"))
}

/// `GET /version`.
pub(crate) async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "34",
        "gitVersion": "v1.34.0-kproxy-fake",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }))
}

/// `GET /api`.
pub(crate) async fn core_versions() -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }))
}

/// `GET /apis`.
pub(crate) async fn groups() -> Json<Value> {
    let group = |name: &str| {
        let version = json!({"groupVersion": format!("{name}/v1"), "version": "v1"});
        json!({"name": name, "versions": [version], "preferredVersion": version})
    };
    Json(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group("discovery.k8s.io"), group("networking.k8s.io")],
    }))
}

/// `GET /api/v1`, `GET /apis/discovery.k8s.io/v1` or `GET /apis/networking.k8s.io/v1`: the
/// served resources of one group/version.
pub(crate) fn resource_list(group_version: &'static str) -> Json<Value> {
    let resources: Vec<Value> = ResourceKind::ALL
        .into_iter()
        .filter(|k| k.api_version() == group_version)
        .map(|k| {
            json!({
                "name": k.plural(),
                "singularName": k.kind().to_lowercase(),
                "namespaced": k.namespaced(),
                "kind": k.kind(),
                "verbs": ["get", "list", "watch"],
            })
        })
        .collect();
    Json(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}))
}
