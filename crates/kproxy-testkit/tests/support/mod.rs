//! Helpers for driving `kube::runtime::watcher` against the fake apiserver with bounded waits.

use std::fmt::Debug;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::watcher::{self, Event};

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// A boxed watcher stream with bounded reads.
pub struct Watch<K> {
    stream: BoxStream<'static, Result<Event<K>, watcher::Error>>,
}

impl<K: Resource + Clone + Debug + Send + 'static> Watch<K> {
    /// Wraps a watcher stream.
    pub fn new(stream: impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static) -> Self {
        Watch { stream: stream.boxed() }
    }

    /// The next item; panics if none arrives within [`WAIT`] or the stream ends.
    pub async fn next(&mut self) -> Result<Event<K>, watcher::Error> {
        match tokio::time::timeout(WAIT, self.stream.next()).await {
            Ok(Some(item)) => item,
            Ok(None) => panic!("watcher stream ended"),
            Err(_) => panic!("no watcher event within {WAIT:?}"),
        }
    }

    /// The next event, skipping errors.
    pub async fn next_ok(&mut self) -> Event<K> {
        loop {
            if let Ok(event) = self.next().await {
                return event;
            }
        }
    }

    /// Skips to the next `Init` and returns the names of the `InitApply` objects up to `InitDone`.
    pub async fn next_init(&mut self) -> Vec<String> {
        while !matches!(self.next_ok().await, Event::Init) {}
        let mut names = Vec::new();
        loop {
            match self.next_ok().await {
                Event::InitApply(obj) => names.push(name(&obj)),
                Event::InitDone => return names,
                other => panic!("unexpected event during init: {}", describe(&other)),
            }
        }
    }

    /// The next non-init event, as `Apply name` or `Delete name`.
    pub async fn next_change(&mut self) -> String {
        let event = self.next_ok().await;
        match &event {
            Event::Apply(_) | Event::Delete(_) => describe(&event),
            other => panic!("expected Apply or Delete, got {}", describe(other)),
        }
    }
}

/// The name of an object.
pub fn name<K: Resource>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

/// An event as `Kind name`.
pub fn describe<K: Resource>(event: &Event<K>) -> String {
    match event {
        Event::Apply(obj) => format!("Apply {}", name(obj)),
        Event::Delete(obj) => format!("Delete {}", name(obj)),
        Event::Init => "Init".to_owned(),
        Event::InitApply(obj) => format!("InitApply {}", name(obj)),
        Event::InitDone => "InitDone".to_owned(),
    }
}
