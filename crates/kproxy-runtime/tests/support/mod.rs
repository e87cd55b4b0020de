//! Support for the daemon's end-to-end tests: a recording dataplane, a daemon harness with
//! bounded waits, a tiny HTTP client and temporary directories.

#![allow(dead_code, reason = "each test binary uses a different part of the support module")]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kproxy_core::{Changes, Dataplane, IpFamily, ProxyState, SyncError, SyncStats};
use kproxy_runtime::config::{ConfigLayers, PartialConfig, ProxyConfig};
use kproxy_runtime::daemon::DaemonError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod cluster;

#[allow(unused_imports, reason = "each test binary uses a different part of the support module")]
pub use cluster::{SVC1, bounded, cluster, node1, started, svc1, svc1_slice};

/// The longest any single expected outcome may take.
pub const WAIT: Duration = Duration::from_secs(30);
/// How often bounded waits look again.
const POLL: Duration = Duration::from_millis(50);
/// The daemon's `--sync-period` in these tests.
pub const SYNC_PERIOD: Duration = Duration::from_secs(2);
/// The name the recording dataplane reports (`/proxyMode`).
pub const RECORDING: &str = "recording";

/// One call of [`Dataplane::sync`], as the dataplane saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The state handed to the dataplane.
    pub state: ProxyState,
    /// The changes handed to the dataplane.
    pub changes: Changes,
    /// The dataplane was told to fail this sync.
    pub failed: bool,
}

impl Recorded {
    /// IPv4 service ports, as `ns/name:port`.
    pub fn ports(&self) -> Vec<String> {
        self.state.family(IpFamily::V4).services.iter().map(|(name, _)| name.to_string()).collect()
    }

    /// Whether the IPv4 state has service port `port` (`ns/name:port`).
    pub fn has_port(&self, port: &str) -> bool {
        self.ports().iter().any(|p| p == port)
    }

    /// The IPv4 endpoints of `port` (`ns/name:port`), as `ip:port`, sorted.
    pub fn endpoints(&self, port: &str) -> Vec<String> {
        let family = self.state.family(IpFamily::V4);
        let mut out: Vec<String> = family
            .services
            .iter()
            .filter(|(name, _)| name.to_string() == port)
            .flat_map(|(name, _)| family.endpoints.get(name).iter().map(|e| e.socket_addr().to_string()))
            .collect();
        out.sort();
        out
    }

    /// The changed IPv4 service ports, as `ns/name:port`.
    pub fn changed(&self) -> Vec<String> {
        self.changes.family(IpFamily::V4).service_ports.iter().map(ToString::to_string).collect()
    }

    /// A sync with nothing to apply, neither full nor failed: the periodic run's, when no
    /// change came in (full runs come an hour apart).
    pub fn is_idle(&self) -> bool {
        !self.changes.full()
            && !self.failed
            && IpFamily::ALL.iter().all(|f| self.changes.family(*f).service_ports.is_empty())
    }

    /// Whether `port` is among the changed service ports.
    pub fn changed_port(&self, port: &str) -> bool {
        self.changed().iter().any(|p| p == port)
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "full={} failed={} ports={:?} changed={:?}",
            self.changes.full(),
            self.failed,
            self.ports(),
            self.changed()
        )
    }
}

/// The test's side of a [`RecordingDataplane`]: what it recorded, and how to make it fail.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    shutdowns: Arc<AtomicUsize>,
    syncs: Arc<Mutex<Vec<Recorded>>>,
    fail_next: Arc<AtomicUsize>,
    fatal: Arc<AtomicBool>,
}

impl Recorder {
    /// A dataplane recording into this recorder.
    pub fn dataplane(&self) -> RecordingDataplane {
        RecordingDataplane { recorder: self.clone() }
    }

    /// How many times the daemon shut the dataplane down.
    pub fn shutdowns(&self) -> usize {
        self.shutdowns.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every sync so far.
    pub fn syncs(&self) -> Vec<Recorded> {
        self.syncs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many syncs so far.
    pub fn len(&self) -> usize {
        self.syncs.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Makes the next `n` syncs fail with a retryable error (replacing any earlier count).
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    /// Makes every sync fail with a fatal error.
    pub fn fail_fatally(&self) {
        self.fatal.store(true, Ordering::SeqCst);
    }

    /// Waits (bounded) for a sync at index `from` or later that satisfies `pred`; returns
    /// its index and the sync.
    #[track_caller]
    pub fn wait_for(
        &self,
        what: &str,
        from: usize,
        pred: impl Fn(&Recorded) -> bool,
    ) -> impl Future<Output = (usize, Recorded)> {
        let recorder = self.clone();
        eventually(what, move || recorder.syncs().into_iter().enumerate().skip(from).find(|(_, s)| pred(s)))
    }

    /// All syncs, one summary per line, for assertion messages.
    pub fn describe(&self) -> String {
        self.syncs().iter().enumerate().map(|(i, s)| format!("#{i}: {}\n", s.summary())).collect()
    }
}

/// A [`Dataplane`] that programs nothing: it records every sync (state and changes) and fails
/// when told to.
#[derive(Debug)]
pub struct RecordingDataplane {
    recorder: Recorder,
}

#[async_trait::async_trait]
impl Dataplane for RecordingDataplane {
    fn name(&self) -> &'static str {
        RECORDING
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let fail =
            self.recorder.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        let fatal = self.recorder.fatal.load(Ordering::SeqCst);
        let recorded = Recorded { state: state.clone(), changes: changes.clone(), failed: fail || fatal };
        self.recorder.syncs.lock().unwrap_or_else(PoisonError::into_inner).push(recorded);
        if fatal {
            return Err(SyncError::fatal(RECORDING, "sync", "told to fail fatally"));
        }
        if fail {
            return Err(SyncError::retryable(RECORDING, "sync", "told to fail"));
        }
        let touched = IpFamily::ALL.iter().map(|f| changes.family(*f).service_ports.len()).sum();
        Ok(SyncStats {
            full: changes.full(),
            service_ports: state.families().map(|f| f.services.len()).sum(),
            touched_service_ports: touched,
            ..SyncStats::default()
        })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }

    async fn shutdown(&mut self, _drain: std::time::Duration) {
        self.recorder.shutdowns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// One made-up rule naming the matched port and path, so tests see the dataplane's
    /// names reach `/explain`.
    fn explain_rules(
        &self,
        _state: &ProxyState,
        target: &kproxy_core::explain::PortTarget<'_>,
    ) -> Vec<kproxy_core::explain::RuleRef> {
        let name = format!("{} via {:?}", target.entry.name, target.matched_by);
        vec![kproxy_core::explain::RuleRef::new("recorded", RECORDING, name, None)]
    }
}

/// Where the daemon reads objects from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--kubeconfig`.
    Kubeconfig(PathBuf),
    /// `--manifests`.
    Manifests(PathBuf),
}

/// A daemon running in a task, with a recording dataplane and servers on loopback ports.
#[derive(Debug)]
pub struct Daemon {
    /// What the dataplane saw.
    pub recorder: Recorder,
    /// `/healthz` and `/livez`.
    pub healthz: SocketAddr,
    /// `/metrics` and `/proxyMode`.
    pub metrics: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), DaemonError>>>,
}

impl Daemon {
    /// The configuration of a test daemon: node1, loopback servers on free ports, 100ms
    /// min-sync-period, 2s sync-period, health-check node ports on 127.0.0.1.
    pub fn config(source: &Source) -> (ProxyConfig, SocketAddr, SocketAddr) {
        let healthz = free_port();
        let metrics = free_port();
        let (kubeconfig, manifests) = match source {
            Source::Kubeconfig(path) => (Some(path.display().to_string()), None),
            Source::Manifests(dir) => (None, Some(dir.display().to_string())),
        };
        let flags = PartialConfig {
            kubeconfig,
            manifests,
            hostname_override: Some("node1".to_owned()),
            bind_address: Some("127.0.0.1".to_owned()),
            healthz_bind_address: Some(healthz.to_string()),
            metrics_bind_address: Some(metrics.to_string()),
            sync_period: Some("2s".to_owned()),
            min_sync_period: Some("100ms".to_owned()),
            ..PartialConfig::default()
        };
        let config = ConfigLayers { file: None, env: Vec::new(), flags }.resolve().expect("test config is valid");
        (config, healthz, metrics)
    }

    /// Starts a daemon reading from `source`, with `recorder`'s dataplane.
    pub async fn start(source: &Source, recorder: &Recorder) -> Self {
        init_tracing();
        let (config, healthz, metrics) = Self::config(source);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(kproxy_runtime::daemon::run(config, Box::new(recorder.dataplane()), shutdown));
        let daemon = Self { recorder: recorder.clone(), healthz, metrics, stop: Some(stop), task: Some(task) };
        // The servers are bound before the daemon waits for anything (a daemon that already
        // stopped, e.g. on a fatal sync error, has closed them again).
        eventually("the daemon's servers to listen", || {
            let listening = std::net::TcpStream::connect(daemon.metrics).is_ok();
            (listening || daemon.task.as_ref().is_some_and(|t| t.is_finished())).then_some(())
        })
        .await;
        daemon
    }

    /// Stops the daemon (bounded) and checks it ended without an error.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(error) = self.finished().await {
            panic!("daemon failed: {error}");
        }
        assert_eq!(self.recorder.shutdowns(), 1, "a stopping daemon shuts its dataplane down once");
        for addr in [self.healthz, self.metrics] {
            eventually("the daemon's servers to close", || std::net::TcpStream::connect(addr).err()).await;
        }
    }

    /// Waits (bounded) for the daemon to end on its own; what it returned.
    pub async fn finished(&mut self) -> Result<(), DaemonError> {
        let task = self.task.take().expect("running");
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => panic!("daemon task panicked: {join}"),
            Err(_) => panic!("daemon did not end within 10s"),
        }
    }

    /// `GET` on the metrics server.
    pub async fn metrics_get(&self, path: &str) -> HttpResponse {
        get(self.metrics, path).await
    }

    /// The value of one sample line of `/metrics` (e.g. `name{label="v"}`).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let text = self.metrics_get("/metrics").await.body;
        metric_value(&text, sample)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The value of `sample` (the part before the value) in an OpenMetrics text.
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

/// Waits (bounded by [`WAIT`]) until `check` returns `Some`.
#[track_caller]
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> impl Future<Output = T> {
    let caller = std::panic::Location::caller();
    let what = what.to_owned();
    async move {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "{caller}: timed out after {WAIT:?} waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Waits (bounded by [`WAIT`]) until `GET addr path` answers `status`; returns the response.
#[track_caller]
pub fn eventually_status(addr: SocketAddr, path: &str, status: u16) -> impl Future<Output = HttpResponse> {
    let caller = std::panic::Location::caller();
    let path = path.to_owned();
    async move {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match try_get(addr, &path).await {
                Ok(response) if response.status == status => return response,
                Ok(response) => format!("{} {}", response.status, response.body),
                Err(error) => error.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "{caller}: GET http://{addr}{path} did not answer {status} within {WAIT:?}; last: {last}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address")
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body (de-chunked).
    pub body: String,
}

/// `GET path` with `Connection: close`; panics on a transport error or after 10 s.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    try_get(addr, path).await.unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// `GET path`, or the I/O error (refused, or no answer within 10 s).
pub async fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpResponse> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        parse(&String::from_utf8_lossy(&raw))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 10s")))
}

fn parse(raw: &str) -> std::io::Result<HttpResponse> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad response: {what}"));
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
    let status = status.ok_or_else(|| bad("status line"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let chunked = headers.get("transfer-encoding").is_some_and(|te| te.contains("chunked"));
    let body = if chunked { dechunk(body).ok_or_else(|| bad("chunks"))? } else { body.to_owned() };
    Ok(HttpResponse { status, headers, body })
}

fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// A directory under Cargo's per-test scratch area, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Self(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Logs to the test's output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
