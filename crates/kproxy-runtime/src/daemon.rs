//! The daemon: a source feeds the trackers, the runner paces syncs, a [`Dataplane`] programs
//! the node; health and metrics servers report on it.

mod syncer;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use kproxy_core::{ChangeTracker, Dataplane, IpFamily};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::config::ProxyConfig;
use crate::event_handler::EventHandler;
use crate::health::ProxyHealth;
use crate::metrics::Metrics;
use crate::runner::{StopReason, SyncConfig, SyncHandle, SyncRunner};
use crate::service_health::ServiceHealthServer;
use crate::source::{KubeSource, KubeSourceError, ManifestSource, SourceEvent};
use syncer::{SharedDataplane, Syncer};

/// How often a manifest directory is checked for changes.
const MANIFEST_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a stopping dataplane may let connections in flight finish.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// How many source events may wait for the handler.
const EVENT_QUEUE: usize = 1024;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The apiserver source cannot start.
    #[error(transparent)]
    Source(#[from] KubeSourceError),
    /// The runner's intervals are inconsistent.
    #[error("sync intervals: {0}")]
    Intervals(#[from] crate::runner::SyncConfigError),
    /// The dataplane failed in a way retrying cannot fix.
    #[error(transparent)]
    Sync(#[from] kproxy_core::SyncError),
}

/// The name of this node: `--hostname-override`, else the kernel's hostname.
pub fn node_name(config: &ProxyConfig) -> String {
    if let Some(name) = &config.hostname_override {
        return name.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_lowercase()).unwrap_or_default()
}

/// Runs the daemon until `shutdown` completes (rules stay in place, as kube-proxy leaves
/// them) or the dataplane fails fatally.
pub async fn run(
    config: ProxyConfig,
    dataplane: Box<dyn Dataplane>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let node = node_name(&config);
    let mode = dataplane.name();
    let dataplane: SharedDataplane = Arc::new(tokio::sync::Mutex::new(dataplane));
    tracing::info!(mode, node, "kproxy starting");
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(ProxyHealth::new(config.health_timeout()));
    // The servers report on this run only: they stop with it, whichever way it ends.
    let _servers = AbortOnDrop(spawn_servers(&config, &health, &metrics, mode).await);
    let tracker = Arc::new(Mutex::new(ChangeTracker::new(&node, SystemTime::now())));
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let (runner, handle) = SyncRunner::new(sync_config(&config))?;
    let source = spawn_source(&config, &node, events_tx).await?;
    let (initialized_tx, initialized) = oneshot::channel();
    let handler = spawn_handler(events_rx, tracker.clone(), handle, metrics.clone(), health.clone(), initialized_tx);
    // As upstream's SyncLoop: a proxy whose syncs never succeed turns unhealthy.
    IpFamily::ALL.into_iter().for_each(|f| health.updated(f));
    let mut shutdown = pin!(shutdown);
    // No sync, not even the periodic one, before every initial list has arrived: programming
    // a partial (or empty) state would break traffic that the previous rules still carry.
    tracing::info!("waiting for the initial lists of Services, EndpointSlices and this Node");
    let result = tokio::select! {
        biased;
        () = shutdown.as_mut() => Ok(StopReason::Shutdown),
        // An error means the handler ended first (the source stopped); the runner then stops
        // at once, its handle being gone.
        _ = initialized => {
            let service_health = ServiceHealthServer::new([config.bind_address_for_health()], health.clone());
            let syncer = Syncer::new(dataplane.clone(), &node, tracker, metrics, health, service_health);
            runner.run_until(syncer, shutdown).await
        }
    };
    source.abort();
    handler.abort();
    if let Ok(StopReason::Shutdown) = result {
        dataplane.lock().await.shutdown(SHUTDOWN_DRAIN).await;
    }
    match result {
        Ok(StopReason::Shutdown) | Ok(StopReason::HandlesDropped) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn sync_config(config: &ProxyConfig) -> SyncConfig {
    SyncConfig {
        min_interval: config.min_sync_period,
        retry_interval: config.sync_period,
        max_interval: config.sync_period,
    }
}

/// Aborts its tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// Starts the health and metrics servers; their tasks, to stop them.
async fn spawn_servers(
    config: &ProxyConfig,
    health: &Arc<ProxyHealth>,
    metrics: &Arc<Metrics>,
    mode: &str,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut servers = Vec::new();
    if let Some(addr) = config.healthz_bind_address
        && let Some(listener) = bind("healthz", addr).await
    {
        let server = crate::health_server::serve(listener, health.clone(), metrics.clone());
        servers.push(tokio::spawn(async move { log_server_end("healthz", server.await) }));
    }
    if let Some(addr) = config.metrics_bind_address
        && let Some(listener) = bind("metrics", addr).await
    {
        let server = crate::metrics_server::serve(listener, metrics.clone(), mode);
        servers.push(tokio::spawn(async move { log_server_end("metrics", server.await) }));
    }
    servers
}

/// Binds a server's address; failure is logged, not fatal (kube-proxy's default).
async fn bind(server: &'static str, addr: SocketAddr) -> Option<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(server, %addr, "serving");
            Some(listener)
        }
        Err(error) => {
            tracing::error!(server, %addr, %error, "cannot bind; server disabled");
            None
        }
    }
}

fn log_server_end(server: &'static str, result: std::io::Result<()>) {
    if let Err(error) = result {
        tracing::error!(server, %error, "server stopped");
    }
}

async fn spawn_source(
    config: &ProxyConfig,
    node: &str,
    events: mpsc::Sender<SourceEvent>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    if let Some(dir) = &config.manifests {
        tracing::info!(dir = %dir.display(), "reading objects from a manifest directory");
        let source = ManifestSource::new(dir.clone(), node, MANIFEST_POLL_INTERVAL);
        return Ok(tokio::spawn(source.run(events)));
    }
    let source = KubeSource::connect(config.kubeconfig.as_ref(), config.master.as_deref(), node).await?;
    Ok(tokio::spawn(source.run(events)))
}

/// Feeds events to the trackers and asks for syncs; the first sync is requested once every
/// initial list has arrived, when `initialized` is told too.
fn spawn_handler(
    mut events: mpsc::Receiver<SourceEvent>,
    tracker: Arc<Mutex<ChangeTracker>>,
    handle: SyncHandle,
    metrics: Arc<Metrics>,
    health: Arc<ProxyHealth>,
    initialized: oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    let counter = metrics.clone();
    let mut handler = EventHandler::new(tracker.clone(), Box::new(move |error| counter.inc_malformed(error.kind)));
    let mut initialized = Some(initialized);
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            count_change(&metrics, &event);
            let sync = handler.handle(event);
            if handler.initialized()
                && let Some(initialized) = initialized.take()
            {
                tracing::info!("initial lists complete; syncing");
                // Ignored: the daemon is shutting down.
                let _ = initialized.send(());
            }
            if sync {
                IpFamily::ALL.into_iter().for_each(|f| health.queued_update(f));
                metrics.set_last_queued(SystemTime::now());
                handle.request();
            }
            let tracker = tracker.lock().unwrap_or_else(PoisonError::into_inner);
            metrics.set_service_changes_pending(tracker.service_changes_pending());
            metrics.set_endpoint_changes_pending(tracker.endpoint_changes_pending());
        }
    })
}

fn count_change(metrics: &Metrics, event: &SourceEvent) {
    match event {
        SourceEvent::Service(_) => metrics.add_service_changes(1),
        SourceEvent::EndpointSlice(_) => metrics.add_endpoint_changes(1),
        SourceEvent::Node(_) => {}
    }
}
