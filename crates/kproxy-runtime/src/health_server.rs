//! The proxy health HTTP server: `/healthz` and `/livez` as upstream kube-proxy serves them
//! (`healthzHandler` / `livezHandler` in `pkg/proxy/healthcheck/proxy_health.go`), on the
//! `healthzBindAddress` (default `0.0.0.0:10256`).
//!
//! Both answer 200 when healthy and 503 otherwise, with `Content-Type: application/json`,
//! `X-Content-Type-Options: nosniff` and upstream's JSON body:
//! `{"lastUpdated":…,"currentTime":…,"nodeEligible":…,"healthy":…,"status":{"IPv4":{…}}}`.
//! `/healthz` also requires the node to be eligible and reports `nodeEligible`; `/livez`
//! omits it. When healthy, `lastUpdated` is the current time (upstream's backward
//! compatibility with the old "last sync loop run" meaning). Each answer increments
//! `kubeproxy_proxy_healthz_total{code}` / `kubeproxy_proxy_livez_total{code}`.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::health::{HealthReport, ProxyHealth, format_go_time};
use crate::metrics::Metrics;

#[cfg(test)]
mod tests;

/// Upstream's default health bind address.
pub const DEFAULT_HEALTHZ_BIND_ADDRESS: &str = "0.0.0.0:10256";

#[derive(Debug, Clone)]
struct AppState {
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Healthz,
    Livez,
}

/// Upstream's `ProxyHealth` JSON (Go field order; `nodeEligible` and an empty `status`
/// omitted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthBody {
    last_updated: String,
    current_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_eligible: Option<bool>,
    healthy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    status: BTreeMap<&'static str, ProxierBody>,
}

/// Upstream's `ProxierHealth` JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProxierBody {
    last_updated: String,
    healthy: bool,
}

/// The router serving `/healthz` and `/livez` (any method, as Go's `ServeMux`).
pub fn router(health: Arc<ProxyHealth>, metrics: Arc<Metrics>) -> Router {
    Router::new().route("/healthz", any(healthz)).route("/livez", any(livez)).with_state(AppState { health, metrics })
}

/// Serves [`router`] on an already-bound listener until an I/O error; abort the task to
/// stop it.
pub async fn serve(listener: TcpListener, health: Arc<ProxyHealth>, metrics: Arc<Metrics>) -> io::Result<()> {
    axum::serve(listener, router(health, metrics)).await
}

async fn healthz(State(state): State<AppState>) -> Response {
    let report = state.health.health();
    let eligible = state.health.node_eligible();
    let healthy = report.healthy && eligible;
    respond(&state, report, Some(eligible), healthy, Probe::Healthz)
}

async fn livez(State(state): State<AppState>) -> Response {
    let report = state.health.health();
    let healthy = report.healthy;
    respond(&state, report, None, healthy, Probe::Livez)
}

fn respond(
    state: &AppState,
    report: HealthReport,
    node_eligible: Option<bool>,
    healthy: bool,
    probe: Probe,
) -> Response {
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    match probe {
        Probe::Healthz => state.metrics.record_healthz(code.as_u16()),
        Probe::Livez => state.metrics.record_livez(code.as_u16()),
    }
    let body = serde_json::to_string(&body(report, node_eligible, healthy)).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json"), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], body)
        .into_response()
}

fn body(report: HealthReport, node_eligible: Option<bool>, healthy: bool) -> HealthBody {
    // Healthy: `lastUpdated` is "now", as upstream keeps for backward compatibility.
    let last_updated = if healthy { Some(report.current_time) } else { report.last_updated };
    let status = report
        .status
        .into_iter()
        .map(|(family, proxier)| {
            let body =
                ProxierBody { last_updated: format_go_time(Some(proxier.last_updated)), healthy: proxier.healthy };
            (family.as_str(), body)
        })
        .collect();
    HealthBody {
        last_updated: format_go_time(last_updated),
        current_time: format_go_time(Some(report.current_time)),
        node_eligible,
        healthy: report.healthy,
        status,
    }
}
