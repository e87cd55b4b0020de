//! [`RelistBackoff`]: how long a watcher waits after an error before it lists or watches
//! again.
//!
//! Upstream's reflector waits 800 ms after the first error and twice as long after each
//! further one, with up to 100% jitter; it starts over once two minutes pass without an
//! error. Its base wait stops growing at 30 s, so with the jitter it waits 30–60 s at the
//! cap, and a proxy may notice a recovered apiserver only a minute later. kproxy keeps the
//! shape and the jitter but caps the wait itself at 30 s (the base stops at 15 s), so new
//! objects are programmed within about 30 s of the apiserver's return.
//!
//! A `410 Gone` answer (the watch's resourceVersion is too old: typical right after an
//! outage) proves the apiserver is answering: the backoff starts over.

use std::hash::BuildHasher;
use std::time::Duration;

use kube::runtime::watcher;
use tokio::time::Instant;

/// The first wait (before jitter).
pub(crate) const INITIAL: Duration = Duration::from_millis(800);
/// The longest wait, jitter included.
pub(crate) const CAP: Duration = Duration::from_secs(30);
/// Without an error for this long, the next error waits [`INITIAL`] again.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(120);
/// How much each further error multiplies the wait by.
const FACTOR: u32 = 2;
/// The largest share of the base wait added as jitter.
const JITTER: f64 = 1.0;

/// A fraction in `[0, 1)`.
type Jitter = Box<dyn FnMut() -> f64 + Send>;

/// Exponential backoff with jitter, capped, reset after a spell without errors.
pub(crate) struct RelistBackoff {
    /// The base of the next wait.
    base: Duration,
    /// When the last wait was handed out.
    last: Option<Instant>,
    jitter: Jitter,
}

impl RelistBackoff {
    /// A backoff with random jitter.
    pub(crate) fn new() -> Self {
        Self::with_jitter(Box::new(random_fraction))
    }

    fn with_jitter(jitter: Jitter) -> Self {
        Self { base: INITIAL, last: None, jitter }
    }

    /// How long to wait after `error`, which happened at `now`.
    pub(crate) fn delay_after(&mut self, error: &watcher::Error, now: Instant) -> Duration {
        if is_gone(error) {
            self.base = INITIAL;
        }
        self.next_delay(now)
    }

    /// The next wait, for an error at `now`.
    fn next_delay(&mut self, now: Instant) -> Duration {
        if self.last.is_some_and(|last| now.saturating_duration_since(last) > RESET_AFTER) {
            self.base = INITIAL;
        }
        self.last = Some(now);
        let base = self.base;
        self.base = (base * FACTOR).min(CAP / 2);
        let fraction = (self.jitter)().clamp(0.0, 1.0);
        base.mul_f64(1.0 + JITTER * fraction).min(CAP)
    }
}

/// Whether the apiserver answered `410 Gone`: the watch must start over from a new list.
fn is_gone(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// A fraction in `[0, 1)` from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    // The top 53 bits fill an f64's mantissa exactly.
    (bits >> 11) as f64 / (1_u64 << 53) as f64
}

#[cfg(test)]
#[path = "backoff_tests.rs"]
mod tests;
