//! kube's real `watcher()` and `Api` against the fake apiserver.

mod support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_testkit::fake_apiserver::{FakeApiServer, FakeApiServerOptions, ResourceKind};
use kproxy_testkit::{node, service, service_cidr, slice};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use support::{WAIT, Watch};

const PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

async fn services(server: &FakeApiServer, config: watcher::Config) -> Watch<Service> {
    let client = server.client().await.expect("client");
    Watch::new(watcher(Api::<Service>::all(client), config))
}

#[tokio::test]
async fn initial_list_delivers_objects_then_init_done() {
    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build());
    server.apply(&service("ns2", "svc2").cluster_ip("172.30.0.42").build());
    let mut watch = services(&server, watcher::Config::default()).await;
    assert_eq!(watch.next_init().await, ["svc1", "svc2"]);
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.starts_with("GET /api/v1/services?") && r.contains("limit=500")), "{requests:?}");
}

#[tokio::test]
async fn changes_after_start_arrive_as_apply_and_delete() {
    let server = FakeApiServer::start().await;
    let client = server.client().await.expect("client");
    let mut watch = Watch::new(watcher(Api::<EndpointSlice>::all(client), watcher::Config::default()));
    assert_eq!(watch.next_init().await, Vec::<String>::new());
    server.apply(&slice("ns1", "svc1", "svc1-abc").tcp("p80", 8080).ready("10.180.0.1").build());
    assert_eq!(watch.next_change().await, "Apply svc1-abc");
    server.apply(&slice("ns1", "svc1", "svc1-abc").tcp("p80", 8080).ready("10.180.0.2").build());
    assert_eq!(watch.next_change().await, "Apply svc1-abc");
    assert!(server.delete(ResourceKind::EndpointSlice, "ns1", "svc1-abc"));
    assert_eq!(watch.next_change().await, "Delete svc1-abc");
    let requests = server.requests();
    let watched = |r: &String| r.contains("/endpointslices?") && r.contains("watch=true");
    assert!(requests.iter().any(|r| watched(r) && r.contains("allowWatchBookmarks=true")), "{requests:?}");
}

#[tokio::test]
async fn service_cidrs_are_served_cluster_scoped_by_networking_v1() {
    let server = FakeApiServer::start().await;
    server.apply(&service_cidr("kubernetes", &["172.30.0.0/16"]));
    let client = server.client().await.expect("client");
    let mut watch = Watch::new(watcher(Api::<ServiceCIDR>::all(client), watcher::Config::default()));
    assert_eq!(watch.next_init().await, ["kubernetes"]);
    server.apply(&service_cidr("extra", &["172.31.0.0/16"]));
    assert_eq!(watch.next_change().await, "Apply extra");
    assert!(server.delete(ResourceKind::ServiceCidr, "", "extra"));
    assert_eq!(watch.next_change().await, "Delete extra");
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.starts_with("GET /apis/networking.k8s.io/v1/servicecidrs?")), "{requests:?}");
}

#[tokio::test]
async fn label_selector_excludes_labelled_services() {
    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "plain").build());
    server.apply(&service("ns1", "other").label(PROXY_NAME_LABEL, "other-proxy").build());
    let config = watcher::Config::default().labels(&format!("!{PROXY_NAME_LABEL}"));
    let mut watch = services(&server, config).await;
    assert_eq!(watch.next_init().await, ["plain"]);
    // A service that starts carrying the label stops matching: the watch sees it deleted.
    server.apply(&service("ns1", "plain").label(PROXY_NAME_LABEL, "other-proxy").build());
    assert_eq!(watch.next_change().await, "Delete plain");
    server.apply(&service("ns1", "labelled").label(PROXY_NAME_LABEL, "other-proxy").build());
    server.apply(&service("ns1", "unlabelled").build());
    assert_eq!(watch.next_change().await, "Apply unlabelled");
}

#[tokio::test]
async fn field_selector_selects_one_node() {
    let server = FakeApiServer::start().await;
    server.apply(&node("node1").internal_ip("192.168.0.2").build());
    server.apply(&node("node2").internal_ip("192.168.0.3").build());
    let client = server.client().await.expect("client");
    let config = watcher::Config::default().fields("metadata.name=node1");
    let mut watch = Watch::new(watcher(Api::<Node>::all(client), config));
    assert_eq!(watch.next_init().await, ["node1"]);
    server.apply(&node("node2").zone("zone-b").build());
    server.apply(&node("node1").zone("zone-a").build());
    assert_eq!(watch.next_change().await, "Apply node1");
}

#[tokio::test]
async fn compaction_and_dropped_watches_force_a_relist() {
    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "old").build());
    let mut watch = services(&server, watcher::Config::default()).await;
    assert_eq!(watch.next_init().await, ["old"]);
    server.apply(&service("ns1", "new").build());
    assert!(server.delete(ResourceKind::Service, "ns1", "old"));
    server.compact();
    server.drop_watches();
    // The resumed watch gets 410 Gone; the watcher relists and sees the current state.
    let mut saw_gone = false;
    loop {
        match watch.next().await {
            Err(watcher::Error::WatchError(status)) => saw_gone |= status.code == 410,
            Ok(watcher::Event::Init) => break,
            _ => {}
        }
    }
    assert!(saw_gone, "no 410 before the relist");
    let mut names = Vec::new();
    loop {
        match watch.next_ok().await {
            watcher::Event::InitApply(svc) => names.push(support::name(&svc)),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {}", support::describe(&other)),
        }
    }
    assert_eq!(names, ["new"]);
}

#[tokio::test]
async fn unavailable_apiserver_errors_then_recovers() {
    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "svc1").build());
    let mut config = server.config().await.expect("config");
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    let mut watch = Watch::new(watcher(Api::<Service>::all(client), watcher::Config::default()).default_backoff());
    assert_eq!(watch.next_init().await, ["svc1"]);
    server.set_unavailable(true);
    let err = loop {
        if let Err(err) = watch.next().await {
            break err;
        }
    };
    assert!(matches!(&err, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 503), "{err:?}");
    server.apply(&service("ns1", "svc2").build());
    server.set_unavailable(false);
    assert_eq!(watch.next_change().await, "Apply svc2");
}

#[tokio::test]
async fn unavailable_apiserver_is_retried_by_the_default_client() {
    let server = FakeApiServer::start().await;
    let mut watch = services(&server, watcher::Config::default()).await;
    assert_eq!(watch.next_init().await, Vec::<String>::new());
    let before = server.requests().len();
    server.set_unavailable(true);
    // kube retries 503s inside the client: the watcher yields nothing while it is refused a few times.
    let refused = async {
        while server.requests().len() < before + 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = refused => {}
        event = watch.next() => panic!("unexpected {event:?}"),
    }
    server.apply(&service("ns1", "svc1").build());
    server.set_unavailable(false);
    assert_eq!(watch.next_change().await, "Apply svc1");
}

#[tokio::test]
async fn missing_bearer_token_gets_401() {
    let server = FakeApiServer::start().await;
    let config = kube::Config::new(server.url().parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let err = Api::<Service>::all(client).list(&ListParams::default()).await.expect_err("401");
    match err {
        kube::Error::Api(status) => assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized")),
        other => panic!("expected a 401 Status, got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_list_ends_with_initial_events_bookmark() {
    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "svc1").build());
    let mut watch = services(&server, watcher::Config::default().streaming_lists()).await;
    assert_eq!(watch.next_init().await, ["svc1"]);
    server.apply(&service("ns1", "svc2").build());
    assert_eq!(watch.next_change().await, "Apply svc2");
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.contains("sendInitialEvents=true")), "{requests:?}");
}

#[tokio::test]
async fn watch_sends_bookmarks_and_ends_at_timeout_seconds() {
    let options = FakeApiServerOptions::default().bookmark_interval(Duration::from_millis(100));
    let server = FakeApiServer::start_with(options).await;
    server.apply(&service("ns1", "svc1").build());
    let api = Api::<Service>::all(server.client().await.expect("client"));
    let stream = api.watch(&WatchParams::default().timeout(1), "0").await.expect("watch");
    let events: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>()).await.expect("the watch ends");
    assert!(matches!(events.first(), Some(Ok(WatchEvent::Added(svc))) if support::name(svc) == "svc1"));
    let bookmarks = events.iter().filter(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))).count();
    assert!(bookmarks >= 3, "{events:?}");
}

#[tokio::test]
async fn malformed_objects_are_served_verbatim() {
    let server = FakeApiServer::start().await;
    let bad = json!({"metadata": {"name": "bad", "namespace": "ns1"}, "spec": {"clusterIP": "not-an-ip"}});
    let rv = server.apply_json(ResourceKind::Service, bad);
    server.apply(&service("ns2", "good").build());
    let api = Api::<Service>::namespaced(server.client().await.expect("client"), "ns1");
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    let svc = &list.items[0];
    assert_eq!(svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()), Some("not-an-ip"));
    assert_eq!(svc.metadata.resource_version, Some(rv.to_string()));
    let got = api.get("bad").await.expect("get");
    assert!(got.metadata.uid.is_some() && got.metadata.creation_timestamp.is_some());
}

#[tokio::test]
async fn kubeconfig_file_points_at_the_server() {
    let server = FakeApiServer::start().await;
    let path =
        std::env::temp_dir().join(format!("kproxy-fake-apiserver-{}.yaml", server.url().replace([':', '/'], "_")));
    server.write_kubeconfig(&path).expect("write");
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read");
    std::fs::remove_file(&path).expect("remove");
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let version = client.apiserver_version().await.expect("version");
    assert_eq!(version.major, "1");
    let nodes = Api::<Node>::all(client).list(&ListParams::default()).await.expect("list");
    assert!(nodes.items.is_empty());
}

#[tokio::test]
async fn objects_that_do_not_decode_are_served_in_lists_and_watches() {
    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "good").build());
    let bad = |name: &str| service("ns1", name).cluster_ip("172.30.0.41").tcp("p80", 80).build();
    server.apply_with(&bad("bad"), "/spec/ports/0/port", json!("eighty"));
    let client = server.client().await.expect("client");
    // A typed list fails as a whole on its one bad item.
    let typed = Api::<Service>::all(client.clone()).list(&ListParams::default()).await;
    assert!(matches!(typed, Err(kube::Error::SerdeError(_))), "{typed:?}");

    let raw = Api::<DynamicObject>::all_with(client, &ApiResource::erase::<Service>(&()));
    let list = raw.list(&ListParams::default()).await.expect("an untyped list decodes");
    let ports: Vec<(String, serde_json::Value)> =
        list.items.iter().map(|o| (support::name(o), o.data["spec"]["ports"][0]["port"].clone())).collect();
    assert_eq!(ports, [("bad".to_owned(), json!("eighty")), ("good".to_owned(), serde_json::Value::Null)]);

    let rv = list.metadata.resource_version.expect("a list resourceVersion");
    let mut events = raw.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
    server.apply_with(&bad("bad2"), "/spec/ports/0/port", json!("eighty"));
    let event = tokio::time::timeout(WAIT, events.next()).await.expect("an event in time");
    match event {
        Some(Ok(WatchEvent::Added(obj))) => {
            assert_eq!(support::name(&obj), "bad2");
            assert_eq!(obj.data["spec"]["ports"][0]["port"], "eighty");
        }
        other => panic!("expected ADDED bad2, got {other:?}"),
    }
}

#[tokio::test]
async fn events_are_created_and_patched_as_kubes_recorder_publishes_them() {
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let server = FakeApiServer::start().await;
    server.apply(&service("ns1", "svc1").cluster_ip("172.30.0.41").build());
    let client = server.client().await.expect("client");
    let svc = Api::<Service>::namespaced(client.clone(), "ns1").get("svc1").await.expect("get svc1");
    let reporter = Reporter { controller: "kproxy".into(), instance: Some("node1".into()) };
    let recorder = Recorder::new(client, reporter);
    let event = Event {
        type_: EventType::Warning,
        reason: "ServicePortConflict".into(),
        note: Some("loses 192.0.2.1:80/TCP".into()),
        action: "ProgramServicePort".into(),
        secondary: None,
    };
    recorder.publish(&event, &svc.object_ref(&())).await.expect("created");
    recorder.publish(&event, &svc.object_ref(&())).await.expect("patched as a series");
    let events = server.events();
    assert_eq!(events.len(), 1, "the second is a series of the first: {events:?}");
    let stored = &events[0];
    assert_eq!(stored["metadata"]["namespace"], "ns1");
    assert_eq!(stored["type"], "Warning");
    assert_eq!(stored["reason"], "ServicePortConflict");
    assert_eq!(stored["regarding"]["name"], "svc1");
    assert_eq!(stored["regarding"]["uid"], svc.metadata.uid.clone().unwrap_or_default().as_str());
    assert_eq!(stored["series"]["count"], 2);
    let posts =
        server.requests().into_iter().filter(|r| r.starts_with("POST /apis/events.k8s.io/v1/namespaces/ns1/events"));
    assert_eq!(posts.count(), 1);
}

#[tokio::test]
async fn lists_come_in_pages_of_the_limit_asked_for() {
    let server = FakeApiServer::start().await;
    for (ns, name) in [("a", "z"), ("a-b", "c"), ("b", "a"), ("b", "b"), ("c", "x")] {
        server.apply(&service(ns, name).build());
    }
    let api = Api::<Service>::all(server.client().await.expect("client"));
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    let mut pages = 0;
    let first_rv = loop {
        let page = api.list(&params).await.expect("list");
        pages += 1;
        names.extend(page.items.iter().map(support::name));
        // Written between pages, after every key served so far: the next page has it.
        server.apply(&service("zz", "late").build());
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break page.metadata.resource_version,
        }
    };
    assert_eq!(pages, 3);
    assert_eq!(names, ["z", "c", "a", "b", "x", "late"]);
    assert!(first_rv.is_some());
    // kube's watcher pages through them the same way.
    let mut watch = services(&server, watcher::Config::default().page_size(2)).await;
    assert_eq!(watch.next_init().await.len(), 6);
}
