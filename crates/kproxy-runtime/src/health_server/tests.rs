use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kproxy_core::IpFamily::{V4, V6};
use serde_json::{Value, json};

use super::*;
use crate::health::ManualClock;
use crate::test_http::{HttpResponse, get, loopback_listener};

const TIMEOUT: Duration = Duration::from_secs(10);
/// 2023-11-14T22:13:20Z.
const START_SECS: u64 = 1_700_000_000;

struct Fixture {
    addr: SocketAddr,
    clock: Arc<ManualClock>,
    health: Arc<ProxyHealth>,
    metrics: Arc<Metrics>,
    server: tokio::task::JoinHandle<io::Result<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start() -> Fixture {
    let clock = Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(START_SECS)));
    let health = Arc::new(ProxyHealth::with_clock(TIMEOUT, clock.clone()));
    let metrics = Arc::new(Metrics::new());
    let (listener, addr) = loopback_listener().await;
    let server = tokio::spawn(serve(listener, health.clone(), metrics.clone()));
    Fixture { addr, clock, health, metrics, server }
}

fn json_body(response: &HttpResponse) -> Value {
    serde_json::from_str(&response.body).expect("JSON body")
}

fn assert_upstream_headers(response: &HttpResponse) {
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn healthz_and_livez_before_any_sync() {
    let f = start().await;
    for path in ["/healthz", "/livez"] {
        let response = get(f.addr, path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_upstream_headers(&response);
        let mut expected = json!({
            "lastUpdated": "2023-11-14T22:13:20Z",
            "currentTime": "2023-11-14T22:13:20Z",
            "healthy": true,
        });
        if path == "/healthz" {
            expected["nodeEligible"] = json!(true);
        }
        assert_eq!(json_body(&response), expected, "{path}");
    }
}

#[tokio::test]
async fn healthz_body_is_upstreams_json_in_go_field_order() {
    let f = start().await;
    f.health.updated(V4);
    f.clock.advance(Duration::from_millis(1_500));
    let response = get(f.addr, "/healthz").await;
    assert_eq!(
        response.body,
        concat!(
            r#"{"lastUpdated":"2023-11-14T22:13:21.5Z","currentTime":"2023-11-14T22:13:21.5Z","#,
            r#""nodeEligible":true,"healthy":true,"#,
            r#""status":{"IPv4":{"lastUpdated":"2023-11-14T22:13:20Z","healthy":true}}}"#
        )
    );
}

#[tokio::test]
async fn late_update_gives_503_on_both_until_updated() {
    let f = start().await;
    f.health.updated(V4);
    f.health.updated(V6);
    f.health.queued_update(V6);
    f.clock.advance(Duration::from_secs(25));
    for path in ["/healthz", "/livez"] {
        let response = get(f.addr, path).await;
        assert_eq!(response.status, 503, "{path}");
        assert_upstream_headers(&response);
        let body = json_body(&response);
        assert_eq!(body["healthy"], json!(false));
        assert_eq!(body["lastUpdated"], json!("2023-11-14T22:13:20Z"), "the real last update when unhealthy");
        assert_eq!(body["currentTime"], json!("2023-11-14T22:13:45Z"));
        assert_eq!(body["status"]["IPv4"]["healthy"], json!(true));
        assert_eq!(body["status"]["IPv6"]["healthy"], json!(false));
    }
    f.health.updated(V6);
    assert_eq!(get(f.addr, "/healthz").await.status, 200);
    assert_eq!(get(f.addr, "/livez").await.status, 200);
}

#[tokio::test]
async fn node_eligibility_affects_healthz_only() {
    let f = start().await;
    f.health.updated(V4);
    f.health.set_node_eligible(false);

    let healthz = get(f.addr, "/healthz").await;
    assert_eq!(healthz.status, 503);
    let body = json_body(&healthz);
    assert_eq!(body["nodeEligible"], json!(false));
    assert_eq!(body["healthy"], json!(true), "the proxy itself is healthy");

    let livez = get(f.addr, "/livez").await;
    assert_eq!(livez.status, 200);
    assert_eq!(json_body(&livez).get("nodeEligible"), None);

    f.health.set_node_eligible(true);
    assert_eq!(get(f.addr, "/healthz").await.status, 200);
}

#[tokio::test]
async fn answers_are_counted_by_code() {
    let f = start().await;
    get(f.addr, "/healthz").await;
    f.health.set_node_eligible(false);
    get(f.addr, "/healthz").await;
    get(f.addr, "/healthz").await;
    get(f.addr, "/livez").await;
    let text = f.metrics.encode().expect("encodes");
    for line in [
        "kubeproxy_proxy_healthz_total{code=\"200\"} 1\n",
        "kubeproxy_proxy_healthz_total{code=\"503\"} 2\n",
        "kubeproxy_proxy_livez_total{code=\"200\"} 1\n",
        "kubeproxy_proxy_livez_total{code=\"503\"} 0\n",
    ] {
        assert!(text.contains(line), "{line}in\n{text}");
    }
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let f = start().await;
    assert_eq!(get(f.addr, "/metrics").await.status, 404);
    assert_eq!(get(f.addr, "/healthz/extra").await.status, 404);
}
