//! The relay's worker threads. Each runs a single-threaded tokio runtime of its own, so a
//! connection is accepted, connected and relayed on one thread: no work stealing, no
//! wake-ups from one worker to another, no locks between them on the hot path. TCP
//! listeners have a socket per worker (`SO_REUSEPORT`), so the kernel spreads new
//! connections over the workers; a UDP listener lives on one worker.
//!
//! Threads are started by [`Workers::start`]'s caller, so they live in its network
//! namespace (the namespace of the sockets they create: endpoints are connected from it).

use std::io;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// One worker: a thread running a single-threaded runtime until told to stop.
#[derive(Debug)]
struct Worker {
    handle: Handle,
    /// Dropping it stops the worker: its runtime, with every task on it, is dropped.
    stop: Option<oneshot::Sender<()>>,
}

/// The relay's workers.
#[derive(Debug)]
pub(crate) struct Workers {
    workers: Vec<Worker>,
    /// The worker the next single-socket listener goes to.
    next: usize,
}

impl Workers {
    /// Starts `count` (at least one) workers in the calling thread's network namespace.
    pub(crate) fn start(count: usize) -> io::Result<Self> {
        let workers = (0..count.max(1)).map(|_| Worker::start()).collect::<io::Result<Vec<_>>>()?;
        Ok(Self { workers, next: 0 })
    }

    /// Whether the workers were stopped.
    pub(crate) fn stopped(&self) -> bool {
        self.workers.is_empty()
    }

    /// How many there are (none once stopped).
    pub(crate) fn len(&self) -> usize {
        self.workers.len()
    }

    /// Every worker's runtime.
    pub(crate) fn handles(&self) -> impl Iterator<Item = &Handle> {
        self.workers.iter().map(|w| &w.handle)
    }

    /// A worker's runtime, each in turn: where a listener with a single socket goes.
    pub(crate) fn next(&mut self) -> Option<&Handle> {
        let i = self.next % self.workers.len().max(1);
        self.next = i + 1;
        self.workers.get(i).map(|w| &w.handle)
    }

    /// Stops every worker without waiting: each drops its runtime, and with it every
    /// listener and connection it served.
    pub(crate) fn stop(&mut self) {
        for mut worker in self.workers.drain(..) {
            drop(worker.stop.take());
        }
    }
}

impl Worker {
    fn start() -> io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_io().enable_time().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("kproxy-relay".to_owned()).spawn(move || {
            // Returns when the sender is dropped; the runtime and its tasks go with it.
            runtime.block_on(async move {
                let _ = stopped.await;
            });
        })?;
        Ok(Self { handle, stop: Some(stop) })
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Never blocks, so it is safe inside an async context too.
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    use std::thread::{Thread, current};
    use std::time::Duration;

    use super::*;

    /// The thread that runs `handle`'s tasks.
    fn thread_of(handle: &Handle) -> Thread {
        let (tx, rx) = channel();
        handle.spawn(async move { tx.send(current()) });
        rx.recv().unwrap()
    }

    #[test]
    fn each_worker_runs_its_tasks_on_a_thread_of_its_own_until_stopped() {
        let mut workers = Workers::start(2).unwrap();
        let threads: Vec<Thread> = workers.handles().map(thread_of).collect();
        assert_eq!(threads.len(), 2);
        assert_ne!(threads[0].id(), threads[1].id());
        assert!(threads.iter().all(|t| t.name() == Some("kproxy-relay")));
        let turns: Vec<_> = (0..3).map(|_| thread_of(workers.next().unwrap()).id()).collect();
        assert_eq!(turns, [threads[0].id(), threads[1].id(), threads[0].id()], "single-socket listeners take turns");
        // A task that never ends is dropped with its worker.
        let (tx, rx) = channel::<()>();
        workers.next().unwrap().spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        workers.stop();
        assert!(workers.stopped());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected));
    }
}
