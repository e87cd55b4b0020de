//! End-to-end tests of `kproxy_runtime::daemon::run`: a fake apiserver (or a manifest
//! directory) feeds the daemon, a recording dataplane stands in for the kernel, and the
//! health, metrics and health-check node port servers are probed over loopback HTTP.
//!
//! Every wait is bounded ([`support::WAIT`]) and every test as a whole too ([`bounded`]).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kproxy_testkit::ip_plan::{LB_IP, NODE_IP};
use kproxy_testkit::{FakeApiServer, ResourceKind, node, service, slice};
use support::{
    Daemon, Recorder, SVC1, SYNC_PERIOD, Source, TempDir, bounded, cluster, eventually, eventually_status, free_port,
    get, node1, started, svc1, svc1_slice,
};

/// How many times the Services were listed (not watched).
fn service_lists(server: &FakeApiServer) -> usize {
    server.requests().iter().filter(|r| r.starts_with("GET /api/v1/services?") && !r.contains("watch=true")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_synced_before_every_initial_list_and_the_first_sync_is_full() {
    bounded(async {
        let dir = TempDir::new("daemon-init");
        let (server, kubeconfig) = cluster(&dir).await;
        server.set_unavailable(true);
        let recorder = Recorder::default();
        let daemon = Daemon::start(&Source::Kubeconfig(kubeconfig), &recorder).await;
        // Longer than the sync period: a periodic sync would have run by now.
        tokio::time::sleep(SYNC_PERIOD + Duration::from_secs(1)).await;
        assert_eq!(recorder.len(), 0, "synced before the initial lists:\n{}", recorder.describe());
        server.set_unavailable(false);
        let (index, first) = recorder.wait_for("the first sync", 0, |_| true).await;
        assert_eq!(index, 0);
        assert!(first.changes.full(), "{}", first.summary());
        assert!(!first.failed);
        assert_eq!(first.ports(), [SVC1]);
        assert_eq!(first.endpoints(SVC1), ["10.180.0.1:8080"]);
        assert_eq!(first.state.node.name, "node1");
        assert_eq!(first.state.node.addresses, [NODE_IP.parse::<std::net::IpAddr>().expect("ip")]);
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_before_the_initial_lists_is_clean() {
    bounded(async {
        let dir = TempDir::new("daemon-early-stop");
        let (server, kubeconfig) = cluster(&dir).await;
        server.set_unavailable(true);
        let recorder = Recorder::default();
        let daemon = Daemon::start(&Source::Kubeconfig(kubeconfig), &recorder).await;
        let livez = get(daemon.healthz, "/livez").await;
        assert_eq!(livez.status, 200, "alive while waiting for the apiserver: {}", livez.body);
        daemon.stop().await;
        assert_eq!(recorder.len(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_sync_error_stops_the_daemon_with_that_error() {
    bounded(async {
        let dir = TempDir::new("daemon-fatal");
        let (_server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        recorder.fail_fatally();
        let mut daemon = Daemon::start(&Source::Kubeconfig(kubeconfig), &recorder).await;
        match daemon.finished().await {
            Err(kproxy_runtime::daemon::DaemonError::Sync(error)) => {
                assert!(!error.is_retryable());
                assert!(error.to_string().contains("told to fail fatally"), "{error}");
            }
            other => panic!("expected the fatal sync error, got {other:?}"),
        }
        assert_eq!(recorder.len(), 1, "no retry after a fatal error:\n{}", recorder.describe());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_synced_partially_and_other_proxies_services_are_not_programmed() {
    bounded(async {
        let dir = TempDir::new("daemon-update");
        let (server, kubeconfig) = cluster(&dir).await;
        let other = |port: i32| {
            service("ns1", "other")
                .cluster_ip("172.30.0.42")
                .tcp("p80", port)
                .label("service.kubernetes.io/service-proxy-name", "other-proxy")
                .build()
        };
        server.apply(&other(80));
        server.apply(&slice("ns1", "other", "other-a").tcp("p80", 8080).ready("10.180.0.9").build());
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let first = recorder.syncs().remove(0);
        assert!(first.changes.full());
        assert_eq!(first.ports(), [SVC1], "only svc1 is ours");

        // Right after a sync, so the periodic sync is a whole sync period away.
        let from = recorder.len();
        server.apply(&svc1_slice(&["10.180.0.1", "10.180.0.2"]));
        let (_, update) = recorder.wait_for("the new endpoint", from, |s| s.endpoints(SVC1).len() == 2).await;
        assert!(!update.changes.full(), "an update is a partial sync: {}", update.summary());
        assert_eq!(update.changed(), [SVC1]);
        assert!(!update.failed);

        // The other proxy's Service changes, then one of ours is added: only ours is synced.
        let from = recorder.len();
        server.apply(&other(81));
        server.apply(&service("ns1", "svc2").cluster_ip("172.30.0.43").tcp("p80", 80).build());
        let (_, added) = recorder.wait_for("svc2", from, |s| s.has_port("ns1/svc2:p80")).await;
        assert!(added.changed_port("ns1/svc2:p80"), "{}", added.summary());
        for sync in recorder.syncs() {
            assert!(!sync.has_port("ns1/other:p80"), "another proxy's Service was programmed: {}", sync.summary());
        }
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_objects_are_skipped_counted_and_keep_the_previous_state() {
    bounded(async {
        let dir = TempDir::new("daemon-malformed");
        let (server, kubeconfig) = cluster(&dir).await;
        server.apply(&service("ns1", "bad").cluster_ip("not-an-ip").tcp("p80", 80).build());
        server.apply(&slice("ns1", "svc1", "svc1-bad").tcp("p80", 8080).ready("10.180.0.300").build());
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let first = recorder.syncs().remove(0);
        assert_eq!(first.ports(), [SVC1], "the malformed Service is skipped");
        assert_eq!(first.endpoints(SVC1), ["10.180.0.1:8080"], "the malformed slice is skipped");
        let service_metric = r#"kubeproxy_malformed_objects_total{kind="Service"}"#;
        let slice_metric = r#"kubeproxy_malformed_objects_total{kind="EndpointSlice"}"#;
        assert_eq!(daemon.metric(service_metric).await, Some(1.0));
        assert_eq!(daemon.metric(slice_metric).await, Some(1.0));

        // svc1 breaks: its previous state stays in force, and it is counted.
        let from = recorder.len();
        server.apply(&service("ns1", "svc1").cluster_ip("not-an-ip").tcp("p80", 80).build());
        server.apply(&service("ns1", "svc3").cluster_ip("172.30.0.44").tcp("p80", 80).build());
        let (_, later) = recorder.wait_for("svc3", from, |s| s.has_port("ns1/svc3:p80")).await;
        assert!(later.has_port(SVC1), "a broken update keeps the previous state: {}", later.summary());
        assert_eq!(later.endpoints(SVC1), ["10.180.0.1:8080"]);
        assert_eq!(daemon.metric(service_metric).await, Some(2.0));
        assert_eq!(daemon.metric(slice_metric).await, Some(1.0));
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relist_after_compaction_converges_without_a_flush() {
    bounded(async {
        let dir = TempDir::new("daemon-relist");
        let (server, kubeconfig) = cluster(&dir).await;
        server.apply(&service("ns1", "gone").cluster_ip("172.30.0.42").tcp("p80", 80).build());
        server.apply(&slice("ns1", "gone", "gone-a").tcp("p80", 8080).ready("10.180.0.2").build());
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        assert!(recorder.syncs()[0].has_port("ns1/gone:p80"));
        let lists = service_lists(&server);

        // Cut the watches (and refuse new ones until the history is gone, so no watcher can
        // resume before the compaction), change things while nobody watches, and forget the
        // history: the watchers get 410 Gone and relist.
        let from = recorder.len();
        server.set_unavailable(true);
        server.drop_watches();
        assert!(server.delete(ResourceKind::Service, "ns1", "gone"));
        assert!(server.delete(ResourceKind::EndpointSlice, "ns1", "gone-a"));
        server.apply(&service("ns1", "new").cluster_ip("172.30.0.43").tcp("p80", 80).build());
        server.compact();
        server.set_unavailable(false);
        let converged = |s: &support::Recorded| !s.failed && !s.has_port("ns1/gone:p80") && s.has_port("ns1/new:p80");
        let (_, after) = recorder.wait_for("the relisted state", from, converged).await;
        assert_eq!(after.ports(), ["ns1/new:p80", SVC1]);
        assert_eq!(after.endpoints(SVC1), ["10.180.0.1:8080"]);
        eventually("a relist of the Services", || (service_lists(&server) > lists).then_some(())).await;
        for sync in recorder.syncs() {
            assert!(
                sync.has_port(SVC1) && sync.endpoints(SVC1) == ["10.180.0.1:8080"],
                "a sync lost the state that never changed:\n{}",
                recorder.describe()
            );
        }
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_outage_keeps_the_last_state_and_recovers() {
    bounded(async {
        let dir = TempDir::new("daemon-outage");
        let (server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let from = recorder.len();
        server.set_unavailable(true);
        // Let the cut watches end before the change, so none of them carries it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.apply(&service("ns1", "during").cluster_ip("172.30.0.45").tcp("p80", 80).build());
        // The periodic sync runs during the outage with the last state, not an empty one.
        let (_, periodic) = recorder.wait_for("a periodic sync during the outage", from, |s| s.is_idle()).await;
        assert!(periodic.has_port(SVC1), "{}", periodic.summary());
        assert!(!periodic.has_port("ns1/during:p80"));
        let healthz = get(daemon.healthz, "/healthz").await;
        assert_eq!(healthz.status, 200, "nothing is queued, so the proxy stays healthy: {}", healthz.body);
        server.set_unavailable(false);
        recorder.wait_for("the change made during the outage", from, |s| s.has_port("ns1/during:p80")).await;
        for sync in recorder.syncs() {
            assert!(
                sync.has_port(SVC1) && sync.endpoints(SVC1) == ["10.180.0.1:8080"],
                "a sync lost the state:\n{}",
                recorder.describe()
            );
        }
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_is_retried_as_a_full_sync_with_its_changes() {
    bounded(async {
        let dir = TempDir::new("daemon-retry");
        let (server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        recorder.fail_next(1);
        let from = recorder.len();
        server.apply(&svc1_slice(&["10.180.0.1", "10.180.0.2"]));
        let (index, failed) = recorder.wait_for("the failing sync", from, |s| s.failed).await;
        assert!(failed.changed_port(SVC1), "{}", failed.summary());
        let (retry_index, retry) = recorder.wait_for("the retry", index + 1, |_| true).await;
        assert_eq!(retry_index, index + 1);
        assert!(!retry.failed);
        assert!(retry.changes.full(), "the sync after a failure is full: {}", retry.summary());
        assert!(retry.changed_port(SVC1), "the failed sync's changes are carried over: {}", retry.summary());
        assert_eq!(retry.endpoints(SVC1), ["10.180.0.1:8080", "10.180.0.2:8080"]);
        eventually_status(daemon.healthz, "/healthz", 200).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_that_keep_failing_make_the_proxy_unhealthy_until_one_succeeds() {
    bounded(async {
        let dir = TempDir::new("daemon-unhealthy");
        let (_server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        recorder.fail_next(usize::MAX);
        let daemon = Daemon::start(&Source::Kubeconfig(kubeconfig), &recorder).await;
        recorder.wait_for("a failed first sync", 0, |s| s.failed).await;
        // The health timeout is twice the sync period.
        let unhealthy = eventually_status(daemon.healthz, "/healthz", 503).await;
        let body: serde_json::Value = serde_json::from_str(&unhealthy.body).expect("JSON body");
        assert_eq!(body["healthy"], false, "{body}");
        eventually_status(daemon.healthz, "/livez", 503).await;
        recorder.fail_next(0);
        let (_, ok) = recorder.wait_for("a successful sync", 0, |s| !s.failed).await;
        assert!(ok.changes.full());
        eventually_status(daemon.healthz, "/healthz", 200).await;
        eventually_status(daemon.healthz, "/livez", 200).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_servers_answer_as_upstream() {
    bounded(async {
        let dir = TempDir::new("daemon-servers");
        let (_server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;

        let healthz = eventually_status(daemon.healthz, "/healthz", 200).await;
        assert_eq!(healthz.headers.get("content-type").map(String::as_str), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&healthz.body).expect("JSON body");
        for field in ["lastUpdated", "currentTime"] {
            let time = body[field].as_str().unwrap_or_else(|| panic!("{field} in {body}"));
            assert!(time.ends_with('Z') && time.contains('T'), "{field}: {time}");
        }
        assert_eq!(body["healthy"], true, "{body}");
        assert_eq!(body["nodeEligible"], true, "{body}");
        assert_eq!(body["status"]["IPv4"]["healthy"], true, "{body}");
        let livez = get(daemon.healthz, "/livez").await;
        assert_eq!(livez.status, 200, "{}", livez.body);
        let body: serde_json::Value = serde_json::from_str(&livez.body).expect("JSON body");
        assert!(body.get("nodeEligible").is_none(), "{body}");

        let metrics = daemon.metrics_get("/metrics").await;
        assert_eq!(metrics.status, 200);
        let text = metrics.body;
        assert!(text.contains("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram"), "{text}");
        let count =
            support::metric_value(&text, r#"kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"}"#);
        assert!(count.is_some_and(|c| c >= 1.0), "{text}");
        let last =
            support::metric_value(&text, r#"kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}"#);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs_f64();
        assert!(last.is_some_and(|t| (now - 120.0..=now + 1.0).contains(&t)), "last sync {last:?}, now {now}");
        assert!(text.contains(r#"kubeproxy_proxy_healthz_total{code="200"}"#), "{text}");

        let mode = daemon.metrics_get("/proxyMode").await;
        assert_eq!((mode.status, mode.body.as_str()), (200, support::RECORDING));
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_node_port_answers_by_local_endpoints() {
    bounded(async {
        let dir = TempDir::new("daemon-hcnp");
        let (server, kubeconfig) = cluster(&dir).await;
        let port = free_port().port();
        let lb = |hc: u16| {
            service("ns1", "lb")
                .type_("LoadBalancer")
                .cluster_ip("172.30.0.50")
                .port("p80", 80, "TCP", Some(30080))
                .external_traffic_policy("Local")
                .health_check_node_port(i32::from(hc))
                .lb_ingress(LB_IP, None)
                .build()
        };
        server.apply(&lb(port));
        let remote = |b: kproxy_testkit::SliceBuilder| b.endpoint("10.180.0.5", |e| e.node("node2"));
        server.apply(&remote(slice("ns1", "lb", "lb-a").tcp("p80", 8080)).build());
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        assert!(recorder.syncs()[0].has_port("ns1/lb:p80"));

        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let none = eventually_status(addr, "/", 503).await;
        assert!(none.body.contains("\"localEndpoints\": 0"), "{}", none.body);
        server.apply(
            &remote(slice("ns1", "lb", "lb-a").tcp("p80", 8080)).endpoint("10.180.0.6", |e| e.node("node1")).build(),
        );
        let local = eventually_status(addr, "/healthz", 200).await;
        assert!(local.body.contains("\"localEndpoints\": 1"), "{}", local.body);
        assert_eq!(local.headers.get("x-load-balancing-endpoint-weight").map(String::as_str), Some("1"));
        assert_eq!(local.headers.get("content-type").map(String::as_str), Some("application/json"));

        // The Service goes away: its health check closes.
        assert!(server.delete(ResourceKind::Service, "ns1", "lb"));
        eventually("the health check port to close", || std::net::TcpStream::connect(addr).err()).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_loses_a_claim_gets_one_event_while_the_conflict_lasts() {
    bounded(async {
        let dir = TempDir::new("daemon-conflict-event");
        let (server, kubeconfig) = cluster(&dir).await;
        let claiming = |name: &str, ip: &str, created: i64, port: i32| {
            let created = k8s_openapi::jiff::Timestamp::from_second(created).expect("a valid time");
            service("ns1", name)
                .cluster_ip(ip)
                .tcp("p80", port)
                .external_ips(&["192.0.2.7"])
                .with(|s| s.metadata.creation_timestamp = Some(Time(created)))
                .build()
        };
        // The newer Service sorts first by name: only its age makes it lose.
        server.apply(&claiming("a-newer", "172.30.0.52", 2_000_000_000, 80));
        server.apply(&claiming("b-older", "172.30.0.51", 1_000_000_000, 80));
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        let events = eventually("the conflict's Event", || Some(server.events()).filter(|e| !e.is_empty())).await;
        let event = &events[0];
        assert_eq!(event["type"], "Warning", "{event}");
        assert_eq!(event["reason"], "ServicePortConflict", "{event}");
        assert_eq!(event["metadata"]["namespace"], "ns1", "{event}");
        assert_eq!((&event["regarding"]["kind"], &event["regarding"]["name"]), (&"Service".into(), &"a-newer".into()));
        assert!(event["regarding"]["uid"].as_str().is_some_and(|uid| !uid.is_empty()), "{event}");
        assert_eq!(event["related"]["name"], "b-older", "{event}");
        let note = event["note"].as_str().unwrap_or_default();
        assert!(note.contains("192.0.2.7:80/TCP") && note.contains("ns1/b-older"), "{note}");
        assert_eq!(event["reportingController"], "kproxy", "{event}");
        assert_eq!(daemon.metric("kproxy_service_port_conflicts").await, Some(1.0));

        // While it lasts, neither a change of the loser nor the periodic sync publishes again.
        let from = recorder.len();
        server.apply(&claiming("a-newer", "172.30.0.53", 2_000_000_000, 80));
        recorder.wait_for("the loser's change", from, |s| s.changed_port("ns1/a-newer:p80")).await;
        recorder.wait_for("a periodic sync", from, |s| s.is_idle()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(server.events().len(), 1, "one Event per conflict: {:?}", server.events());
        daemon.stop().await;
    })
    .await;
}

/// Writes `objects` as one multi-document YAML file (JSON documents are YAML too), atomically.
fn write_manifest(dir: &Path, file: &str, objects: &[serde_json::Value]) {
    let text: String = objects.iter().map(|o| format!("---\n{o}\n")).collect();
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(file)).expect("rename manifest");
}

fn json(object: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(object).expect("serializable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_directory_drives_the_daemon() {
    bounded(async {
        let dir = TempDir::new("daemon-manifests");
        write_manifest(dir.path(), "services.yaml", &[json(&svc1())]);
        write_manifest(dir.path(), "slices.yaml", &[json(&svc1_slice(&["10.180.0.1"]))]);
        write_manifest(dir.path(), "nodes.yaml", &[json(&node1()), json(&node("node2").build())]);
        std::fs::write(dir.path().join("README.txt"), "not a manifest").expect("write");
        let recorder = Recorder::default();
        let daemon = Daemon::start(&Source::Manifests(dir.path().to_owned()), &recorder).await;
        let (index, first) = recorder.wait_for("the first sync", 0, |_| true).await;
        assert_eq!(index, 0);
        assert!(first.changes.full() && !first.failed, "{}", first.summary());
        assert_eq!(first.ports(), [SVC1]);
        assert_eq!(first.endpoints(SVC1), ["10.180.0.1:8080"]);
        assert_eq!(first.state.node.name, "node1");

        let from = recorder.len();
        write_manifest(dir.path(), "slices.yaml", &[json(&svc1_slice(&["10.180.0.1", "10.180.0.2"]))]);
        let (_, changed) = recorder.wait_for("the changed file", from, |s| s.endpoints(SVC1).len() == 2).await;
        assert!(changed.changed_port(SVC1), "{}", changed.summary());

        let from = recorder.len();
        let svc2 = service("ns1", "svc2").cluster_ip("172.30.0.43").tcp("p80", 80).build();
        write_manifest(dir.path(), "services.yaml", &[json(&svc1()), json(&svc2)]);
        recorder.wait_for("the added Service", from, |s| s.has_port("ns1/svc2:p80")).await;

        let from = recorder.len();
        std::fs::remove_file(dir.path().join("slices.yaml")).expect("remove");
        let (_, removed) = recorder.wait_for("the removed file", from, |s| s.endpoints(SVC1).is_empty()).await;
        assert!(removed.has_port(SVC1), "{}", removed.summary());
        eventually_status(daemon.healthz, "/healthz", 200).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_the_node_is_tainted_for_deletion() {
    bounded(async {
        let dir = TempDir::new("daemon-node-eligible");
        let (server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;
        eventually_status(daemon.healthz, "/healthz", 200).await;
        let mut tainted = node1();
        tainted.spec.get_or_insert_default().taints = Some(vec![k8s_openapi::api::core::v1::Taint {
            key: "ToBeDeletedByClusterAutoscaler".to_owned(),
            effect: "NoSchedule".to_owned(),
            ..Default::default()
        }]);
        server.apply(&tainted);
        let response = eventually_status(daemon.healthz, "/healthz", 503).await;
        assert!(response.body.contains("\"nodeEligible\":false"), "{}", response.body);
        eventually_status(daemon.healthz, "/livez", 200).await;
        server.apply(&node1());
        eventually_status(daemon.healthz, "/healthz", 200).await;
        daemon.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_from_the_programmed_state_with_the_dataplanes_names() {
    bounded(async {
        let dir = TempDir::new("daemon-explain");
        let (_server, kubeconfig) = cluster(&dir).await;
        let recorder = Recorder::default();
        let daemon = started(&kubeconfig, &recorder).await;

        let answer = daemon.metrics_get("/explain?dst=172.30.0.41:80&from=10.0.1.10").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.headers.get("content-type").map(String::as_str), Some("application/json"));
        let body: serde_json::Value = serde_json::from_str(&answer.body).expect("JSON body");
        assert_eq!(body["node"], "node1", "{body}");
        assert_eq!(body["mode"], support::RECORDING, "{body}");
        assert_eq!(body["service"]["service_port"], SVC1, "{body}");
        assert_eq!(body["service"]["matched_by"], "cluster_ip", "{body}");
        assert_eq!(body["verdict"], "forward", "{body}");
        assert_eq!(body["source"], "10.0.1.10", "{body}");
        assert_eq!(body["endpoints"][0]["address"], "10.180.0.1:8080", "{body}");
        assert_eq!(body["endpoints"][0]["eligible"], true, "{body}");
        assert_eq!(body["rules"][0]["name"], "ns1/svc1:p80 via ClusterIp", "{body}");

        let udp = daemon.metrics_get("/explain?dst=172.30.0.41:80&proto=udp").await;
        let body: serde_json::Value = serde_json::from_str(&udp.body).expect("JSON body");
        assert_eq!((udp.status, &body["verdict"]), (200, &serde_json::json!("not_a_service")), "{body}");

        let bad = daemon.metrics_get("/explain?dst=nonsense").await;
        assert_eq!(bad.status, 400, "{}", bad.body);
        let body: serde_json::Value = serde_json::from_str(&bad.body).expect("JSON body");
        assert!(body["error"].as_str().is_some_and(|e| e.contains("invalid destination")), "{body}");
        daemon.stop().await;
    })
    .await;
}
