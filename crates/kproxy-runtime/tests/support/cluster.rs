//! The cluster most daemon tests start from: svc1 (one endpoint on node2) and node1 in a
//! fake apiserver, and a daemon that has programmed it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_testkit::ip_plan::NODE_IP;
use kproxy_testkit::{FakeApiServer, node, service, slice};

use super::{Daemon, Recorder, Source, TempDir};

/// The service port most tests watch.
pub const SVC1: &str = "ns1/svc1:p80";

/// Fails the test if it runs longer than two minutes.
pub async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(120), test).await.expect("the test finished within 120s");
}

/// svc1: ClusterIP 172.30.0.41, port p80.
pub fn svc1() -> Service {
    service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build()
}

/// svc1's slice with endpoints on another node.
pub fn svc1_slice(ips: &[&str]) -> EndpointSlice {
    ips.iter()
        .fold(slice("ns1", "svc1", "svc1-a").tcp("p80", 8080), |b, ip| b.endpoint(ip, |e| e.node("node2")))
        .build()
}

/// This node's Node object.
pub fn node1() -> Node {
    node("node1").internal_ip(NODE_IP).build()
}

/// A fake apiserver holding svc1, its slice and node1, plus a kubeconfig for it.
pub async fn cluster(dir: &TempDir) -> (FakeApiServer, PathBuf) {
    let server = FakeApiServer::start().await;
    server.apply(&svc1());
    server.apply(&svc1_slice(&["10.180.0.1"]));
    server.apply(&node1());
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("write kubeconfig");
    (server, kubeconfig)
}

/// Starts a daemon on `kubeconfig` and waits for its first successful sync with svc1.
pub async fn started(kubeconfig: &Path, recorder: &Recorder) -> Daemon {
    let daemon = Daemon::start(&Source::Kubeconfig(kubeconfig.to_owned()), recorder).await;
    recorder.wait_for("the first successful sync", 0, |s| !s.failed && s.has_port(SVC1)).await;
    daemon
}
