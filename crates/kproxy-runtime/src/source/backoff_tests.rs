use kube::core::Status;

use super::*;

fn fixed(fraction: f64) -> RelistBackoff {
    RelistBackoff::with_jitter(Box::new(move || fraction))
}

/// The waits for `n` errors one second apart.
fn schedule(backoff: &mut RelistBackoff, n: u64) -> Vec<f64> {
    let start = Instant::now();
    (0..n).map(|i| backoff.next_delay(start + Duration::from_secs(i)).as_secs_f64()).collect()
}

fn gone() -> watcher::Error {
    watcher::Error::WatchError(Box::new(Status::failure("too old resource version", "Expired").with_code(410)))
}

fn unavailable() -> watcher::Error {
    let status = Status::failure("unavailable", "ServiceUnavailable").with_code(503);
    watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(status)))
}

#[test]
fn waits_double_from_800ms_and_never_exceed_30s() {
    let low = schedule(&mut fixed(0.0), 9);
    assert_eq!(low, [0.8, 1.6, 3.2, 6.4, 12.8, 15.0, 15.0, 15.0, 15.0]);
    let high = schedule(&mut fixed(1.0), 9);
    assert_eq!(high, [1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0, 30.0, 30.0]);
}

#[test]
fn random_jitter_stays_between_the_base_and_the_cap() {
    let mut backoff = RelistBackoff::new();
    let waits = schedule(&mut backoff, 200);
    let low = schedule(&mut fixed(0.0), 200);
    for (wait, base) in waits.iter().zip(&low) {
        assert!((*base..=CAP.as_secs_f64()).contains(wait), "{wait} outside {base}..=30");
    }
    assert!(waits.windows(2).skip(10).any(|w| w[0] != w[1]), "jittered: {waits:?}");
}

#[test]
fn two_minutes_without_an_error_start_over() {
    let mut backoff = fixed(0.0);
    let start = Instant::now();
    for i in 0..8 {
        backoff.next_delay(start + Duration::from_secs(i));
    }
    let quiet = start + Duration::from_secs(7) + RESET_AFTER;
    assert_eq!(backoff.next_delay(quiet), Duration::from_secs(15), "not yet two minutes");
    assert_eq!(backoff.next_delay(quiet + RESET_AFTER + Duration::from_millis(1)), INITIAL);
}

#[test]
fn gone_starts_over_and_other_errors_do_not() {
    let mut backoff = fixed(0.0);
    let now = Instant::now();
    let waits: Vec<Duration> = (0..6).map(|_| backoff.delay_after(&unavailable(), now)).collect();
    assert_eq!(waits.last(), Some(&Duration::from_secs(15)));
    assert_eq!(backoff.delay_after(&gone(), now), INITIAL);
    assert_eq!(backoff.delay_after(&unavailable(), now), INITIAL * 2);
    let started =
        watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(Status::failure("gone", "Expired").with_code(410))));
    assert!(is_gone(&started));
    assert!(!is_gone(&watcher::Error::NoResourceVersion));
}

#[test]
fn random_fractions_are_fractions_and_vary() {
    let draws: Vec<f64> = (0..100).map(|_| random_fraction()).collect();
    assert!(draws.iter().all(|f| (0.0..1.0).contains(f)), "{draws:?}");
    assert!(draws.windows(2).any(|w| w[0] != w[1]), "{draws:?}");
}
