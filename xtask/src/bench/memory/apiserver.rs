//! The testkit's fake apiserver, served from a thread inside the bench's node namespace
//! (its listener is bound to that namespace's `127.0.0.1`, where the daemon reaches it).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::Context;
use kproxy_testkit::FakeApiServer;
use nix::sched::{CloneFlags, setns};
use tokio::sync::oneshot;

/// How long the server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The running server; dropping it stops the server and its thread.
pub(super) struct ApiServerThread {
    server: Option<FakeApiServer>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<anyhow::Result<()>>>,
}

impl ApiServerThread {
    /// Starts the server on a thread inside namespace `ns`.
    pub(super) fn start(ns: &str) -> anyhow::Result<Self> {
        let (started_tx, started) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let path = format!("/run/netns/{ns}");
        let thread = thread::spawn(move || {
            let file = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {path}"))?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async move {
                if started_tx.send(FakeApiServer::start().await).is_ok() {
                    let _ = stopped.await;
                }
            });
            Ok(())
        });
        let server = started.recv_timeout(START_TIMEOUT).context("the fake apiserver did not start")?;
        Ok(Self { server: Some(server), stop: Some(stop), thread: Some(thread) })
    }

    /// The server, to store objects and write a kubeconfig.
    pub(super) fn server(&self) -> &FakeApiServer {
        self.server.as_ref().expect("the server lives until the thread is dropped")
    }
}

impl Drop for ApiServerThread {
    fn drop(&mut self) {
        // Dropping the server cuts its watches; the stop signal ends its runtime.
        self.server.take();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
