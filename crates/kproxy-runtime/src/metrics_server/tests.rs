use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::test_http::{get, loopback_listener};

struct Fixture {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    server: tokio::task::JoinHandle<io::Result<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start(mode: &'static str) -> Fixture {
    let metrics = Arc::new(Metrics::new());
    let (listener, addr) = loopback_listener().await;
    let server = tokio::spawn({
        let metrics = metrics.clone();
        serve(listener, metrics, mode, None)
    });
    Fixture { addr, metrics, server }
}

#[tokio::test]
async fn metrics_are_served_in_openmetrics_text() {
    let f = start("nftables").await;
    f.metrics.observe_sync(Duration::from_millis(5), true);
    let response = get(f.addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some(CONTENT_TYPE));
    let count = "kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family=\"IPv4\"} 1\n";
    assert!(response.body.contains(count), "{}", response.body);
    assert!(response.body.contains("# TYPE kubeproxy_proxy_healthz counter\n"));
    assert!(response.body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn proxy_mode_is_plain_text() {
    let f = start("nftables").await;
    let response = get(f.addr, "/proxyMode").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "nftables");
    assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn healthz_says_ok_and_other_paths_are_not_found() {
    let f = start("iptables").await;
    let response = get(f.addr, "/healthz").await;
    assert_eq!((response.status, response.body.as_str()), (200, "ok"));
    assert_eq!(get(f.addr, "/livez").await.status, 404);
}

#[tokio::test]
async fn explain_needs_a_handle_and_an_answering_proxy() {
    let f = start("nftables").await;
    let response = get(f.addr, "/explain?dst=172.30.0.41:80").await;
    assert_eq!(response.status, 404, "{}", response.body);

    let (handle, questions) = crate::explain::ExplainHandle::channel();
    drop(questions);
    let (listener, addr) = loopback_listener().await;
    let server = tokio::spawn(serve(listener, Arc::new(Metrics::new()), "nftables", Some(handle)));
    let response = get(addr, "/explain?dst=172.30.0.41:80").await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(response.body.contains("did not answer"), "{}", response.body);
    let response = get(addr, "/explain?from=10.0.0.1").await;
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(response.body.contains("missing dst"), "{}", response.body);
    server.abort();
}
