use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use kproxy_core::IpFamily::{V4, V6};
use tokio::time::advance;

use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn healthy_when_idle_and_before_any_sync() {
    let health = ProxyHealth::new(TIMEOUT);
    assert!(health.is_healthy());
    // A queued update for a family that never synced is not judged (upstream iterates
    // over the families with a lastUpdated time).
    health.queued_update(V4);
    advance(TIMEOUT * 3).await;
    assert!(health.is_healthy());

    health.updated(V4);
    health.updated(V6);
    advance(Duration::from_secs(25)).await;
    assert!(health.is_healthy(), "no queued update: healthy however long it is idle");
}

#[tokio::test(start_paused = true)]
async fn unhealthy_once_a_queued_update_is_older_than_the_timeout() {
    let health = ProxyHealth::new(TIMEOUT);
    health.updated(V4);
    health.queued_update(V4);
    advance(TIMEOUT - Duration::from_millis(1)).await;
    assert!(health.is_healthy(), "late only at the timeout");
    advance(Duration::from_millis(1)).await;
    assert!(!health.is_healthy());

    health.updated(V4);
    assert!(health.is_healthy(), "healthy again after a successful sync");
}

#[tokio::test(start_paused = true)]
async fn only_the_oldest_queued_update_counts() {
    let health = ProxyHealth::new(TIMEOUT);
    health.updated(V4);
    health.queued_update(V4);
    advance(Duration::from_secs(6)).await;
    health.queued_update(V4);
    advance(Duration::from_secs(6)).await;
    assert!(!health.is_healthy(), "the first queued update is 12s old");
}

#[tokio::test(start_paused = true)]
async fn one_late_family_makes_the_proxy_unhealthy() {
    let health = ProxyHealth::new(TIMEOUT);
    health.updated(V4);
    health.updated(V6);
    health.queued_update(V6);
    advance(Duration::from_secs(25)).await;
    let report = health.health();
    assert!(!report.healthy);
    assert!(report.status[&V4].healthy);
    assert!(!report.status[&V6].healthy);

    // Updating the family that is not late changes nothing.
    health.updated(V4);
    assert!(!health.is_healthy());
    health.updated(V6);
    assert!(health.is_healthy());
}

#[test]
fn report_times_follow_the_clock() {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let clock = Arc::new(ManualClock::new(start));
    let health = ProxyHealth::with_clock(TIMEOUT, clock.clone());
    let report = health.health();
    assert_eq!(report.last_updated, None);
    assert_eq!(report.current_time, start);
    assert!(report.status.is_empty());

    health.updated(V4);
    clock.advance(Duration::from_secs(3));
    health.updated(V6);
    clock.advance(Duration::from_secs(2));
    let report = health.health();
    assert_eq!(report.current_time, start + Duration::from_secs(5));
    assert_eq!(report.last_updated, Some(start + Duration::from_secs(3)));
    assert_eq!(report.status[&V4], ProxierHealth { last_updated: start, healthy: true });
    assert_eq!(report.status[&V6], ProxierHealth { last_updated: start + Duration::from_secs(3), healthy: true });
}

#[test]
fn node_eligibility_is_separate_from_health() {
    let health = ProxyHealth::new(TIMEOUT);
    assert!(health.node_eligible(), "eligible while starting, as upstream");
    health.set_node_eligible(false);
    assert!(!health.node_eligible());
    assert!(health.is_healthy());
}

#[test]
fn node_eligibility_from_deletion_and_taints() {
    assert!(node_is_eligible(false, []));
    assert!(node_is_eligible(false, ["other", "node.kubernetes.io/unschedulable"]));
    assert!(!node_is_eligible(false, ["other", TO_BE_DELETED_TAINT]));
    assert!(!node_is_eligible(true, []));
}

#[test]
fn go_time_format() {
    assert_eq!(format_go_time(None), "0001-01-01T00:00:00Z");
    assert_eq!(format_go_time(Some(UNIX_EPOCH)), "1970-01-01T00:00:00Z");
    let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
    assert_eq!(format_go_time(Some(t)), "2023-11-14T22:13:20.12Z");
    let leap = UNIX_EPOCH + Duration::new(951_827_696, 7);
    assert_eq!(format_go_time(Some(leap)), "2000-02-29T12:34:56.000000007Z");
    let before = UNIX_EPOCH - Duration::new(1, 500_000_000);
    assert_eq!(format_go_time(Some(before)), "1969-12-31T23:59:58.5Z");
}
