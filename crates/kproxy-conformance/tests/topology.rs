//! The cluster and the harness themselves, with a dataplane that does nothing: direct
//! traffic, reply format, refused vs dropped, cleanup after drop and panic, the runner.
//! Every test that builds a cluster is a packet test: it needs root and `ip`, so a plain
//! `cargo test` ignores it; `cargo xtask test` runs it.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kproxy_conformance::plan::{
    CLIENT, CLIENT_IPV4, CLIENT_IPV6, NODE1, NODE1_IPV4, NODE2, POD1A, POD1B, POD2A, POD2B, PORT_ALT, PORT_CLOSED,
    PORT_DNS, PORT_HTTP,
};
use kproxy_conformance::{
    Case, CaseError, CaseFuture, Cluster, DataplaneFactory, Harness, NodeEnv, Outcome, Proto, Verdict, cases,
    leftover_namespaces, run_cases, run_conformance,
};
use kproxy_core::{Changes, Dataplane, ProxyState, SyncError, SyncStats};
use kproxy_testkit::prereq::{Tool, require};

/// A dataplane that programs nothing: the cluster's own routing is all there is.
struct Noop;

#[async_trait::async_trait]
impl Dataplane for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    async fn sync(&mut self, state: &ProxyState, _: &Changes) -> Result<SyncStats, SyncError> {
        Ok(SyncStats { service_ports: state.families().map(|f| f.services.len()).sum(), ..SyncStats::default() })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}

/// Records, at each sync, which network namespace its thread, a blocking task and a child
/// process are in.
struct Probe(std::sync::mpsc::Sender<[String; 3]>);

fn netns_of(path: &str) -> String {
    std::fs::read_link(path).map(|p| p.display().to_string()).unwrap_or_else(|e| e.to_string())
}

#[async_trait::async_trait]
impl Dataplane for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    async fn sync(&mut self, _: &ProxyState, _: &Changes) -> Result<SyncStats, SyncError> {
        let thread = netns_of("/proc/thread-self/ns/net");
        let blocking = tokio::task::spawn_blocking(|| netns_of("/proc/thread-self/ns/net")).await.unwrap();
        let child = Command::new("readlink").arg("/proc/self/ns/net").output().unwrap();
        let child = String::from_utf8_lossy(&child.stdout).trim().to_owned();
        self.0.send([thread, blocking, child]).unwrap();
        Ok(SyncStats::default())
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}

fn noop_factory() -> Arc<DataplaneFactory> {
    Arc::new(|_: &NodeEnv| Ok(Box::new(Noop) as Box<dyn Dataplane>))
}

/// Fails the test unless it can build a cluster.
fn require_cluster_tools() {
    require(&[Tool::Ip]);
}

fn at(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

fn root_links() -> String {
    let out = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().filter_map(|l| l.split(':').nth(1)).map(str::trim).collect::<Vec<_>>().join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
async fn bare_cluster_carries_direct_traffic() {
    require_cluster_tools();
    let links_before = root_links();
    let cluster = tokio::task::spawn_blocking(Cluster::create).await.unwrap().unwrap();
    let prefix = cluster.prefix().to_owned();
    assert_eq!(leftover_namespaces(&prefix).len(), 9);
    let mut h = Harness::new(cluster, noop_factory()).await.unwrap();
    assert_eq!(h.dataplane_name(), "noop");

    // Pod to pod across nodes, both families and protocols; the reply names pod and source.
    let r = h.tcp_request(POD1A.name, at(POD2A.ipv4, PORT_HTTP)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod2a", IpAddr::from(POD1A.ipv4)));
    let r = h.tcp_request(POD1A.name, at(POD2B.ipv6, PORT_ALT)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod2b", IpAddr::from(POD1A.ipv6)));
    let r = h.udp_request(POD1B.name, at(POD2A.ipv4, PORT_DNS)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod2a", IpAddr::from(POD1B.ipv4)));
    let r = h.udp_request(POD2B.name, at(POD1A.ipv6, PORT_HTTP)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod1a", IpAddr::from(POD2B.ipv6)));

    // Clients and nodes to pods.
    let r = h.tcp_request(CLIENT, at(POD1A.ipv4, PORT_HTTP)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod1a", IpAddr::from(CLIENT_IPV4)));
    let r = h.tcp_request(CLIENT, at(POD2B.ipv6, PORT_HTTP)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod2b", IpAddr::from(CLIENT_IPV6)));
    let r = h.tcp_request(NODE1, at(POD2A.ipv4, PORT_HTTP)).await.unwrap();
    assert_eq!((r.pod.as_str(), r.source.ip()), ("pod2a", IpAddr::from(NODE1_IPV4)));
    assert_eq!(h.tcp_request(NODE2, at(POD1B.ipv4, PORT_HTTP)).await.unwrap().pod, "pod1b");
    let spread = h.spread(CLIENT, at(POD2A.ipv4, PORT_HTTP), 5).await;
    assert_eq!(spread, BTreeMap::from([("pod2a".to_owned(), 5)]));

    // A fixed UDP source port works for consecutive requests.
    for _ in 0..2 {
        let r = h.request(Proto::UdpFrom(41999), POD1A.name, at(POD2B.ipv4, PORT_DNS)).await.unwrap();
        assert_eq!(r.source, at(POD1A.ipv4, 41999));
    }

    // Refused (RST, ICMP port unreachable) comes at once; a drop times out.
    h.set_request_timeout(Duration::from_secs(1));
    let start = Instant::now();
    assert!(matches!(h.tcp_request(CLIENT, at(POD1A.ipv4, PORT_CLOSED)).await, Err(Outcome::Refused(_))));
    assert!(matches!(h.udp_request(POD1A.name, at(POD2A.ipv4, PORT_CLOSED)).await, Err(Outcome::Refused(_))));
    assert!(start.elapsed() < Duration::from_millis(500), "refusals took {:?}", start.elapsed());
    let unassigned = at(std::net::Ipv4Addr::new(172, 30, 255, 254), 80);
    let start = Instant::now();
    assert_eq!(h.tcp_request(CLIENT, unassigned).await, Err(Outcome::TimedOut));
    assert_eq!(h.udp_request(POD1A.name, unassigned).await, Err(Outcome::TimedOut));
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(h.spread(CLIENT, unassigned, 3).await, BTreeMap::from([("!timed-out".to_owned(), 1)]));
    assert!(matches!(h.tcp_request("nowhere", unassigned).await, Err(Outcome::Failed(_))));

    // The model path: objects in, a sync out, and a reset clears them.
    let svc = kproxy_testkit::service("ns", "s").cluster_ip("172.30.9.9").tcp("p", 80).build();
    assert_eq!(h.apply_service(svc).await.unwrap().service_ports, 1);
    h.reset().await.unwrap();
    assert_eq!(h.state().families().map(|f| f.services.len()).sum::<usize>(), 0);

    h.shutdown().await.unwrap();
    assert!(leftover_namespaces(&prefix).is_empty(), "left: {:?}", leftover_namespaces(&prefix));
    assert_eq!(root_links(), links_before, "the root namespace's links changed");
}

#[tokio::test]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
async fn dataplane_runs_inside_node1() {
    require_cluster_tools();
    let cluster = tokio::task::spawn_blocking(Cluster::create).await.unwrap().unwrap();
    let node1 = cluster.exec(NODE1, "readlink", &["/proc/self/ns/net"]).unwrap().trim().to_owned();
    let mine = netns_of("/proc/thread-self/ns/net");
    assert_ne!(node1, mine);
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let factory: Arc<DataplaneFactory> =
        Arc::new(move |_: &NodeEnv| Ok(Box::new(Probe(tx.lock().unwrap().clone())) as Box<dyn Dataplane>));
    let h = Harness::new(cluster, factory).await.unwrap();
    assert_eq!(rx.recv().unwrap(), [node1.clone(), node1.clone(), node1]);
    assert_eq!(netns_of("/proc/thread-self/ns/net"), mine);
    h.shutdown().await.unwrap();
}

#[test]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
fn namespaces_go_with_the_cluster() {
    require_cluster_tools();
    let cluster = Cluster::create().unwrap();
    let prefix = cluster.prefix().to_owned();
    assert_eq!(leftover_namespaces(&prefix).len(), 9);
    drop(cluster);
    assert!(leftover_namespaces(&prefix).is_empty(), "left: {:?}", leftover_namespaces(&prefix));
}

#[test]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
fn namespaces_go_after_a_panic() {
    require_cluster_tools();
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let cluster = Cluster::create().unwrap();
        tx.send(cluster.prefix().to_owned()).unwrap();
        panic!("deliberate panic while holding a cluster");
    })
    .join();
    assert!(outcome.is_err());
    let prefix = rx.recv().unwrap();
    assert!(leftover_namespaces(&prefix).is_empty(), "left: {:?}", leftover_namespaces(&prefix));
}

fn direct(h: &mut Harness) -> CaseFuture<'_> {
    Box::pin(async move {
        let reply =
            h.tcp_request(CLIENT, at(POD2A.ipv4, PORT_HTTP)).await.map_err(|o| CaseError::Fail(o.to_string()))?;
        if reply.pod == "pod2a" { Ok(()) } else { Err(CaseError::Fail(reply.pod)) }
    })
}

fn panics(_: &mut Harness) -> CaseFuture<'_> {
    Box::pin(async { panic!("deliberate panic in a case") })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
async fn runner_reports_pass_fail_and_skip() {
    require_cluster_tools();
    let mut table = vec![
        Case { name: "direct", proves: "the cluster routes", run: direct },
        Case { name: "panics", proves: "nothing", run: panics },
    ];
    // Against a dataplane that does nothing, a real case must fail, never pass.
    table.extend(cases().into_iter().filter(|c| ["hairpin", "no-endpoints-reject"].contains(&c.name)));
    let report = run_cases(noop_factory(), &table, &[("hairpin", "noop cannot hairpin")], None).await;
    let verdicts: BTreeMap<&str, &Verdict> = report.cases.iter().map(|c| (c.name, &c.verdict)).collect();
    assert_eq!(verdicts["direct"], &Verdict::Pass);
    assert!(matches!(verdicts["panics"], Verdict::Fail(why) if why.contains("deliberate panic")));
    assert_eq!(verdicts["hairpin"], &Verdict::Skip("noop cannot hairpin".to_owned()));
    assert!(matches!(verdicts["no-endpoints-reject"], Verdict::Fail(why) if why.contains("timed out")));
    assert_eq!(report.summary(), "1 passed, 2 failed, 1 skipped");
    assert!(std::panic::catch_unwind(|| report.assert_all_passed()).is_err());
}

#[tokio::test]
async fn skipped_cases_need_no_cluster() {
    let report = run_conformance(
        |_: &NodeEnv| Ok(Box::new(Noop) as Box<dyn Dataplane>),
        &[("sctp-clusterip", "no")],
        Some("sctp"),
    )
    .await;
    assert_eq!(report.summary(), "0 passed, 0 failed, 1 skipped");
    report.assert_all_passed();
    let names: Vec<&str> = cases().iter().map(|c| c.name).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "case names must be unique");
    assert!(cases().iter().all(|c| !c.proves.is_empty()));
}
