//! Proxy health tied to the sync loop: upstream kube-proxy's `ProxyHealthServer`
//! (`pkg/proxy/healthcheck/proxy_health.go`), without the HTTP part (see
//! [`health_server`](crate::health_server)).
//!
//! Per IP family, [`ProxyHealth::queued_update`] records when the oldest change not yet
//! programmed arrived and [`ProxyHealth::updated`] clears it after a successful sync. The
//! proxy is healthy unless a family that has synced at least once has a queued change older
//! than the health timeout (upstream: 2 × the sync period). Node eligibility (the node is
//! not being deleted and has no `ToBeDeletedByClusterAutoscaler` taint) only affects
//! `/healthz`, never `/livez` nor the service health-check ports.
//!
//! As upstream, a family is only judged once it has an `updated` time: the sync loop calls
//! [`ProxyHealth::updated`] for each family when it starts ("in case the sync never
//! succeeds"), so that a proxy whose first sync keeps failing turns unhealthy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kproxy_core::IpFamily;
use tokio::time::Instant;

#[cfg(test)]
mod tests;

/// The taint the Cluster Autoscaler puts on a node before deleting it.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// Whether a node may receive load-balancer traffic: it is not being deleted and carries no
/// [`TO_BE_DELETED_TAINT`] (upstream's `NodeEligible`).
pub fn node_is_eligible<'a>(being_deleted: bool, taint_keys: impl IntoIterator<Item = &'a str>) -> bool {
    !being_deleted && !taint_keys.into_iter().any(|key| key == TO_BE_DELETED_TAINT)
}

/// Where [`ProxyHealth`] reads the time: a monotonic clock for ages, the wall clock for the
/// times it reports.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now, used to age queued updates.
    fn now(&self) -> Instant;

    /// Wall-clock now, reported as `currentTime` / `lastUpdated`.
    fn wall_now(&self) -> SystemTime;
}

/// The real clock: tokio's [`Instant`] (so a paused test runtime controls ages) and
/// [`SystemTime`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests: both readings advance together.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    start_wall: SystemTime,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    /// A clock reading `wall` now.
    pub fn new(wall: SystemTime) -> Self {
        Self { start: Instant::now(), start_wall: wall, elapsed: Mutex::new(Duration::ZERO) }
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        *lock(&self.elapsed) += by;
    }

    fn elapsed(&self) -> Duration {
        *lock(&self.elapsed)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn wall_now(&self) -> SystemTime {
        self.start_wall + self.elapsed()
    }
}

/// The health of the proxier of one IP family (upstream's `ProxierHealth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxierHealth {
    /// When this family last synced successfully.
    pub last_updated: SystemTime,
    /// Whether this family has no late queued update.
    pub healthy: bool,
}

/// A snapshot of the proxy's health (upstream's `ProxyHealth`, without node eligibility,
/// which only `/healthz` adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// The most recent successful sync of any family; `None` before the first one.
    pub last_updated: Option<SystemTime>,
    /// When the snapshot was taken.
    pub current_time: SystemTime,
    /// Every family that has synced is healthy.
    pub healthy: bool,
    /// Per family that has synced at least once.
    pub status: BTreeMap<IpFamily, ProxierHealth>,
}

#[derive(Debug)]
struct State {
    last_updated: [Option<SystemTime>; 2],
    oldest_pending: [Option<Instant>; 2],
    node_eligible: bool,
}

/// Tracks whether the proxy keeps up with changes; shared (`Arc`) between the runner task
/// (which folds events in and syncs) and the HTTP servers.
pub struct ProxyHealth {
    clock: Arc<dyn Clock>,
    health_timeout: Duration,
    state: Mutex<State>,
}

impl fmt::Debug for ProxyHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHealth").field("health_timeout", &self.health_timeout).field("state", &self.state).finish()
    }
}

impl ProxyHealth {
    /// Health on the real clock; `health_timeout` is upstream's 2 × sync period.
    pub fn new(health_timeout: Duration) -> Self {
        Self::with_clock(health_timeout, Arc::new(SystemClock))
    }

    /// Health on the given clock.
    pub fn with_clock(health_timeout: Duration, clock: Arc<dyn Clock>) -> Self {
        let state = State { last_updated: [None; 2], oldest_pending: [None; 2], node_eligible: true };
        Self { clock, health_timeout, state: Mutex::new(state) }
    }

    /// How long a queued update may wait before the proxy is unhealthy.
    pub fn health_timeout(&self) -> Duration {
        self.health_timeout
    }

    /// The clock this tracker reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// A change for `family` arrived and is not programmed yet; only the oldest one counts.
    pub fn queued_update(&self, family: IpFamily) {
        let now = self.clock.now();
        lock(&self.state).oldest_pending[family.index()].get_or_insert(now);
    }

    /// The proxier of `family` synced successfully: nothing is pending any more.
    pub fn updated(&self, family: IpFamily) {
        let wall = self.clock.wall_now();
        let mut state = lock(&self.state);
        state.oldest_pending[family.index()] = None;
        state.last_updated[family.index()] = Some(wall);
    }

    /// The proxy's health, ignoring node eligibility (upstream's `Health()`).
    pub fn health(&self) -> HealthReport {
        let now = self.clock.now();
        let current_time = self.clock.wall_now();
        let state = lock(&self.state);
        let status: BTreeMap<IpFamily, ProxierHealth> = IpFamily::ALL
            .into_iter()
            .filter_map(|family| {
                let last_updated = state.last_updated[family.index()]?;
                let healthy = !self.is_late(state.oldest_pending[family.index()], now);
                Some((family, ProxierHealth { last_updated, healthy }))
            })
            .collect();
        HealthReport {
            last_updated: status.values().map(|s| s.last_updated).max(),
            current_time,
            healthy: status.values().all(|s| s.healthy),
            status,
        }
    }

    /// Whether every family keeps up (node eligibility is not part of it).
    pub fn is_healthy(&self) -> bool {
        self.health().healthy
    }

    /// Records whether this node may receive load-balancer traffic (see
    /// [`node_is_eligible`]). Eligible until told otherwise, as upstream while starting.
    pub fn set_node_eligible(&self, eligible: bool) {
        lock(&self.state).node_eligible = eligible;
    }

    /// Whether this node may receive load-balancer traffic.
    pub fn node_eligible(&self) -> bool {
        lock(&self.state).node_eligible
    }

    fn is_late(&self, oldest_pending: Option<Instant>, now: Instant) -> bool {
        oldest_pending.is_some_and(|queued| now.saturating_duration_since(queued) >= self.health_timeout)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Go's `time.Time` JSON text (RFC 3339 with trailing zeros of the nanoseconds dropped), in
/// UTC; `None` is Go's zero time.
pub(crate) fn format_go_time(time: Option<SystemTime>) -> String {
    let Some(time) = time else {
        return "0001-01-01T00:00:00Z".to_owned();
    };
    let (secs, nanos) = unix_parts(time);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let day_secs = secs.rem_euclid(86_400);
    let (hour, minute, second) = (day_secs / 3600, day_secs % 3600 / 60, day_secs % 60);
    let mut text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Seconds (floored) and nanoseconds since the Unix epoch.
fn unix_parts(time: SystemTime) -> (i64, u32) {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (i64::try_from(after.as_secs()).unwrap_or(i64::MAX), after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (-secs, 0),
                nanos => (-secs - 1, 1_000_000_000 - nanos),
            }
        }
    }
}

/// Year, month and day of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are in range by construction (1..=31 and 1..=12).
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}
