use std::collections::BTreeSet;
use std::future::Future;
use std::time::UNIX_EPOCH;

use kproxy_testkit::service;

use super::*;
use crate::dataplane::Retry;
use crate::event::ObjectEvent;

/// Runs a future that never waits (the fake dataplane answers at once).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut context) {
            return out;
        }
    }
}

/// Rejects any state holding a Service named in `poison`, like `nft -f` rejecting a
/// transaction; remembers what it programmed and how it was asked.
#[derive(Default)]
struct FakeDataplane {
    poison: BTreeSet<String>,
    fatal: bool,
    programmed: BTreeSet<String>,
    /// Per call: full, ports touched, succeeded.
    calls: Vec<(bool, usize, bool)>,
}

impl FakeDataplane {
    fn rejecting(names: &[&str]) -> Self {
        Self { poison: names.iter().map(|n| n.to_string()).collect(), ..Self::default() }
    }
}

#[async_trait::async_trait]
impl Dataplane for FakeDataplane {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let touched = IpFamily::ALL.iter().map(|f| changes.family(*f).service_ports.len()).sum();
        let names: BTreeSet<String> =
            state.families().flat_map(|f| f.services.iter().map(|(n, _)| n.service.name.clone())).collect();
        let bad = names.intersection(&self.poison).next().cloned();
        self.calls.push((changes.full(), touched, bad.is_none()));
        if let Some(bad) = bad {
            let retry = if self.fatal { Retry::Fatal } else { Retry::Rejected };
            return Err(SyncError {
                dataplane: "fake",
                step: "apply",
                retry,
                family: None,
                source: format!("rejected {bad}").into(),
            });
        }
        self.programmed = names;
        Ok(SyncStats { full: changes.full(), service_ports: self.programmed.len(), ..SyncStats::default() })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}

/// Folds `svc` in as an apiserver's watch would.
fn apply(proxy: &mut ProxyLoop, svc: k8s_openapi::api::core::v1::Service) {
    assert_eq!(proxy.on_event(SourceEvent::Service(ObjectEvent::Apply(svc))), []);
}

/// A loop with Services `names` (one port each) folded in.
fn loop_with(names: &[&str]) -> ProxyLoop {
    let mut proxy = ProxyLoop::new("node1", UNIX_EPOCH);
    for (i, name) in names.iter().enumerate() {
        apply(&mut proxy, service("ns", name).cluster_ip(&format!("10.96.0.{}", i + 1)).tcp("http", 80).build());
    }
    proxy
}

fn names(set: &BTreeSet<String>) -> Vec<&str> {
    set.iter().map(String::as_str).collect()
}

#[test]
fn a_clean_sync_is_one_call() {
    let mut proxy = loop_with(&["a", "b"]);
    let mut dataplane = FakeDataplane::default();
    let changes = proxy.checkout(false);
    assert!(changes.full(), "the first sync is full");
    let report = block_on(proxy.program(&mut dataplane, changes)).unwrap();
    assert_eq!(report.attempts, 1);
    assert_eq!(names(&dataplane.programmed), ["a", "b"]);
}

#[test]
fn a_rejected_port_is_quarantined_and_every_other_is_programmed() {
    let all: Vec<String> = (0..20).map(|i| format!("svc{i:02}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut proxy = loop_with(&all);
    let mut dataplane = FakeDataplane::rejecting(&["svc07", "svc13"]);
    let changes = proxy.checkout(false);
    let report = block_on(proxy.program(&mut dataplane, changes)).unwrap();
    let quarantined: Vec<String> = report.quarantined.iter().map(|q| q.name.service.name.clone()).collect();
    assert_eq!(quarantined.len(), 2);
    assert!(quarantined.contains(&"svc07".into()) && quarantined.contains(&"svc13".into()));
    assert_eq!(dataplane.programmed.len(), 18);
    assert!(!dataplane.programmed.contains("svc07"));
    assert!(report.quarantined[0].reason.contains("rejected"));
    assert!(report.attempts < 20, "bisection, not one call per port: {}", report.attempts);
    let failed_calls = dataplane.calls.iter().filter(|c| !c.2).count();
    assert_eq!(report.rejected_attempts, failed_calls, "every rejected call is counted");
    assert!(report.rejected_attempts >= 3, "the first call and one per quarantined port at least");
    assert_eq!(proxy.quarantined().count(), 2);
    assert_eq!(proxy.state().family(IpFamily::V4).services.len(), 18);
}

#[test]
fn every_call_after_a_failed_one_is_full_and_so_is_the_next_sync_after_one() {
    for poisoned in [&["bad"][..], &["a", "bad"], &["d"], &["a", "c", "d"]] {
        let mut proxy = loop_with(&["a", "bad", "c", "d"]);
        let mut dataplane = FakeDataplane::default();
        let changes = proxy.checkout(false);
        block_on(proxy.program(&mut dataplane, changes)).unwrap();
        dataplane.poison = poisoned.iter().map(|n| n.to_string()).collect();
        dataplane.calls.clear();
        let changes = proxy.checkout(true);
        block_on(proxy.program(&mut dataplane, changes)).unwrap();
        for pair in dataplane.calls.windows(2) {
            assert!(pair[0].2 || pair[1].0, "{poisoned:?}: a call after a failure must be full: {:?}", dataplane.calls);
        }
        let last_failed = dataplane.calls.last().is_some_and(|c| !c.2);
        assert_eq!(proxy.checkout(false).full(), last_failed, "{poisoned:?}");
        assert_eq!(proxy.quarantined().count(), poisoned.len());
    }
}

#[test]
fn a_quarantined_port_is_tried_again_when_its_service_changes() {
    let mut proxy = loop_with(&["a", "bad"]);
    let mut dataplane = FakeDataplane::rejecting(&["bad"]);
    let changes = proxy.checkout(false);
    block_on(proxy.program(&mut dataplane, changes)).unwrap();
    assert_eq!(proxy.quarantined().count(), 1);
    dataplane.poison.clear();
    let fixed = service("ns", "bad").cluster_ip("10.96.0.2").tcp("http", 8080).build();
    apply(&mut proxy, fixed);
    let changes = proxy.checkout(false);
    assert_eq!(proxy.quarantined().count(), 0);
    block_on(proxy.program(&mut dataplane, changes)).unwrap();
    assert_eq!(names(&dataplane.programmed), ["a", "bad"]);
}

/// Services `a` and `bad` synced twice, `bad` refused by the dataplane: quarantined, and
/// left out by the partial sync after; then the dataplane accepts it (say, a module was
/// loaded).
fn quarantined_then_accepted() -> (ProxyLoop, FakeDataplane) {
    let mut proxy = loop_with(&["a", "bad"]);
    let mut dataplane = FakeDataplane::rejecting(&["bad"]);
    for _ in 0..2 {
        let changes = proxy.checkout(false);
        block_on(proxy.program(&mut dataplane, changes)).unwrap();
    }
    assert_eq!(proxy.quarantined().count(), 1);
    dataplane.poison.clear();
    (proxy, dataplane)
}

#[test]
fn a_full_sync_tries_every_quarantined_port_again() {
    let (mut proxy, mut dataplane) = quarantined_then_accepted();
    let changes = proxy.checkout(true);
    assert!(changes.full());
    let report = block_on(proxy.program(&mut dataplane, changes)).unwrap();
    assert_eq!(report.attempts, 1);
    assert_eq!(names(&dataplane.programmed), ["a", "bad"]);
    assert_eq!(proxy.quarantined().count(), 0);
}

#[test]
fn a_periodic_sync_tries_quarantined_ports_again_without_a_full_sync() {
    let (mut proxy, mut dataplane) = quarantined_then_accepted();
    proxy.retry_quarantined();
    let changes = proxy.checkout(false);
    assert!(!changes.full(), "what was programmed is trusted");
    let retried: Vec<&str> =
        changes.family(IpFamily::V4).service_ports.iter().map(|p| p.service.name.as_str()).collect();
    assert_eq!(retried, ["bad"], "only the held-back port");
    block_on(proxy.program(&mut dataplane, changes)).unwrap();
    assert_eq!(names(&dataplane.programmed), ["a", "bad"]);
    assert_eq!(proxy.quarantined().count(), 0);
    // Asked once: the next partial sync retries nothing.
    assert!(proxy.checkout(false).family(IpFamily::V4).service_ports.is_empty());
}

/// Fails whatever the state, with `retry`: the cause is not in any port.
struct Broken {
    retry: Retry,
    calls: usize,
}

#[async_trait::async_trait]
impl Dataplane for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }

    async fn sync(&mut self, _: &ProxyState, _: &Changes) -> Result<SyncStats, SyncError> {
        self.calls += 1;
        Err(SyncError {
            dataplane: "broken",
            step: "apply",
            retry: self.retry,
            family: None,
            source: "no kernel".into(),
        })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}

#[test]
fn a_failure_that_is_not_in_the_ports_is_returned_and_retried_in_full() {
    // A transient error is returned at once; a rejection of every state, even the one
    // without the changed ports, after one more try.
    for (retry, calls) in [(Retry::Retryable, 1), (Retry::Rejected, 2)] {
        let mut proxy = loop_with(&["a", "b"]);
        let mut broken = Broken { retry, calls: 0 };
        let changes = proxy.checkout(false);
        let error = block_on(proxy.program(&mut broken, changes)).unwrap_err();
        assert!(error.to_string().contains("no kernel"));
        assert_eq!(broken.calls, calls, "{retry:?}");
        assert_eq!(proxy.quarantined().count(), 0, "nothing is blamed on the ports");
        assert_eq!(proxy.state().family(IpFamily::V4).services.len(), 2, "the state is whole again");
        let retried = proxy.checkout(false);
        assert!(retried.full());
        assert_eq!(retried.family(IpFamily::V4).service_ports.len(), 2, "the failed changes are kept");
        let mut dataplane = FakeDataplane::default();
        block_on(proxy.program(&mut dataplane, retried)).unwrap();
        assert_eq!(names(&dataplane.programmed), ["a", "b"]);
    }
}

/// Rejects states holding `bad`; fails transiently once `fail_after` more calls were made.
struct FlakyDuringSearch {
    inner: FakeDataplane,
    fail_after: usize,
}

#[async_trait::async_trait]
impl Dataplane for FlakyDuringSearch {
    fn name(&self) -> &'static str {
        "flaky"
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        if self.fail_after == 0 {
            return Err(SyncError::retryable("flaky", "apply", "lock busy"));
        }
        self.fail_after -= 1;
        self.inner.sync(state, changes).await
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}

#[test]
fn a_transient_error_during_the_search_puts_every_held_port_back() {
    let all: Vec<String> = (0..8).map(|i| format!("svc{i}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut proxy = loop_with(&all);
    // The first call is rejected, the state without the suspects succeeds, then the lock is busy.
    let mut flaky = FlakyDuringSearch { inner: FakeDataplane::rejecting(&["svc3"]), fail_after: 2 };
    let changes = proxy.checkout(false);
    let error = block_on(proxy.program(&mut flaky, changes)).unwrap_err();
    assert!(error.to_string().contains("lock busy"));
    assert_eq!(proxy.state().family(IpFamily::V4).services.len(), 8, "every held port is back");
    let retried = proxy.checkout(false);
    assert!(retried.full());
    let report = block_on(proxy.program(&mut flaky.inner, retried)).unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(flaky.inner.programmed.len(), 7);
}

#[test]
fn a_fatal_error_is_not_bisected() {
    let mut proxy = loop_with(&["a", "bad"]);
    let mut dataplane = FakeDataplane { fatal: true, ..FakeDataplane::rejecting(&["bad"]) };
    let changes = proxy.checkout(false);
    assert!(block_on(proxy.program(&mut dataplane, changes)).is_err());
    assert_eq!(dataplane.calls.len(), 1);
}

#[test]
fn a_partial_sync_suspects_only_the_changed_ports() {
    let mut proxy = loop_with(&["a", "b", "c", "d"]);
    let mut dataplane = FakeDataplane::default();
    let changes = proxy.checkout(false);
    block_on(proxy.program(&mut dataplane, changes)).unwrap();
    dataplane.poison.insert("e".into());
    let added = service("ns", "e").cluster_ip("10.96.0.9").tcp("http", 80).build();
    apply(&mut proxy, added);
    dataplane.calls.clear();
    let changes = proxy.checkout(false);
    assert!(!changes.full());
    let report = block_on(proxy.program(&mut dataplane, changes)).unwrap();
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].name.service.name, "e");
    // The first call, the state without `e`, and `e` alone: three calls.
    assert_eq!(dataplane.calls.len(), 3);
    assert_eq!(names(&dataplane.programmed), ["a", "b", "c", "d"]);
}

#[test]
fn sync_checks_out_programs_and_reports_in_one_call() {
    let mut proxy = loop_with(&["a", "bad", "c"]);
    let mut dataplane = FakeDataplane::rejecting(&["bad"]);
    let report = block_on(proxy.sync(&mut dataplane, false)).unwrap();
    assert!(report.changes.full(), "the first sync is full");
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(report.quarantined[0].name.service.name, "bad");
    assert_eq!(names(&dataplane.programmed), ["a", "c"]);
    // Nothing changed since: a partial sync with nothing to do, the port stays out.
    let report = block_on(proxy.sync(&mut dataplane, false)).unwrap();
    assert!(!report.changes.full() && report.changes.is_empty(), "{:?}", report.changes);
    assert!(report.quarantined.is_empty(), "reported once, when quarantined");
    assert_eq!(proxy.quarantined().count(), 1);
    // The periodic full sync tries it again.
    dataplane.poison.clear();
    let report = block_on(proxy.sync(&mut dataplane, true)).unwrap();
    assert!(report.changes.full());
    assert_eq!(names(&dataplane.programmed), ["a", "bad", "c"]);
    assert_eq!(proxy.quarantined().count(), 0);
}
