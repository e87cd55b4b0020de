//! Watch streams: newline-delimited JSON watch events sent from a task per watch.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

use super::discovery::failure;
use super::kind::ResourceKind;
use super::selector::Filter;
use super::shared::Shared;
use super::store::{Change, Expired, Store};

/// A parsed watch request.
#[derive(Debug, Clone)]
pub(crate) struct WatchRequest {
    /// The kind to watch.
    pub(crate) kind: ResourceKind,
    /// Namespace and selectors.
    pub(crate) filter: Filter,
    /// Where to start; `None` (or 0) starts with the current state as ADDED events.
    pub(crate) resource_version: Option<u64>,
    /// `sendInitialEvents=true`: current state, then a BOOKMARK marking the end of initial events.
    pub(crate) send_initial_events: bool,
    /// `allowWatchBookmarks=true`.
    pub(crate) bookmarks: bool,
    /// `timeoutSeconds`: the watch ends cleanly after this long.
    pub(crate) timeout: Duration,
}

type Chunk = Result<Bytes, io::Error>;

/// Starts a task that feeds the watch, and returns the response body it feeds.
pub(crate) fn watch_body(shared: Arc<Shared>, req: WatchRequest) -> Body {
    let (tx, rx) = mpsc::channel::<Chunk>(64);
    tokio::spawn(run(shared, req, tx));
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) }))
}

/// What woke the watch loop.
enum Wake {
    Changed,
    Bookmark,
    Stop,
    Abort,
}

async fn run(shared: Arc<Shared>, req: WatchRequest, tx: mpsc::Sender<Chunk>) {
    let mut changes = shared.subscribe_changes();
    let mut drops = shared.subscribe_drops();
    let deadline = Instant::now() + req.timeout;
    let period = shared.bookmark_interval.max(Duration::from_millis(1));
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let first = start(&shared.store(), &req);
    let Some(mut cursor) = send(&tx, first).await else { return };
    loop {
        let wake = tokio::select! {
            () = sleep_until(deadline) => Wake::Stop,
            () = tx.closed() => Wake::Stop,
            changed = changes.changed() => if changed.is_ok() { Wake::Changed } else { Wake::Stop },
            _ = drops.changed() => Wake::Abort,
            _ = ticks.tick(), if req.bookmarks => Wake::Bookmark,
        };
        let bookmark = match wake {
            Wake::Changed => false,
            Wake::Bookmark => true,
            Wake::Stop => return,
            Wake::Abort => {
                let _ = tx.send(Err(io::Error::other("watch dropped by the fake apiserver"))).await;
                return;
            }
        };
        let next = catch_up(&shared.store(), &req, cursor, bookmark);
        match send(&tx, next).await {
            Some(c) => cursor = c,
            None => return,
        }
    }
}

/// Sends the lines, or the 410 event if expired; the new cursor, or `None` if the watch is over.
async fn send(tx: &mpsc::Sender<Chunk>, batch: Result<(Vec<Bytes>, u64), Expired>) -> Option<u64> {
    match batch {
        Ok((lines, cursor)) => {
            for line in lines {
                tx.send(Ok(line)).await.ok()?;
            }
            Some(cursor)
        }
        Err(Expired) => {
            // Ignored: the watch ends either way.
            let _ = tx.send(Ok(expired_line())).await;
            None
        }
    }
}

/// The first batch: the current state (initial events), or the history after the requested version.
fn start(store: &Store, req: &WatchRequest) -> Result<(Vec<Bytes>, u64), Expired> {
    match req.resource_version {
        Some(rv) if rv > 0 && !req.send_initial_events => {
            store.check_watch_start(rv)?;
            catch_up(store, req, rv, false)
        }
        _ => {
            let cursor = store.resource_version();
            let mut lines: Vec<Bytes> =
                store.list(req.kind, &req.filter).iter().map(|obj| event_line("ADDED", obj)).collect();
            if req.send_initial_events {
                lines.push(bookmark_line(req.kind, cursor, true));
            }
            Ok((lines, cursor))
        }
    }
}

/// The events after `cursor` this watch sees, plus a bookmark if asked for; and the new cursor.
fn catch_up(store: &Store, req: &WatchRequest, cursor: u64, bookmark: bool) -> Result<(Vec<Bytes>, u64), Expired> {
    let changes = store.changes_after(cursor)?;
    let cursor = changes.last().map_or(cursor, |c| c.rv);
    let mut lines: Vec<Bytes> =
        changes.iter().filter(|c| c.kind == req.kind).filter_map(|c| change_line(c, &req.filter)).collect();
    if bookmark {
        lines.push(bookmark_line(req.kind, cursor, false));
    }
    Ok((lines, cursor))
}

/// The event a watch with `filter` sees for `change`, as the apiserver's watch cache computes it.
fn change_line(change: &Change, filter: &Filter) -> Option<Bytes> {
    let was = change.old.as_ref().is_some_and(|old| filter.matches(old));
    if change.deleted {
        return was.then(|| event_line("DELETED", &change.object));
    }
    match (was, filter.matches(&change.object)) {
        (false, true) => Some(event_line("ADDED", &change.object)),
        (true, true) => Some(event_line("MODIFIED", &change.object)),
        // No longer matching: DELETED with the previous content at the new resourceVersion.
        (true, false) => change.old.as_ref().map(|old| event_line("DELETED", &with_version(old, change.rv))),
        (false, false) => None,
    }
}

fn with_version(obj: &Value, rv: u64) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), rv.to_string().into());
    }
    obj
}

fn event_line(type_: &str, object: &Value) -> Bytes {
    line(&json!({"type": type_, "object": object}))
}

fn bookmark_line(kind: ResourceKind, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let object = json!({"kind": kind.kind(), "apiVersion": kind.api_version(), "metadata": metadata});
    line(&json!({"type": "BOOKMARK", "object": object}))
}

fn expired_line() -> Bytes {
    line(&json!({"type": "ERROR", "object": failure(410, "Expired", "too old resource version")}))
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}
