//! The testkit's [`FakeApiServer`] served from a thread inside node1's namespace, so that
//! its listener is bound to node1's `127.0.0.1`, where the daemon reaches it.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kproxy_testkit::FakeApiServer;
use tokio::sync::oneshot;

use crate::{Error, netns};

/// How long the server may take to start, and to stop.
const START_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The running server and its thread; dropping it stops both.
#[derive(Debug)]
pub(super) struct ApiServerThread {
    server: Option<FakeApiServer>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ApiServerThread {
    /// Starts the server on a thread that has joined namespace `netns`.
    pub(super) fn start(netns: &str) -> Result<Self, Error> {
        let (started_tx, started) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let owned = netns.to_owned();
        let thread = thread::Builder::new()
            .name("kpc-apiserver".to_owned())
            .spawn(move || serve(&owned, started_tx, stopped))
            .map_err(|e| Error::new(format!("spawn the fake apiserver thread: {e}")))?;
        let mut this = Self { server: None, stop: Some(stop), thread: Some(thread) };
        match started.recv_timeout(START_STOP_TIMEOUT) {
            Ok(Ok(server)) => {
                this.server = Some(server);
                Ok(this)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new("the fake apiserver did not start (its thread panicked or hung)")),
        }
    }

    /// The server, to write objects and a kubeconfig.
    pub(super) fn server(&self) -> Result<&FakeApiServer, Error> {
        self.server.as_ref().ok_or_else(|| Error::new("the fake apiserver is stopped"))
    }
}

fn serve(netns: &str, started: mpsc::Sender<Result<FakeApiServer, Error>>, stopped: oneshot::Receiver<()>) {
    let runtime = netns::enter(netns).and_then(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(format!("fake apiserver runtime: {e}")))
    });
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = started.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        // Serves from a task of this runtime, which runs until told to stop (or the
        // handle is gone); dropping the runtime then closes every socket.
        if started.send(Ok(FakeApiServer::start().await)).is_ok() {
            let _ = stopped.await;
        }
    });
}

impl Drop for ApiServerThread {
    fn drop(&mut self) {
        // Dropping the server cuts its watches and shuts it down; then the thread ends.
        self.server.take();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else { return };
        let deadline = Instant::now() + START_STOP_TIMEOUT;
        while !thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            eprintln!("kproxy-conformance: fake apiserver thread still busy; leaving it behind");
        }
    }
}
