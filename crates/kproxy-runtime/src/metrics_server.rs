//! The metrics HTTP server, as upstream kube-proxy's `serveMetrics` (on the
//! `metricsBindAddress`, default `127.0.0.1:10249`):
//!
//! - `/metrics`: the registry in the OpenMetrics text format ([`CONTENT_TYPE`]);
//! - `/proxyMode`: the mode name as plain text (`Content-Type: text/plain; charset=utf-8`,
//!   `X-Content-Type-Options: nosniff`);
//! - `/healthz`: `ok`, as the generic handler upstream installs on this mux;
//! - `/explain?dst=ADDR:PORT[/PROTO]&from=IP&proto=P` (kproxy only): what happens to such a
//!   packet on this node, as JSON ([`Explanation`](kproxy_core::explain::Explanation));
//!   400 with `{"error": …}` for a bad query, 503 when the proxy does not answer.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use tokio::net::TcpListener;

use crate::explain::{ExplainHandle, parse_query};
use crate::metrics::{CONTENT_TYPE, Metrics};

#[cfg(test)]
mod tests;

/// Upstream's default metrics bind address.
pub const DEFAULT_METRICS_BIND_ADDRESS: &str = "127.0.0.1:10249";

#[derive(Debug, Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    mode: Arc<str>,
    explain: Option<ExplainHandle>,
}

/// The router serving `/metrics`, `/proxyMode`, `/healthz` and, with an `explain` handle,
/// `/explain`; `mode` is the proxy mode name (e.g. the dataplane's
/// [`name`](kproxy_core::Dataplane::name)).
pub fn router(metrics: Arc<Metrics>, mode: &str, explain: Option<ExplainHandle>) -> Router {
    Router::new()
        .route("/metrics", any(metrics_handler))
        .route("/proxyMode", any(proxy_mode))
        .route("/healthz", any(healthz))
        .route("/explain", any(explain_handler))
        .with_state(AppState { metrics, mode: Arc::from(mode), explain })
}

/// Serves [`router`] on an already-bound listener until an I/O error; abort the task to
/// stop it.
pub fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    mode: &str,
    explain: Option<ExplainHandle>,
) -> impl Future<Output = io::Result<()>> + Send + 'static {
    axum::serve(listener, router(metrics, mode, explain)).into_future()
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    state.metrics.refresh_packet_counters().await;
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "failed to encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn proxy_mode(State(state): State<AppState>) -> Response {
    plain_text(state.mode.to_string())
}

async fn explain_handler(State(state): State<AppState>, Query(params): Query<HashMap<String, String>>) -> Response {
    let error =
        |status: StatusCode, message: String| (status, Json(serde_json::json!({ "error": message }))).into_response();
    let Some(handle) = &state.explain else {
        return error(StatusCode::NOT_FOUND, "explain is not served here".to_owned());
    };
    let query = match parse_query(&params) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match handle.ask(query).await {
        Some(explanation) => Json(explanation).into_response(),
        None => error(StatusCode::SERVICE_UNAVAILABLE, "the proxy did not answer".to_owned()),
    }
}

async fn healthz() -> Response {
    plain_text("ok".to_owned())
}

fn plain_text(body: String) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")];
    (headers, body).into_response()
}
