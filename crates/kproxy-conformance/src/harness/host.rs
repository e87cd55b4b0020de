//! Runs a dataplane on a thread of its own inside node1's namespace.
//!
//! The factory is called, and every `sync`/`cleanup` runs, on that thread under a
//! current-thread tokio runtime: netlink sockets the dataplane opens, commands it spawns
//! (`nft`, `conntrack`) and blocking tasks it starts all inherit node1's namespace, so a
//! dataplane that knows nothing of namespaces still programs node1 and never the caller's.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futures::FutureExt;
use kproxy_core::{Changes, Dataplane, PacketCounters, ProxyState, SyncStats};
use tokio::sync::{mpsc, oneshot};

use crate::topology::NodeEnv;
use crate::{Error, netns};

/// An error a dataplane factory returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the dataplane under test for a node. Called on a thread inside the node's
/// namespace, within a tokio runtime; called again when the harness must rebuild it
/// (e.g. to switch `masquerade_all`).
pub type DataplaneFactory = dyn Fn(&NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> + Send + Sync;

/// How long the factory may take.
const FACTORY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one sync or cleanup may take (1,000 services included).
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

enum Command {
    Sync { state: Box<ProxyState>, changes: Changes, reply: oneshot::Sender<Result<SyncStats, String>> },
    Cleanup { reply: oneshot::Sender<Result<(), String>> },
}

/// A running dataplane thread; dropping it ends the thread.
pub(crate) struct DataplaneHost {
    commands: Option<mpsc::UnboundedSender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
    name: &'static str,
    counters: Option<Arc<dyn PacketCounters>>,
}

impl DataplaneHost {
    /// Starts the thread and builds the dataplane with `factory`.
    pub(crate) fn start(factory: Arc<DataplaneFactory>, env: NodeEnv) -> Result<Self, Error> {
        let (commands, receiver) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("kpc-dataplane".to_owned())
            .spawn(move || host_main(&*factory, &env, receiver, ready_tx))
            .map_err(|e| Error::new(format!("spawn dataplane thread: {e}")))?;
        let mut host = Self { commands: Some(commands), thread: Some(thread), name: "?", counters: None };
        match ready_rx.recv_timeout(FACTORY_TIMEOUT) {
            Ok(Ok((name, counters))) => {
                host.name = name;
                host.counters = counters;
                Ok(host)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(format!("dataplane factory did not return within {FACTORY_TIMEOUT:?}"))),
        }
    }

    /// The dataplane's name.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The dataplane's kernel packet counters, if it keeps any.
    pub(crate) fn packet_counters(&self) -> Option<Arc<dyn PacketCounters>> {
        self.counters.clone()
    }

    /// Whether the thread still takes commands.
    pub(crate) fn is_alive(&self) -> bool {
        self.commands.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// `Dataplane::sync` on the thread.
    pub(crate) async fn sync(&self, state: &ProxyState, changes: Changes) -> Result<SyncStats, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Sync { state: Box::new(state.clone()), changes, reply })?;
        self.wait(answer, "sync").await
    }

    /// `Dataplane::cleanup` on the thread.
    pub(crate) async fn cleanup(&self) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Cleanup { reply })?;
        self.wait(answer, "cleanup").await
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        let sender = self.commands.as_ref().ok_or_else(|| Error::new("dataplane thread stopped"))?;
        sender.send(command).map_err(|_| Error::new("dataplane thread is gone (it panicked earlier)"))
    }

    async fn wait<T>(&self, answer: oneshot::Receiver<Result<T, String>>, step: &str) -> Result<T, Error> {
        match tokio::time::timeout(SYNC_TIMEOUT, answer).await {
            Ok(Ok(result)) => result.map_err(|e| Error::new(format!("{} {step}: {e}", self.name))),
            Ok(Err(_)) => Err(Error::new(format!("{} {step}: the dataplane thread died", self.name))),
            Err(_) => Err(Error::new(format!("{} {step}: no answer within {SYNC_TIMEOUT:?}", self.name))),
        }
    }
}

impl Drop for DataplaneHost {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the command in hand is done.
        self.commands.take();
        let Some(thread) = self.thread.take() else { return };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            eprintln!("kproxy-conformance: dataplane thread still busy; leaving it behind");
        }
    }
}

type Ready = std::sync::mpsc::Sender<Result<(&'static str, Option<Arc<dyn PacketCounters>>), Error>>;

fn host_main(factory: &DataplaneFactory, env: &NodeEnv, commands: mpsc::UnboundedReceiver<Command>, ready: Ready) {
    let built = netns::enter(&env.netns).and_then(|()| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::new(format!("dataplane runtime: {e}")))?;
        let dataplane = {
            let _context = runtime.enter();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory(env)))
                .map_err(|p| Error::new(format!("dataplane factory panicked: {}", panic_text(&*p))))?
                .map_err(|e| Error::new(format!("dataplane factory: {e}")))?
        };
        Ok((runtime, dataplane))
    });
    match built {
        Ok((runtime, dataplane)) => {
            let _ = ready.send(Ok((dataplane.name(), dataplane.packet_counters())));
            runtime.block_on(serve(dataplane, commands));
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

async fn serve(mut dataplane: Box<dyn Dataplane>, mut commands: mpsc::UnboundedReceiver<Command>) {
    while let Some(command) = commands.recv().await {
        let panicked = match command {
            Command::Sync { state, changes, reply } => {
                let run = std::panic::AssertUnwindSafe(dataplane.sync(&state, &changes)).catch_unwind().await;
                answer(run.map(|r| r.map_err(|e| e.to_string())), reply)
            }
            Command::Cleanup { reply } => {
                let run = std::panic::AssertUnwindSafe(dataplane.cleanup()).catch_unwind().await;
                answer(run.map(|r| r.map_err(|e| e.to_string())), reply)
            }
        };
        if panicked {
            // Its state is unknown now: stop, so that the harness builds a new one.
            return;
        }
    }
}

/// Sends a result (or the panic) back; true when the dataplane panicked.
fn answer<T>(
    run: Result<Result<T, String>, Box<dyn std::any::Any + Send>>,
    reply: oneshot::Sender<Result<T, String>>,
) -> bool {
    let (result, panicked) = match run {
        Ok(result) => (result, false),
        Err(panic) => (Err(format!("dataplane panicked: {}", panic_text(&*panic))), true),
    };
    let _ = reply.send(result);
    panicked
}

/// The message of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".to_owned())
}
