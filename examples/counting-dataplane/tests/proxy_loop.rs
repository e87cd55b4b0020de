//! The counting dataplane driven by kproxy-core's `ProxyLoop`, as the daemon, the
//! conformance harness and `kproxy render` drive every dataplane: events in, syncs out. No
//! root, no kernel: the inner dataplane only accepts.

use std::time::SystemTime;

use counting_dataplane::CountingDataplane;
use kproxy_core::{Changes, Dataplane, ObjectEvent, ProxyLoop, ProxyState, SourceEvent, SyncError, SyncStats};
use kproxy_testkit::{node, service, slice};

/// Accepts every state and programs nothing.
struct Accepting;

#[async_trait::async_trait]
impl Dataplane for Accepting {
    fn name(&self) -> &'static str {
        "accepting"
    }

    async fn sync(&mut self, _: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        Ok(SyncStats { full: changes.full(), ..SyncStats::default() })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}

fn endpoints(ips: &[&str]) -> SourceEvent {
    let slice = ips.iter().fold(slice("ns1", "web", "web-1").tcp("http", 8080), |b, ip| b.ready(ip)).build();
    SourceEvent::EndpointSlice(ObjectEvent::Apply(slice))
}

#[tokio::test]
async fn the_loop_syncs_fully_first_then_only_what_changed() {
    let mut proxy = ProxyLoop::new("node1", SystemTime::now());
    let web = service("ns1", "web").cluster_ip("172.30.0.10").tcp("http", 80).build();
    proxy.on_event(SourceEvent::Service(ObjectEvent::reset(vec![web])));
    proxy.on_event(SourceEvent::EndpointSlice(ObjectEvent::reset(vec![])));
    assert!(!proxy.wants_sync(), "not before every initial list has arrived");
    proxy.on_event(SourceEvent::Node(ObjectEvent::reset(vec![node("node1").build()])));
    proxy.on_event(endpoints(&["10.180.0.1", "10.180.0.2"]));
    assert!(proxy.wants_sync());

    let mut dataplane = CountingDataplane { inner: Accepting, syncs: (0, 0), endpoints: 0 };
    let first = proxy.sync(&mut dataplane, false).await.expect("accepted");
    assert!(first.changes.full(), "the first sync is full");
    assert_eq!((dataplane.syncs, dataplane.endpoints), ((1, 1), 2));

    proxy.on_event(endpoints(&["10.180.0.1", "10.180.0.2", "10.180.0.3"]));
    let second = proxy.sync(&mut dataplane, false).await.expect("accepted");
    assert!(!second.changes.full(), "then only what changed");
    assert_eq!((dataplane.syncs, dataplane.endpoints), ((2, 1), 3));
    assert!(!proxy.wants_sync());
}
