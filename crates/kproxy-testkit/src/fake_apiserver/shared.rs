//! State shared between the test-facing handle, the HTTP handlers and the watch tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::store::Store;

/// Everything the server's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// Carries the latest resourceVersion; watch tasks wake up when it changes.
    changes: watch::Sender<u64>,
    /// A generation counter; every open watch aborts its connection when it changes.
    drops: watch::Sender<u64>,
    unavailable: AtomicBool,
    requests: Mutex<Vec<String>>,
    /// events.k8s.io Events created, oldest first.
    events: Mutex<Vec<serde_json::Value>>,
    /// The bearer token every request must carry.
    pub(crate) token: String,
    /// How often watches that allow bookmarks get one.
    pub(crate) bookmark_interval: Duration,
}

impl Shared {
    /// Empty state.
    pub(crate) fn new(token: String, bookmark_interval: Duration) -> Shared {
        let store = Store::default();
        let (changes, _) = watch::channel(store.resource_version());
        let (drops, _) = watch::channel(0);
        Shared {
            store: Mutex::new(store),
            changes,
            drops,
            unavailable: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
            events: Mutex::new(Vec::new()),
            token,
            bookmark_interval,
        }
    }

    /// Locks the store for reading.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a write against the store, then wakes every watch.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let (out, rv) = {
            let mut store = self.store();
            let out = f(&mut store);
            (out, store.resource_version())
        };
        self.changes.send_replace(rv);
        out
    }

    /// A receiver that sees every later write.
    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A receiver that sees every later [`Shared::drop_watches`].
    pub(crate) fn subscribe_drops(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// Makes every open watch abort its connection.
    pub(crate) fn drop_watches(&self) {
        self.drops.send_modify(|generation| *generation += 1);
    }

    /// Whether requests get 503.
    pub(crate) fn unavailable(&self) -> bool {
        self.unavailable.load(Ordering::SeqCst)
    }

    /// Sets whether requests get 503.
    pub(crate) fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Appends to the request log.
    pub(crate) fn log_request(&self, line: String) {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }

    /// The Events created, oldest first, to read or change.
    pub(crate) fn events(&self) -> MutexGuard<'_, Vec<serde_json::Value>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the request log.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
