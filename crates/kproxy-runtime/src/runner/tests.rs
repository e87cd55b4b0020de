//! Tests for the sync runner, on a paused tokio clock.
//!
//! Each test records when every run started (relative to the test's start) and its kind,
//! then compares the whole timeline. Upstream's scenarios
//! (`bounded_frequency_runner_test.go`) are ported where they fit.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::*;

const F: SyncKind = SyncKind::Full;
const P: SyncKind = SyncKind::Partial;
/// A periodic run.
const R: SyncKind = SyncKind::Periodic;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Upstream's test intervals: min 1 s, retry 5 s, max 10 s.
fn upstream_config() -> SyncConfig {
    SyncConfig {
        min_interval: secs(1),
        retry_interval: secs(5),
        max_interval: secs(10),
        full_interval: DEFAULT_FULL_INTERVAL,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TestError(&'static str);

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for TestError {}

type Outcome = Result<(), RunError<TestError>>;

/// One scripted run: how long it takes and what it returns.
struct Step {
    takes: Duration,
    outcome: Outcome,
}

impl Step {
    fn ok() -> Self {
        Self { takes: Duration::ZERO, outcome: Ok(()) }
    }

    fn ok_taking(takes: Duration) -> Self {
        Self { takes, outcome: Ok(()) }
    }

    fn retryable() -> Self {
        Self { takes: Duration::ZERO, outcome: Err(RunError::Retryable(TestError("transient"))) }
    }

    fn fatal(message: &'static str) -> Self {
        Self { takes: Duration::ZERO, outcome: Err(RunError::Fatal(TestError(message))) }
    }
}

/// When a run started, relative to the test's start, and its kind.
type Call = (Duration, SyncKind);

/// A [`SyncFn`] that records its calls and plays a script; instant successes after it.
struct Scripted {
    t0: Instant,
    plan: VecDeque<Step>,
    calls: mpsc::UnboundedSender<Call>,
}

impl SyncFn for Scripted {
    type Error = RunError<TestError>;

    async fn sync(&mut self, kind: SyncKind) -> Outcome {
        self.calls.send((self.t0.elapsed(), kind)).expect("test dropped the call log");
        let step = self.plan.pop_front().unwrap_or_else(Step::ok);
        sleep(step.takes).await;
        step.outcome
    }
}

/// A spawned runner with its handle, shutdown switch and call log.
struct Harness {
    t0: Instant,
    handle: SyncHandle,
    shutdown: oneshot::Sender<()>,
    calls: mpsc::UnboundedReceiver<Call>,
    task: JoinHandle<Result<StopReason, RunError<TestError>>>,
}

impl Harness {
    /// Spawns a runner at the current (paused) time, which becomes the test's zero.
    fn start(config: SyncConfig, plan: Vec<Step>) -> Self {
        let (runner, handle) = SyncRunner::new(config).expect("valid config");
        Self::spawn(runner, handle, plan)
    }

    fn spawn(runner: SyncRunner, handle: SyncHandle, plan: Vec<Step>) -> Self {
        let t0 = Instant::now();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = oneshot::channel();
        let syncer = Scripted { t0, plan: plan.into(), calls: calls_tx };
        let stop = async move {
            // A dropped sender is not a shutdown: wait forever then.
            if shutdown_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let task = tokio::spawn(runner.run_until(syncer, stop));
        Self { t0, handle, shutdown, calls, task }
    }

    /// Sleeps until `n` ms after the test's zero.
    async fn at(&self, n: u64) {
        sleep_until(self.t0 + ms(n)).await;
    }

    /// Drops the handle, waits for the runner, and returns its result and every call.
    async fn finish(self) -> (Result<StopReason, RunError<TestError>>, Vec<Call>) {
        let Self { handle, shutdown, calls, task, .. } = self;
        drop(handle);
        let result = task.await.expect("runner task panicked");
        drop(shutdown);
        (result, drain(calls))
    }

    /// Fires the shutdown signal (keeping the handle), waits for the runner, and returns
    /// its result, when it stopped and every call.
    async fn shut_down(self) -> (Result<StopReason, RunError<TestError>>, Duration, Vec<Call>) {
        let Self { t0, handle, shutdown, calls, task } = self;
        shutdown.send(()).expect("runner still listening");
        let result = task.await.expect("runner task panicked");
        assert!(handle.is_closed());
        (result, t0.elapsed(), drain(calls))
    }
}

fn drain(mut calls: mpsc::UnboundedReceiver<Call>) -> Vec<Call> {
    let mut all = Vec::new();
    while let Ok(call) = calls.try_recv() {
        all.push(call);
    }
    all
}

// ---------------------------------------------------------------- config

#[test]
fn default_config_is_kube_proxys() {
    let config = SyncConfig::default();
    assert_eq!(config.min_interval, secs(1));
    assert_eq!(config.retry_interval, secs(30));
    assert_eq!(config.max_interval, secs(30));
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn config_rejects_max_below_min() {
    let config = SyncConfig {
        min_interval: secs(2),
        retry_interval: secs(1),
        max_interval: secs(1),
        full_interval: DEFAULT_FULL_INTERVAL,
    };
    let error = config.validate().expect_err("max < min");
    assert_eq!(error, SyncConfigError::MaxBelowMin { min_interval: secs(2), max_interval: secs(1) });
    assert_eq!(error.to_string(), "max sync interval (1s) must be >= min sync interval (2s)");
    assert_eq!(
        SyncRunner::new(config).expect_err("rejected"),
        SyncConfigError::MaxBelowMin { min_interval: secs(2), max_interval: secs(1) }
    );
}

#[test]
fn config_rejects_zero_max_interval() {
    let config = SyncConfig {
        min_interval: Duration::ZERO,
        retry_interval: secs(1),
        max_interval: Duration::ZERO,
        full_interval: DEFAULT_FULL_INTERVAL,
    };
    assert_eq!(config.validate(), Err(SyncConfigError::ZeroMaxInterval));
    assert!(SyncRunner::new(config).is_err());
}

#[test]
fn config_accepts_max_equal_to_min_and_zero_min_and_retry() {
    let equal = SyncConfig {
        min_interval: secs(5),
        retry_interval: secs(5),
        max_interval: secs(5),
        full_interval: DEFAULT_FULL_INTERVAL,
    };
    assert_eq!(equal.validate(), Ok(()));
    let zero = SyncConfig {
        min_interval: Duration::ZERO,
        retry_interval: Duration::ZERO,
        max_interval: secs(1),
        full_interval: DEFAULT_FULL_INTERVAL,
    };
    assert_eq!(zero.validate(), Ok(()));
    let (runner, _handle) = SyncRunner::new(zero).expect("valid");
    assert_eq!(runner.config(), &zero);
}

// ---------------------------------------------------------------- small types

#[test]
fn run_error_says_whether_it_is_retryable() {
    let retryable = RunError::Retryable(TestError("busy"));
    let fatal = RunError::Fatal(TestError("no permission"));
    assert!(retryable.is_retryable());
    assert!(!fatal.is_retryable());
    assert_eq!(retryable.to_string(), "busy");
    assert_eq!(fatal.inner(), &TestError("no permission"));
    assert_eq!(fatal.into_inner(), TestError("no permission"));
}

#[test]
fn core_sync_error_is_classified_by_its_retry_field() {
    assert!(RetryableError::is_retryable(&kproxy_core::SyncError::retryable("test", "apply", "busy")));
    assert!(!RetryableError::is_retryable(&kproxy_core::SyncError::fatal("test", "apply", "no permission")));
}

#[test]
fn sync_kind_is_full() {
    assert!(SyncKind::Full.is_full());
    assert!(!SyncKind::Partial.is_full());
}

// ---------------------------------------------------------------- coalescing

#[tokio::test(start_paused = true)]
async fn a_burst_of_requests_causes_one_run() {
    let h = Harness::start(upstream_config(), vec![]);
    for _ in 0..100 {
        h.handle.request();
    }
    h.at(5_000).await;
    for _ in 0..100 {
        h.handle.request();
    }
    h.at(14_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(5_000), P)]);
}

#[tokio::test(start_paused = true)]
async fn requests_before_the_runner_starts_are_kept() {
    let (runner, handle) = SyncRunner::new(upstream_config()).expect("valid config");
    handle.request();
    handle.request();
    sleep(secs(5)).await;
    // The runner starts now; the harness's zero is now too.
    let h = Harness::spawn(runner, handle, vec![]);
    h.at(2_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F)]);
}

#[tokio::test(start_paused = true)]
async fn requests_during_a_run_cause_exactly_one_more_run_after_min_interval() {
    let h = Harness::start(upstream_config(), vec![Step::ok_taking(secs(2))]);
    h.handle.request();
    h.at(500).await;
    for _ in 0..10 {
        h.handle.request();
    }
    h.at(1_500).await;
    for _ in 0..10 {
        h.handle.request();
    }
    // The run ends at 2 s; the next starts 1 s later; the periodic one would be at 13 s.
    h.at(12_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(3_000), P)]);
}

// ---------------------------------------------------------------- min interval

#[tokio::test(start_paused = true)]
async fn min_interval_is_measured_from_the_end_of_a_long_run() {
    let h = Harness::start(upstream_config(), vec![Step::ok_taking(secs(3))]);
    h.handle.request();
    h.at(1_000).await;
    h.handle.request(); // During the 3 s run: waits until 1 s after it ends, not 1 s after it began.
    h.at(5_500).await;
    h.handle.request(); // 1.5 s after the second run ended: runs at once.
    h.at(6_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(4_000), P), (ms(5_500), P)]);
}

/// Upstream's `Test_BoundedFrequencyRunner`.
#[tokio::test(start_paused = true)]
async fn upstream_runner_timeline() {
    let h = Harness::start(upstream_config(), vec![]);
    h.handle.request(); // Run once, immediately.
    h.at(500).await;
    h.handle.request(); // Too soon: deferred.
    h.at(999).await;
    h.handle.request(); // Still too soon.
    // 1000 ms: the deferred run.
    h.at(1_000).await;
    h.handle.request(); // Too soon after the second run.
    h.at(1_001).await;
    h.handle.request();
    // 1999 ms: nothing yet; 2000 ms: the deferred run.
    // 3000 ms: min interval passes with nothing queued; 12000 ms: max interval.
    h.at(12_001).await;
    h.handle.request(); // Too soon after the periodic run.
    h.at(14_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(1_000), P), (ms(2_000), P), (ms(12_000), R), (ms(13_000), P)]);
}

// ---------------------------------------------------------------- max interval

#[tokio::test(start_paused = true)]
async fn periodic_runs_happen_max_interval_after_each_end_without_requests() {
    let plan = vec![Step::ok_taking(secs(2)), Step::ok_taking(secs(2)), Step::ok_taking(secs(2))];
    let h = Harness::start(upstream_config(), plan);
    h.at(40_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(10_000), F), (ms(22_000), R), (ms(34_000), R)]);
}

#[tokio::test(start_paused = true)]
async fn a_run_is_full_again_once_the_full_interval_has_passed_since_the_last_full_one() {
    let config = SyncConfig { full_interval: secs(25), ..upstream_config() };
    let h = Harness::start(config, vec![]);
    // 10 s: the first run, full (the next full one is due from 35 s); then periodic ones.
    h.at(55_000).await;
    h.handle.request(); // 55 s: the last full run (40 s) is recent: partial.
    h.at(56_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    let expected = [(10_000, F), (20_000, R), (30_000, R), (40_000, F), (50_000, R), (55_000, P)];
    assert_eq!(calls, expected.map(|(at, kind)| (ms(at), kind)));
}

#[tokio::test(start_paused = true)]
async fn a_request_postpones_the_periodic_run() {
    let h = Harness::start(upstream_config(), vec![]);
    h.at(7_000).await;
    h.handle.request();
    h.at(20_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(7_000), F), (ms(17_000), R)]);
}

#[tokio::test(start_paused = true)]
async fn huge_intervals_do_not_overflow() {
    let config = SyncConfig {
        min_interval: Duration::MAX,
        retry_interval: Duration::MAX,
        max_interval: Duration::MAX,
        full_interval: DEFAULT_FULL_INTERVAL,
    };
    let h = Harness::start(config, vec![]);
    h.handle.request();
    h.at(1_000).await;
    let (result, _, calls) = h.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(calls, vec![(ms(0), F)]);
}

// ---------------------------------------------------------------- full requests

#[tokio::test(start_paused = true)]
async fn request_full_marks_the_next_run_full() {
    let h = Harness::start(upstream_config(), vec![]);
    h.handle.request(); // The first run is full anyway.
    h.at(2_000).await;
    h.handle.request();
    h.at(4_000).await;
    h.handle.request_full();
    h.at(6_000).await;
    h.handle.request(); // Back to partial.
    h.at(6_200).await;
    h.handle.request(); // Pending until 7 s...
    h.at(6_500).await;
    h.handle.request_full(); // ...and now that pending run is full.
    h.at(8_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P), (ms(4_000), F), (ms(6_000), P), (ms(7_000), F)]);
}

#[tokio::test(start_paused = true)]
async fn request_full_during_a_run_marks_the_run_after_it() {
    let h = Harness::start(upstream_config(), vec![Step::ok(), Step::ok_taking(secs(2))]);
    h.handle.request();
    h.at(2_000).await;
    h.handle.request(); // Partial, 2 s to 4 s.
    h.at(3_000).await;
    h.handle.request_full();
    h.at(6_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P), (ms(5_000), F)]);
}

// ---------------------------------------------------------------- retries

#[tokio::test(start_paused = true)]
async fn a_retryable_error_retries_after_retry_interval_with_a_full_run() {
    let plan = vec![Step::ok(), Step::ok(), Step::retryable()];
    let h = Harness::start(upstream_config(), plan);
    h.handle.request();
    h.at(2_000).await;
    h.handle.request();
    h.at(4_000).await;
    h.handle.request(); // Partial, and fails: retried, full, at 9 s.
    h.at(10_000).await;
    h.handle.request(); // Back to partial after the successful retry.
    h.at(11_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P), (ms(4_000), P), (ms(9_000), F), (ms(10_000), P)]);
}

#[tokio::test(start_paused = true)]
async fn a_request_after_an_error_runs_full_before_the_retry_and_cancels_it() {
    let plan = vec![Step::ok(), Step::retryable()];
    let h = Harness::start(upstream_config(), plan);
    h.handle.request();
    h.at(2_000).await;
    h.handle.request(); // Fails; the retry would be at 7 s.
    h.at(2_500).await;
    h.handle.request(); // Runs at 3 s (min interval), full; no retry at 7 s.
    h.at(12_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P), (ms(3_000), F)]);
}

/// Upstream's `Test_BoundedFrequencyRunnerRetry`.
#[tokio::test(start_paused = true)]
async fn upstream_retry_timeline() {
    let plan = vec![
        Step::retryable(), // 0 s
        Step::ok(),        // 5 s: the retry
        Step::retryable(), // 6 s: deferred from 5.499 s
        Step::ok(),        // 7 s: cancels the retry at 11 s
        Step::retryable(), // 11 s
        Step::ok(),        // 12 s: deferred from 11.1 s; cancels the retry at 16 s
        Step::ok(),        // 22 s: periodic
    ];
    let h = Harness::start(upstream_config(), plan);
    h.handle.request();
    h.at(5_499).await;
    h.handle.request();
    h.at(7_000).await;
    h.handle.request();
    h.at(11_000).await;
    h.handle.request();
    h.at(11_100).await;
    h.handle.request();
    h.at(23_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(
        calls,
        vec![
            (ms(0), F),
            (ms(5_000), F),
            (ms(6_000), P),
            (ms(7_000), F),
            (ms(11_000), P),
            (ms(12_000), F),
            (ms(22_000), R),
        ]
    );
}

/// Upstream's `Test_BoundedFrequencyRunnerRetryShorterThanMinInterval`.
#[tokio::test(start_paused = true)]
async fn a_retry_shorter_than_min_interval_waits_for_min_interval() {
    let config = SyncConfig {
        min_interval: secs(5),
        retry_interval: secs(1),
        max_interval: secs(10),
        full_interval: DEFAULT_FULL_INTERVAL,
    };
    let h = Harness::start(config, vec![Step::retryable()]);
    h.handle.request();
    h.at(16_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(5_000), F), (ms(15_000), R)]);
}

#[tokio::test(start_paused = true)]
async fn repeated_retryable_errors_keep_retrying() {
    let plan = vec![Step::retryable(), Step::retryable(), Step::retryable()];
    let h = Harness::start(upstream_config(), plan);
    h.handle.request();
    h.at(16_000).await;
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(5_000), F), (ms(10_000), F), (ms(15_000), F)]);
}

// ---------------------------------------------------------------- stopping

#[tokio::test(start_paused = true)]
async fn a_fatal_error_stops_the_runner_and_is_returned() {
    let plan = vec![Step::ok(), Step::fatal("no permission")];
    let h = Harness::start(upstream_config(), plan);
    h.handle.request();
    h.at(2_000).await;
    h.handle.request();
    h.at(3_000).await;
    assert!(h.handle.is_closed());
    h.handle.request(); // Goes nowhere, and does not panic.
    let (result, calls) = h.finish().await;
    assert_eq!(result, Err(RunError::Fatal(TestError("no permission"))));
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P)]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_an_idle_runner() {
    let h = Harness::start(upstream_config(), vec![]);
    h.handle.request();
    h.at(3_000).await;
    let (result, stopped_at, calls) = h.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(stopped_at, ms(3_000));
    assert_eq!(calls, vec![(ms(0), F)]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_run_in_progress_finish_and_drops_pending_requests() {
    let h = Harness::start(upstream_config(), vec![Step::ok_taking(secs(3))]);
    h.handle.request();
    h.at(1_000).await;
    h.handle.request();
    h.at(2_000).await;
    let (result, stopped_at, calls) = h.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(stopped_at, ms(3_000));
    assert_eq!(calls, vec![(ms(0), F)]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_min_interval_stops_at_once() {
    let config = SyncConfig { min_interval: secs(5), ..upstream_config() };
    let h = Harness::start(config, vec![]);
    h.handle.request();
    h.at(1_000).await;
    h.handle.request();
    h.at(2_000).await;
    let (result, stopped_at, calls) = h.shut_down().await;
    assert_eq!(result, Ok(StopReason::Shutdown));
    assert_eq!(stopped_at, ms(2_000));
    assert_eq!(calls, vec![(ms(0), F)]);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_the_runner() {
    let h = Harness::start(upstream_config(), vec![]);
    let other = h.handle.clone();
    h.handle.request();
    h.at(1_000).await;
    let (result, calls) = {
        // The original handle is dropped by `finish`; the clone keeps the runner alive.
        let finishing = tokio::spawn(h.finish());
        sleep(secs(1)).await; // 2 s
        other.request();
        sleep(secs(3)).await; // 5 s
        assert!(!finishing.is_finished());
        drop(other);
        finishing.await.expect("finish panicked")
    };
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P)]);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_still_runs_the_pending_request() {
    let h = Harness::start(upstream_config(), vec![Step::ok_taking(secs(2))]);
    let t0 = h.t0;
    h.handle.request();
    h.at(1_000).await;
    h.handle.request(); // Pending when the handle goes.
    let (result, calls) = h.finish().await;
    assert_eq!(result, Ok(StopReason::HandlesDropped));
    // The run at 3 s ends at once; the runner stops when its min interval is over.
    assert_eq!(t0.elapsed(), ms(4_000));
    assert_eq!(calls, vec![(ms(0), F), (ms(3_000), P)]);
}

// ---------------------------------------------------------------- closures

#[tokio::test(start_paused = true)]
async fn a_closure_returning_core_sync_errors_is_a_sync_fn() {
    let t0 = Instant::now();
    let (runner, handle) = SyncRunner::new(upstream_config()).expect("valid config");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut outcomes = VecDeque::from([
        Ok(()),
        Err(kproxy_core::SyncError::retryable("test", "apply", "busy")),
        Err(kproxy_core::SyncError::fatal("test", "apply", "no permission")),
    ]);
    let syncer = move |kind: SyncKind| {
        tx.send((t0.elapsed(), kind)).expect("test dropped the call log");
        let outcome = outcomes.pop_front().unwrap_or(Ok(()));
        async move { outcome }
    };
    let task = tokio::spawn(runner.run(syncer));
    handle.request();
    sleep(secs(2)).await;
    handle.request(); // Fails: retried, full, at 7 s, where it fails fatally.
    let error = task.await.expect("runner task panicked").expect_err("fatal error");
    assert!(!error.is_retryable());
    assert_eq!(error.to_string(), "test apply failed: no permission");
    assert_eq!(t0.elapsed(), secs(7));
    rx.close();
    let mut calls = Vec::new();
    while let Some(call) = rx.recv().await {
        calls.push(call);
    }
    assert_eq!(calls, vec![(ms(0), F), (ms(2_000), P), (ms(7_000), F)]);
}

// ---------------------------------------------------------------- drivers with inputs

mod driver;
