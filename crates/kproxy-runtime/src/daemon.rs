//! The daemon: a source emits events, one runner task owns the [`ProxyLoop`] and the
//! [`Dataplane`] (it folds the events in between runs and paces the syncs), and health and
//! metrics servers report on it.

mod conflict_events;
mod proxy_task;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kproxy_core::{Dataplane, IpFamily, ProxyLoop};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::ProxyConfig;
use crate::explain::ExplainHandle;
use crate::health::ProxyHealth;
use crate::metrics::Metrics;
use crate::runner::{StopReason, SyncConfig, SyncRunner};
use crate::service_health::ServiceHealthServer;
use crate::source::{KubeSource, KubeSourceError, ManifestSource, SourceEvent};
use conflict_events::ConflictEvents;
use proxy_task::{ProxyTask, Reporting};

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
    tracing::info!(mode, node, "kproxy starting");
    let mut metrics = Metrics::new();
    if let Some(counters) = dataplane.packet_counters() {
        metrics.expose_packet_counters(counters);
    }
    let metrics = Arc::new(metrics);
    let health = Arc::new(ProxyHealth::new(config.health_timeout()));
    // The servers report on this run only: they stop with it, whichever way it ends.
    let (explain, questions) = ExplainHandle::channel();
    let _servers = AbortOnDrop(spawn_servers(&config, &health, &metrics, mode, explain).await);
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (runner, handle) = SyncRunner::new(sync_config(&config))?;
    let (source, client) = start_source(&config, &node, events_tx).await?;
    let reporting = Reporting {
        metrics,
        health: health.clone(),
        service_health: ServiceHealthServer::new([config.bind_address_for_health()], health.clone()),
        conflict_events: client.map(|client| ConflictEvents::spawn(client, &node)),
    };
    let mut task =
        ProxyTask::new(ProxyLoop::new(&node, SystemTime::now()), dataplane, events, reporting).answering(questions);
    // As upstream's SyncLoop: a proxy whose syncs never succeed turns unhealthy.
    IpFamily::ALL.into_iter().for_each(|f| health.updated(f));
    let mut shutdown = pin!(shutdown);
    // No sync, not even the periodic one, before every initial list has arrived: programming
    // a partial (or empty) state would break traffic that the previous rules still carry.
    tracing::info!("waiting for the initial lists of Services, EndpointSlices and this Node");
    let driving = async {
        match task.initial_lists(shutdown.as_mut()).await {
            Some(reason) => (Ok(reason), task),
            None => {
                // The first sync runs at once; from then on the events ask for syncs.
                handle.request();
                drop(handle);
                runner.drive(task, shutdown).await
            }
        }
    };
    // The source stops here, whichever way the run ends.
    let (result, task) = alongside(driving, source).await;
    match result {
        Ok(StopReason::Shutdown) => {
            task.shutdown(SHUTDOWN_DRAIN).await;
            Ok(())
        }
        // The source ended.
        Ok(StopReason::HandlesDropped) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn sync_config(config: &ProxyConfig) -> SyncConfig {
    SyncConfig {
        min_interval: config.min_sync_period,
        retry_interval: config.sync_period,
        max_interval: config.sync_period,
        full_interval: crate::runner::DEFAULT_FULL_INTERVAL,
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
    explain: ExplainHandle,
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
        let server = crate::metrics_server::serve(listener, metrics.clone(), mode, Some(explain));
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

/// The source, to run beside the proxy task; with an apiserver, also its client (for Events).
async fn start_source(
    config: &ProxyConfig,
    node: &str,
    events: mpsc::Sender<SourceEvent>,
) -> Result<(Pin<Box<dyn Future<Output = ()> + Send>>, Option<kube::Client>), DaemonError> {
    if let Some(dir) = &config.manifests {
        tracing::info!(dir = %dir.display(), "reading objects from a manifest directory");
        let source = ManifestSource::new(dir.clone(), node, MANIFEST_POLL_INTERVAL);
        return Ok((Box::pin(source.run(events)), None));
    }
    let source = KubeSource::connect(config.kubeconfig.as_ref(), config.master.as_deref(), node).await?;
    let client = source.client().clone();
    Ok((Box::pin(source.run(events)), Some(client)))
}

/// Runs `main` to its end with `side` beside it, on the same task (`side` is dropped then).
///
/// The source runs so rather than as a task of its own: its objects are decoded on the
/// thread that then folds them and renders the rules, so the allocator reuses the memory
/// the objects leave for the state (a task on another worker would leave it in that
/// thread's arena, never returned).
async fn alongside<T>(main: impl Future<Output = T>, side: impl Future<Output = ()>) -> T {
    let side = async {
        side.await;
        // A source that ends closes its events: `main` sees that and ends too.
        std::future::pending::<T>().await
    };
    tokio::select! {
        out = main => out,
        out = side => out,
    }
}
