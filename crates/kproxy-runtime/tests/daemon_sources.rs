//! End-to-end tests of the daemon's apiserver source: Services that do not decode (a field
//! of the wrong type) are skipped one by one, and new objects are programmed soon after the
//! apiserver comes back from an outage. A fake apiserver feeds the daemon and a recording
//! dataplane stands in for the kernel.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kproxy_testkit::{FakeApiServer, service};
use serde_json::json;
use support::{Daemon, Recorded, Recorder, SVC1, Source, TempDir, bounded, cluster, started};
use tokio::time::Instant;

const MALFORMED_SERVICES: &str = r#"kubeproxy_malformed_objects_total{kind="Service"}"#;

/// Service `name` of ns1 with port p80.
fn svc(name: &str, ip: &str) -> Service {
    service("ns1", name).cluster_ip(ip).tcp("p80", 80).build()
}

/// Stores Service `name` with its port given as the string "eighty": it does not decode.
fn apply_eighty(server: &FakeApiServer, name: &str, ip: &str) {
    server.apply_with(&svc(name, ip), "/spec/ports/0/port", json!("eighty"));
}

/// Service port `name`'s cluster IP in `sync`.
fn cluster_ip(sync: &Recorded, port: &str) -> Option<String> {
    let family = sync.state.family(kproxy_core::IpFamily::V4);
    family.services.iter().find(|(name, _)| name.to_string() == port).map(|(_, p)| p.cluster_ip.to_string())
}

/// Cuts the watches and forgets the history: every watcher relists.
fn force_relist(server: &FakeApiServer) {
    server.drop_watches();
    server.compact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_decode_in_the_initial_list_is_skipped_and_counted_once() {
    bounded(async {
        let dir = TempDir::new("sources-list");
        let (server, kubeconfig) = cluster(&dir).await;
        apply_eighty(&server, "bad", "172.30.0.42");
        server.apply(&svc("svc2", "172.30.0.43"));
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let first = recorder.syncs().remove(0);
        assert_eq!(first.ports(), [SVC1, "ns1/svc2:p80"], "the others are programmed: {}", first.summary());
        assert_eq!(daemon.metric(MALFORMED_SERVICES).await, Some(1.0));

        // Relists meet it again: still skipped, not counted again.
        let from = recorder.len();
        force_relist(&server);
        server.apply(&svc("svc3", "172.30.0.44"));
        let (_, later) = recorder.wait_for("svc3", from, |s| s.has_port("ns1/svc3:p80")).await;
        assert_eq!(later.ports(), [SVC1, "ns1/svc2:p80", "ns1/svc3:p80"]);
        assert_eq!(daemon.metric(MALFORMED_SERVICES).await, Some(1.0));
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_decode_by_watch_keeps_its_previous_state() {
    bounded(async {
        let dir = TempDir::new("sources-watch");
        let (server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;

        // A new Service that does not decode: later Services are still programmed.
        let from = recorder.len();
        apply_eighty(&server, "bad", "172.30.0.42");
        server.apply(&svc("svc2", "172.30.0.43"));
        let (_, added) = recorder.wait_for("svc2", from, |s| s.has_port("ns1/svc2:p80")).await;
        assert!(!added.has_port("ns1/bad:p80"), "{}", added.summary());
        assert_eq!(daemon.metric(MALFORMED_SERVICES).await, Some(1.0));

        // svc1 stops decoding: it keeps its state, through a relist too.
        let from = recorder.len();
        apply_eighty(&server, "svc1", "172.30.0.49");
        force_relist(&server);
        server.apply(&svc("svc3", "172.30.0.44"));
        let (_, relisted) = recorder.wait_for("svc3", from, |s| s.has_port("ns1/svc3:p80")).await;
        assert_eq!(cluster_ip(&relisted, SVC1).as_deref(), Some("172.30.0.41"), "{}", relisted.summary());
        assert_eq!(daemon.metric(MALFORMED_SERVICES).await, Some(2.0));
        for sync in recorder.syncs() {
            assert!(sync.has_port(SVC1), "a sync lost svc1:\n{}", recorder.describe());
        }

        // Fixed: its new state is programmed.
        let from = recorder.len();
        server.apply(&svc("svc1", "172.30.0.49"));
        recorder.wait_for("svc1's new state", from, |s| cluster_ip(s, SVC1).as_deref() == Some("172.30.0.49")).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_service_that_does_not_decode_converges() {
    bounded(async {
        let dir = TempDir::new("sources-restart");
        let (server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        apply_eighty(&server, "svc1", "172.30.0.49");
        apply_eighty(&server, "bad", "172.30.0.42");
        daemon.stop().await;

        // A new daemon never saw svc1 decode: it programs everything else.
        server.apply(&svc("svc2", "172.30.0.43"));
        let recorder = Recorder::default();
        let daemon = Daemon::start(&Source::Kubeconfig(kubeconfig), &recorder).await;
        let (_, first) = recorder.wait_for("the first sync", 0, |s| !s.failed).await;
        assert_eq!(first.ports(), ["ns1/svc2:p80"], "{}", first.summary());
        assert_eq!(daemon.metric(MALFORMED_SERVICES).await, Some(2.0));
        server.apply(&svc("svc3", "172.30.0.44"));
        recorder.wait_for("svc3", 0, |s| s.has_port("ns1/svc3:p80")).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_services_are_programmed_soon_after_an_outage() {
    bounded(async {
        let dir = TempDir::new("sources-outage");
        let (server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let before = server.requests().len();

        // Four seconds of 503s (every watcher fails a few times and backs off), during which
        // the history is forgotten: resumed watches will get 410 Gone and relist.
        server.set_unavailable(true);
        tokio::time::sleep(Duration::from_secs(4)).await;
        server.compact();
        let refused = server.requests().len() - before;
        assert!(refused >= 3, "the watchers retried during the outage ({refused} requests)");
        server.set_unavailable(false);
        let recovered = Instant::now();
        let from = recorder.len();
        server.apply(&svc("after", "172.30.0.45"));
        recorder.wait_for("the Service created after the outage", from, |s| s.has_port("ns1/after:p80")).await;
        let took = recovered.elapsed();
        // After 4 s of errors a watcher waits at most 6.4 s more, then at most 1.6 s after the
        // 410 Gone before it relists: well under the 30 s cap (unit-tested in source::backoff).
        assert!(took < Duration::from_secs(15), "programmed {took:?} after the apiserver came back");
        daemon.stop().await;
    })
    .await;
}

const MALFORMED_SERVICE_CIDRS: &str = r#"kubeproxy_malformed_objects_total{kind="ServiceCIDR"}"#;

/// The service CIDRs of a sync, as text.
fn service_cidrs(sync: &Recorded) -> Vec<String> {
    sync.state.service_cidrs.iter().map(ToString::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_cidrs_are_watched_and_a_malformed_one_is_skipped_and_counted() {
    bounded(async {
        let dir = TempDir::new("sources-cidrs");
        let (server, kubeconfig) = cluster(&dir).await;
        server.apply(&kproxy_testkit::service_cidr("kubernetes", &["172.30.0.0/16", "fd00:172:30::/112"]));
        server.apply(&kproxy_testkit::service_cidr("bad", &["172.31.0.0/99"]));
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let want = ["172.30.0.0/16", "fd00:172:30::/112"];
        let (at, sync) = recorder.wait_for("the ServiceCIDR", 0, |s| service_cidrs(s) == want).await;
        assert!(sync.changes.full(), "new service CIDRs come with a full sync");
        assert_eq!(daemon.metric(MALFORMED_SERVICE_CIDRS).await, Some(1.0));

        server.apply(&kproxy_testkit::service_cidr("more", &["172.29.0.0/16"]));
        let want = ["172.29.0.0/16", "172.30.0.0/16", "fd00:172:30::/112"];
        let (at, _) = recorder.wait_for("the second ServiceCIDR", at + 1, |s| service_cidrs(s) == want).await;
        assert!(server.delete(kproxy_testkit::ResourceKind::ServiceCidr, "", "kubernetes"));
        recorder.wait_for("the deletion", at + 1, |s| service_cidrs(s) == ["172.29.0.0/16"]).await;
        daemon.stop().await;
    })
    .await;
}
