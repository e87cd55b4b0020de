//! The HTTP side: routes, the request gate (log, 503, 401), list, get and watch handlers
//! (and Events, in `events`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::discovery::{self, failure_response, not_found};
use super::events;
use super::kind::ResourceKind;
use super::selector::Filter;
use super::shared::Shared;
use super::watch::{WatchRequest, watch_body};

type Params = HashMap<String, String>;

/// Used when a watch request has no (or a zero) `timeoutSeconds`, like the apiserver's default.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// The whole API: discovery, then list/watch/get for every served kind, behind the gate.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::core_versions))
        .route("/apis", get(discovery::groups))
        .route("/api/v1", get(|| async { discovery::resource_list("v1") }))
        .route("/apis/discovery.k8s.io/v1", get(|| async { discovery::resource_list("discovery.k8s.io/v1") }))
        .route("/apis/networking.k8s.io/v1", get(|| async { discovery::resource_list("networking.k8s.io/v1") }));
    for kind in ResourceKind::ALL {
        router = kind_routes(router, kind);
    }
    router
        .route(events::PATH, post(events::create))
        .route(&format!("{}/{{name}}", events::PATH), axum::routing::patch(events::patch))
        .fallback(|| async { not_found("the path") })
        .layer(middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared)
}

fn kind_routes(router: Router<Arc<Shared>>, kind: ResourceKind) -> Router<Arc<Shared>> {
    let (prefix, plural) = (kind.url_prefix(), kind.plural());
    let router = router.route(
        &format!("{prefix}/{plural}"),
        get(move |State(s): State<Arc<Shared>>, Query(q): Query<Params>| collection(s, kind, None, q)),
    );
    if !kind.namespaced() {
        return router.route(
            &format!("{prefix}/{plural}/{{name}}"),
            get(move |State(s): State<Arc<Shared>>, Path(name): Path<String>| object(s, kind, String::new(), name)),
        );
    }
    router
        .route(
            &format!("{prefix}/namespaces/{{ns}}/{plural}"),
            get(move |State(s): State<Arc<Shared>>, Path(ns): Path<String>, Query(q): Query<Params>| {
                collection(s, kind, Some(ns), q)
            }),
        )
        .route(
            &format!("{prefix}/namespaces/{{ns}}/{plural}/{{name}}"),
            get(move |State(s): State<Arc<Shared>>, Path((ns, name)): Path<(String, String)>| {
                object(s, kind, ns, name)
            }),
        )
}

/// Logs every request, then answers 503 while unavailable and 401 without the bearer token.
async fn gate(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |pq| pq.as_str().to_owned());
    shared.log_request(format!("{} {target}", req.method()));
    if shared.unavailable() {
        return failure_response(503, "ServiceUnavailable", "the fake apiserver is unavailable");
    }
    let expected = format!("Bearer {}", shared.token);
    let authorized = req.headers().get(header::AUTHORIZATION).is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return failure_response(401, "Unauthorized", "Unauthorized");
    }
    next.run(req).await
}

/// `GET` on a collection: a list, or a watch with `watch=true`.
async fn collection(shared: Arc<Shared>, kind: ResourceKind, namespace: Option<String>, q: Params) -> Response {
    let param = |name: &str| q.get(name).map(String::as_str);
    let filter = match Filter::parse(namespace, param("labelSelector"), param("fieldSelector")) {
        Ok(filter) => filter,
        Err(message) => return failure_response(400, "BadRequest", &message),
    };
    if flag(param("watch")) {
        return match watch_request(kind, filter, &q) {
            Ok(req) => watch_response(shared, req),
            Err(message) => failure_response(400, "BadRequest", &message),
        };
    }
    match Page::parse(param("limit"), param("continue")) {
        Ok(page) => list(&shared, kind, &filter, &page),
        Err(message) => failure_response(400, "BadRequest", &message),
    }
}

/// Which part of a list a request asks for: `limit` items after the object a `continue`
/// token names (tokens carry the first page's resourceVersion and the last key served, as
/// etcd's key-ordered continuation does).
struct Page {
    limit: Option<usize>,
    resource_version: Option<u64>,
    after: Option<(String, String)>,
}

impl Page {
    fn parse(limit: Option<&str>, token: Option<&str>) -> Result<Self, String> {
        let limit = match limit {
            None | Some("0") => None,
            Some(text) => Some(text.parse::<usize>().map_err(|_| format!("invalid limit {text:?}"))?),
        };
        let (resource_version, after) = match token.filter(|t| !t.is_empty()) {
            None => (None, None),
            Some(token) => {
                let invalid = || format!("invalid continue {token:?}");
                let mut parts = token.splitn(3, '/');
                let (rv, namespace, name) = (parts.next(), parts.next(), parts.next());
                let rv = rv.and_then(|rv| rv.parse::<u64>().ok()).ok_or_else(invalid)?;
                let key = namespace.zip(name).map(|(ns, n)| (ns.to_owned(), n.to_owned())).ok_or_else(invalid)?;
                (Some(rv), Some(key))
            }
        };
        Ok(Self { limit, resource_version, after })
    }
}

/// The key a continue token names an object by, `namespace/name`, compared as the store
/// orders objects (by namespace, then name).
fn page_key(object: &Value) -> (String, String) {
    let meta = |field: &str| {
        object.pointer(&format!("/metadata/{field}")).and_then(Value::as_str).unwrap_or_default().to_owned()
    };
    (meta("namespace"), meta("name"))
}

/// A page of the matching objects (all of them without `limit`), in key order; items omit
/// `kind` and `apiVersion` like the apiserver's.
fn list(shared: &Shared, kind: ResourceKind, filter: &Filter, page: &Page) -> Response {
    let (rv, mut items, more) = {
        let store = shared.store();
        let (items, more) = store.list_page(kind, filter, page.after.as_ref(), page.limit.unwrap_or(usize::MAX));
        (store.resource_version(), items, more)
    };
    let rv = page.resource_version.unwrap_or(rv);
    let next =
        more.then(|| items.last().map(page_key)).flatten().map(|(namespace, name)| format!("{rv}/{namespace}/{name}"));
    for item in &mut items {
        if let Some(obj) = item.as_object_mut() {
            obj.remove("kind");
            obj.remove("apiVersion");
        }
    }
    Json(json!({
        "kind": kind.list_kind(),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": rv.to_string(), "continue": next.unwrap_or_default()},
        "items": items,
    }))
    .into_response()
}

/// `GET` on one object.
async fn object(shared: Arc<Shared>, kind: ResourceKind, namespace: String, name: String) -> Response {
    let found: Option<Value> = shared.store().get(kind, &namespace, &name).cloned();
    match found {
        Some(obj) => Json(obj).into_response(),
        None => not_found(&format!("{} {:?}", kind.plural(), name)),
    }
}

fn watch_request(kind: ResourceKind, filter: Filter, q: &Params) -> Result<WatchRequest, String> {
    let resource_version = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| format!("invalid resourceVersion {rv:?}"))?),
    };
    let timeout = match q.get("timeoutSeconds").map(String::as_str) {
        None | Some("") | Some("0") => DEFAULT_WATCH_TIMEOUT,
        Some(s) => Duration::from_secs(s.parse().map_err(|_| format!("invalid timeoutSeconds {s:?}"))?),
    };
    Ok(WatchRequest {
        kind,
        filter,
        resource_version,
        send_initial_events: flag(q.get("sendInitialEvents").map(String::as_str)),
        bookmarks: flag(q.get("allowWatchBookmarks").map(String::as_str)),
        timeout,
    })
}

fn watch_response(shared: Arc<Shared>, req: WatchRequest) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache, private")];
    (StatusCode::OK, headers, watch_body(shared, req)).into_response()
}

fn flag(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1"))
}
