//! Counting relayed connections, so that a shutdown can wait for them to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The connections (and UDP sessions) in progress.
#[derive(Debug, Default)]
pub struct Connections {
    active: AtomicUsize,
    idle: Notify,
}

/// Held by one connection for its lifetime.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<Connections>);

impl Connections {
    /// Counts a new connection until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }

    /// Connections in progress.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no connection is left, at most `within`; true when none is.
    pub async fn drained(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.active() == 0;
            }
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_the_last_guard() {
        let connections = Arc::new(Connections::default());
        assert!(connections.drained(Duration::ZERO).await);
        let guard = connections.enter();
        assert!(!connections.drained(Duration::from_millis(20)).await);
        let waiter = tokio::spawn({
            let connections = connections.clone();
            async move { connections.drained(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(guard);
        assert!(waiter.await.unwrap());
        assert_eq!(connections.active(), 0);
    }
}
