//! The sync runner: calls a sync function when asked to, but never too often, and at least
//! once per sync period.
//!
//! Modelled on upstream kube-proxy's bounded-frequency runner
//! (`pkg/proxy/runner/bounded_frequency_runner.go`). A [`SyncRunner`] guarantees:
//!
//! 1. **Minimum interval.** At least [`SyncConfig::min_interval`] passes between the *end*
//!    of one run and the *start* of the next. Requests made in between (or during a run)
//!    collapse into one run, started as soon as the interval is over.
//! 2. **Maximum interval.** A run starts at most [`SyncConfig::max_interval`] after the end
//!    of the previous one (or after the runner starts), with no request needed. That
//!    [periodic](SyncKind::Periodic) run applies what changed and retries what was held
//!    back; it trusts what was programmed.
//! 3. **Retry interval.** After a [retryable](RetryableError::is_retryable) error, the next
//!    run starts [`SyncConfig::retry_interval`] after the failed one ended, or earlier if a
//!    request or the periodic run comes first, but never before the minimum interval. The
//!    run after a failure is always full. A successful run cancels the pending retry.
//! 4. **Full interval.** A run is [full](SyncKind::Full) when the last full one succeeded
//!    more than [`SyncConfig::full_interval`] before it starts (upstream's
//!    `FullSyncPeriod`, an hour): a full load of 50k services takes `nft` ten seconds, not
//!    something to repeat every `--sync-period`.
//!
//! The first run is always full too: nothing can be assumed about what was programmed
//! before the runner started. A fatal error stops the runner and is returned.
//!
//! A [`Driver`] also has inputs of its own (the daemon's source events): the runner takes
//! them while no run is in progress, waiting on them together with requests and timers, so
//! that one task owns the driver and nothing is shared.
//!
//! Time is [`tokio::time`], so tests can pause and advance the clock.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::{Instant, sleep_until};

#[cfg(test)]
mod tests;

/// The default [`SyncConfig::min_interval`]: kube-proxy's default `--min-sync-period`.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The default [`SyncConfig::max_interval`] and [`SyncConfig::retry_interval`]:
/// kube-proxy's default `--sync-period`.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(30);

/// The default [`SyncConfig::full_interval`]: upstream's `proxyutil.FullSyncPeriod`.
pub const DEFAULT_FULL_INTERVAL: Duration = Duration::from_secs(3600);

/// Roughly 30 years: the deadline used when adding an interval would overflow.
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// How often a [`SyncRunner`] may, must and retries to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// The least time from the end of one run to the start of the next (kube-proxy's
    /// `--min-sync-period`). Zero allows back-to-back runs.
    pub min_interval: Duration,
    /// How long after a failed run ends the next run starts, at the latest.
    pub retry_interval: Duration,
    /// The most time from the end of one run to the start of the next, and so the period
    /// of the unconditional periodic run (kube-proxy's `--sync-period`).
    pub max_interval: Duration,
    /// How long after the last successful full run the next run is full again, whatever
    /// started it (zero: every run is full).
    pub full_interval: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            min_interval: DEFAULT_MIN_INTERVAL,
            retry_interval: DEFAULT_SYNC_PERIOD,
            max_interval: DEFAULT_SYNC_PERIOD,
            full_interval: DEFAULT_FULL_INTERVAL,
        }
    }
}

impl SyncConfig {
    /// Checks that the intervals make sense together.
    ///
    /// # Errors
    ///
    /// [`SyncConfigError::ZeroMaxInterval`] if `max_interval` is zero, and
    /// [`SyncConfigError::MaxBelowMin`] if it is shorter than `min_interval`.
    pub fn validate(&self) -> Result<(), SyncConfigError> {
        if self.max_interval.is_zero() {
            return Err(SyncConfigError::ZeroMaxInterval);
        }
        if self.max_interval < self.min_interval {
            return Err(SyncConfigError::MaxBelowMin {
                min_interval: self.min_interval,
                max_interval: self.max_interval,
            });
        }
        Ok(())
    }
}

/// An invalid [`SyncConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyncConfigError {
    /// `max_interval` is shorter than `min_interval`.
    #[error("max sync interval ({max_interval:?}) must be >= min sync interval ({min_interval:?})")]
    MaxBelowMin {
        /// The configured minimum interval.
        min_interval: Duration,
        /// The configured maximum interval.
        max_interval: Duration,
    },
    /// `max_interval` is zero: the runner would never rest.
    #[error("max sync interval must be greater than zero")]
    ZeroMaxInterval,
}

/// Whether a run must rebuild everything or may apply only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncKind {
    /// Only the changes since the last successful run need applying.
    Partial,
    /// The periodic run: the changes since the last successful run, and another try for
    /// whatever was held back (service ports the dataplane refused); what was programmed
    /// is trusted.
    Periodic,
    /// Nothing programmed before may be trusted: rebuild everything.
    Full,
}

impl SyncKind {
    /// Whether this is [`SyncKind::Full`].
    pub fn is_full(self) -> bool {
        self == Self::Full
    }
}

/// An error from a sync function that knows whether trying again can help.
pub trait RetryableError: fmt::Display {
    /// `true` if the runner should retry; `false` stops the runner with this error.
    fn is_retryable(&self) -> bool;
}

impl RetryableError for kproxy_core::SyncError {
    fn is_retryable(&self) -> bool {
        kproxy_core::SyncError::is_retryable(self)
    }
}

/// Marks any error as retryable or fatal, for sync functions whose errors do not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError<E> {
    /// Trying again can help: the runner retries with a full sync.
    Retryable(E),
    /// Trying again cannot help: the runner stops and returns this error.
    Fatal(E),
}

impl<E> RunError<E> {
    /// The wrapped error.
    pub fn inner(&self) -> &E {
        match self {
            Self::Retryable(e) | Self::Fatal(e) => e,
        }
    }

    /// Unwraps the error.
    pub fn into_inner(self) -> E {
        match self {
            Self::Retryable(e) | Self::Fatal(e) => e,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner().fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for RunError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner().source()
    }
}

impl<E: fmt::Display> RetryableError for RunError<E> {
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }
}

/// The function a [`SyncRunner`] runs; never called concurrently with itself.
///
/// Implemented for every `FnMut(SyncKind) -> impl Future<Output = Result<(), E>>`; implement
/// it on a type directly when the future must borrow that type's state.
pub trait SyncFn {
    /// What a failed run returns.
    type Error: RetryableError;

    /// Runs one sync of the given kind.
    fn sync(&mut self, kind: SyncKind) -> impl Future<Output = Result<(), Self::Error>>;
}

impl<F, Fut, E> SyncFn for F
where
    F: FnMut(SyncKind) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: RetryableError,
{
    type Error = E;

    fn sync(&mut self, kind: SyncKind) -> impl Future<Output = Result<(), E>> {
        self(kind)
    }
}

/// What [`SyncRunner::drive`] drives: a [`SyncFn`] with inputs of its own (the daemon's
/// source events), which the runner takes whenever no run is in progress: while it waits
/// for a request or a timer, and during the minimum interval after a run. An input that
/// arrives during a run waits until the run has ended.
pub trait Driver: SyncFn {
    /// Waits for the next input and takes it in: `Some(true)` when it asks for a run (as
    /// [`SyncHandle::request`] does), `Some(false)` when it does not, `None` once no input
    /// will come.
    ///
    /// Cancel safety: the runner drops this future when a request, a timer or the shutdown
    /// comes first, so it must not lose an input then (awaiting a channel's `recv`, then
    /// acting without awaiting, is fine).
    fn next_input(&mut self) -> impl Future<Output = Option<bool>>;
}

/// A [`SyncFn`] as a [`Driver`] without inputs.
struct NoInputs<S>(S);

impl<S: SyncFn> SyncFn for NoInputs<S> {
    type Error = S::Error;

    fn sync(&mut self, kind: SyncKind) -> impl Future<Output = Result<(), S::Error>> {
        self.0.sync(kind)
    }
}

impl<S: SyncFn> Driver for NoInputs<S> {
    fn next_input(&mut self) -> impl Future<Output = Option<bool>> {
        std::future::ready(None)
    }
}

/// Why a [`SyncRunner`] stopped without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The shutdown future passed to [`SyncRunner::run_until`] completed.
    Shutdown,
    /// Every [`SyncHandle`] was dropped, the [`Driver`]'s inputs ended, and no request was
    /// left.
    HandlesDropped,
}

/// Asks a [`SyncRunner`] for runs. Cheap to clone; the runner stops once every clone is gone.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    /// Holds at most one message: a pending request.
    wake: mpsc::Sender<()>,
    /// Set when the next run must be full.
    full: Arc<AtomicBool>,
}

impl SyncHandle {
    /// Asks for a run as soon as the minimum interval allows. Never blocks; requests made
    /// while one is pending join it, so any number of them cause one run.
    pub fn request(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Closed(())) => tracing::trace!("sync requested after the runner stopped"),
        }
    }

    /// Like [`request`](Self::request), and the next run is [full](SyncKind::Full).
    pub fn request_full(&self) {
        self.full.store(true, Ordering::SeqCst);
        self.request();
    }

    /// Whether the runner has stopped, so requests go nowhere.
    pub fn is_closed(&self) -> bool {
        self.wake.is_closed()
    }
}

/// Runs a [`SyncFn`] with bounded frequency; see the [module docs](self).
#[derive(Debug)]
pub struct SyncRunner {
    config: SyncConfig,
    wake: mpsc::Receiver<()>,
    full: Arc<AtomicBool>,
    /// Every handle is gone and no request is left in `wake`.
    handles_gone: bool,
}

/// The driver's inputs as the runner sees them.
#[derive(Debug)]
struct Inputs {
    /// More may come.
    open: bool,
    /// One asked for a run that has not started yet.
    requested: bool,
}

impl Inputs {
    /// Notes what [`Driver::next_input`] returned.
    fn took(&mut self, input: Option<bool>) {
        match input {
            Some(wants_run) => self.requested |= wants_run,
            None => self.open = false,
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// A [`SyncHandle`] asked.
    Requested,
    /// The retry interval after a failure ran out.
    Retry,
    /// The maximum interval ran out.
    Periodic,
}

/// What the runner does after waiting.
enum Wake {
    Run(Trigger),
    Stop(StopReason),
}

/// When the next unrequested run is due, and whether the next run must be full.
#[derive(Debug)]
struct Schedule {
    periodic_at: Instant,
    retry_at: Option<Instant>,
    full_next: bool,
    /// When the next run must be full again ([`SyncConfig::full_interval`] after the end of
    /// the last successful full run).
    full_at: Instant,
}

impl Schedule {
    /// Before the first run, which is full.
    fn new(start: Instant, config: &SyncConfig) -> Self {
        Self { periodic_at: after(start, config.max_interval), retry_at: None, full_next: true, full_at: start }
    }

    /// Whether a run starting at `now` must be full.
    fn full_due(&self, now: Instant) -> bool {
        self.full_next || now >= self.full_at
    }

    /// The earlier of the retry and the periodic run.
    fn next_timer(&self) -> (Instant, Trigger) {
        match self.retry_at {
            Some(retry_at) if retry_at < self.periodic_at => (retry_at, Trigger::Retry),
            _ => (self.periodic_at, Trigger::Periodic),
        }
    }

    /// After a run of `kind` that ended at `end` and succeeded.
    fn succeeded(&mut self, end: Instant, kind: SyncKind, config: &SyncConfig) {
        self.periodic_at = after(end, config.max_interval);
        self.retry_at = None;
        self.full_next = false;
        if kind.is_full() {
            self.full_at = after(end, config.full_interval);
        }
    }

    /// After a run that ended at `end` with a retryable error.
    fn failed(&mut self, end: Instant, config: &SyncConfig) {
        self.periodic_at = after(end, config.max_interval);
        self.retry_at = Some(after(end, config.retry_interval));
        self.full_next = true;
    }
}

/// `start + interval`, saturating at a far-away deadline.
fn after(start: Instant, interval: Duration) -> Instant {
    start.checked_add(interval).unwrap_or_else(|| start + FAR_FUTURE)
}

impl SyncRunner {
    /// A runner and the first handle to it.
    ///
    /// # Errors
    ///
    /// The [`SyncConfigError`] from [`SyncConfig::validate`].
    pub fn new(config: SyncConfig) -> Result<(Self, SyncHandle), SyncConfigError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(1);
        let full = Arc::new(AtomicBool::new(false));
        Ok((Self { config, wake: rx, full: Arc::clone(&full), handles_gone: false }, SyncHandle { wake: tx, full }))
    }

    /// The configuration this runner was built with.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Runs `syncer` until every handle is dropped with no request left, or a fatal error.
    ///
    /// # Errors
    ///
    /// The first error from `syncer` that is not [retryable](RetryableError::is_retryable).
    pub async fn run<S: SyncFn>(self, syncer: S) -> Result<StopReason, S::Error> {
        self.run_until(syncer, std::future::pending()).await
    }

    /// Like [`run`](Self::run), and also stops when `shutdown` completes. A run in progress
    /// is finished first, never cancelled halfway.
    ///
    /// # Errors
    ///
    /// The first error from `syncer` that is not [retryable](RetryableError::is_retryable).
    pub async fn run_until<S, F>(self, syncer: S, shutdown: F) -> Result<StopReason, S::Error>
    where
        S: SyncFn,
        F: Future<Output = ()>,
    {
        self.drive(NoInputs(syncer), shutdown).await.0
    }

    /// Drives `driver` as [`run_until`](Self::run_until) runs a sync function, taking its
    /// inputs between runs (see [`Driver`]); stops when `shutdown` completes, when every
    /// handle is dropped and the inputs ended with no request left, or on a fatal error.
    /// Hands the driver back with the outcome.
    pub async fn drive<D, F>(mut self, mut driver: D, shutdown: F) -> (Result<StopReason, D::Error>, D)
    where
        D: Driver,
        F: Future<Output = ()>,
    {
        let mut shutdown = pin!(shutdown);
        let mut schedule = Schedule::new(Instant::now(), &self.config);
        let mut inputs = Inputs { open: true, requested: false };
        tracing::debug!(config = ?self.config, "sync runner started");
        let outcome = loop {
            let trigger = match self.next_trigger(&schedule, &mut driver, &mut inputs, shutdown.as_mut()).await {
                Wake::Run(trigger) => trigger,
                Wake::Stop(reason) => break Ok(reason),
            };
            inputs.requested = false;
            let kind = self.take_kind(trigger, &schedule);
            let end = match self.run_once(&mut driver, &mut schedule, trigger, kind).await {
                Ok(end) => end,
                Err(error) => break Err(error),
            };
            let until = after(end, self.config.min_interval);
            if let Some(reason) = cool_down(until, &mut driver, &mut inputs, shutdown.as_mut()).await {
                break Ok(reason);
            }
        };
        if let Ok(reason) = &outcome {
            tracing::debug!(?reason, "sync runner stopped");
        }
        (outcome, driver)
    }

    /// Waits for a request (from a handle or an input), the retry or periodic deadline, or
    /// a reason to stop; takes inputs meanwhile.
    async fn next_trigger<D: Driver, F: Future<Output = ()>>(
        &mut self,
        schedule: &Schedule,
        driver: &mut D,
        inputs: &mut Inputs,
        mut shutdown: Pin<&mut F>,
    ) -> Wake {
        let (deadline, timer) = schedule.next_timer();
        loop {
            if inputs.requested {
                return Wake::Run(Trigger::Requested);
            }
            if self.handles_gone && !inputs.open {
                return Wake::Stop(StopReason::HandlesDropped);
            }
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Wake::Stop(StopReason::Shutdown),
                request = self.wake.recv(), if !self.handles_gone => match request {
                    Some(()) => return Wake::Run(Trigger::Requested),
                    None => self.handles_gone = true,
                },
                input = driver.next_input(), if inputs.open => inputs.took(input),
                () = sleep_until(deadline) => return Wake::Run(timer),
            }
        }
    }

    /// The kind of the run about to start; consumes the pending request and full flag.
    fn take_kind(&mut self, trigger: Trigger, schedule: &Schedule) -> SyncKind {
        // A request that raced a timer joins this run rather than causing another.
        if self.wake.try_recv().is_ok() {
            tracing::trace!(?trigger, "pending sync request joins this run");
        }
        let requested_full = self.full.swap(false, Ordering::SeqCst);
        if requested_full || schedule.full_due(Instant::now()) {
            SyncKind::Full
        } else if trigger == Trigger::Periodic {
            SyncKind::Periodic
        } else {
            SyncKind::Partial
        }
    }

    /// Runs `syncer` once and updates `schedule`; returns when the run ended.
    async fn run_once<S: SyncFn>(
        &self,
        syncer: &mut S,
        schedule: &mut Schedule,
        trigger: Trigger,
        kind: SyncKind,
    ) -> Result<Instant, S::Error> {
        let start = Instant::now();
        tracing::debug!(?trigger, ?kind, "sync starting");
        let result = syncer.sync(kind).await;
        let end = Instant::now();
        let elapsed = end - start;
        match result {
            Ok(()) => {
                tracing::debug!(?kind, ?elapsed, "sync succeeded");
                schedule.succeeded(end, kind, &self.config);
            }
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, ?elapsed, retry_in = ?self.config.retry_interval, "sync failed; will retry with a full sync");
                schedule.failed(end, &self.config);
            }
            Err(error) => {
                tracing::error!(%error, ?elapsed, "sync failed fatally; stopping the sync runner");
                return Err(error);
            }
        }
        Ok(end)
    }
}

/// Sleeps until `until`, taking inputs meanwhile; `Some` if `shutdown` completes first.
async fn cool_down<D: Driver, F: Future<Output = ()>>(
    until: Instant,
    driver: &mut D,
    inputs: &mut Inputs,
    mut shutdown: Pin<&mut F>,
) -> Option<StopReason> {
    loop {
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return Some(StopReason::Shutdown),
            () = sleep_until(until) => return None,
            input = driver.next_input(), if inputs.open => inputs.took(input),
        }
    }
}
