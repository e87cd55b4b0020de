//! An in-process fake kube-apiserver (feature `apiserver`).
//!
//! It serves plain HTTP on `127.0.0.1:<ephemeral port>` and speaks enough of the Kubernetes list/watch
//! API for `kube::runtime::watcher` on Services, EndpointSlices, Nodes and ServiceCIDRs: lists (pages of
//! `limit` items with `continue` tokens, label and field selectors), watches (history replay from a resourceVersion, selectors, bookmarks,
//! `timeoutSeconds`, streaming lists with `sendInitialEvents`), `GET` of one object, and `/version`,
//! `/api`, `/apis` discovery. Objects are stored as JSON so tests can inject malformed ones, even
//! ones that do not decode as their kind ([`FakeApiServer::apply_with`], [`FakeApiServer::apply_json`]).
//! It also takes events.k8s.io/v1 Events (`POST`, merge `PATCH`), as
//! `kube::runtime::events::Recorder` publishes them, for tests to read ([`FakeApiServer::events`]).
//!
//! Tests control faults: [`FakeApiServer::compact`] (410 Gone), [`FakeApiServer::drop_watches`]
//! (connections cut) and [`FakeApiServer::set_unavailable`] (503). Every request must carry the
//! bearer token of [`FakeApiServer::kubeconfig_yaml`], or gets 401.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube::Error> {
//! use kproxy_testkit::fake_apiserver::FakeApiServer;
//! let server = FakeApiServer::start().await;
//! server.apply(&kproxy_testkit::service("ns1", "svc1").cluster_ip("172.30.0.41").build());
//! let client = server.client().await?;
//! # Ok(()) }
//! ```

mod discovery;
mod events;
mod kind;
mod routes;
mod selector;
mod shared;
mod store;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use kind::ResourceKind;
use shared::Shared;

/// How to start a [`FakeApiServer`]; see [`FakeApiServer::start_with`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FakeApiServerOptions {
    bookmark_interval: Duration,
    token: String,
}

impl Default for FakeApiServerOptions {
    fn default() -> Self {
        FakeApiServerOptions { bookmark_interval: Duration::from_secs(1), token: "kproxy-fake-apiserver-token".into() }
    }
}

impl FakeApiServerOptions {
    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK event (default 1 s).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// The bearer token requests must carry (default `kproxy-fake-apiserver-token`).
    pub fn token(mut self, token: &str) -> Self {
        token.clone_into(&mut self.token);
        self
    }
}

/// A running fake apiserver; it stops (and cuts its watches) when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeApiServer {
    /// Starts a server with default options on `127.0.0.1:0`, serving from a spawned task.
    ///
    /// # Panics
    ///
    /// If it cannot bind a port, or outside a tokio runtime.
    pub async fn start() -> FakeApiServer {
        Self::start_with(FakeApiServerOptions::default()).await
    }

    /// Starts a server with `options`; see [`FakeApiServer::start`].
    ///
    /// # Panics
    ///
    /// If it cannot bind a port, or outside a tokio runtime.
    pub async fn start_with(options: FakeApiServerOptions) -> FakeApiServer {
        let shared = Arc::new(Shared::new(options.token, options.bookmark_interval));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake apiserver: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("fake apiserver: no local address: {e}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let app = routes::router(shared.clone());
        tokio::spawn(async move {
            let shutdown = async {
                // An error means the handle is gone: stop as well.
                let _ = stopped.await;
            };
            // Nothing to report to: the test sees failures as failed requests.
            let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        });
        FakeApiServer { shared, addr, stop: Some(stop) }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token requests must carry.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The current resourceVersion (every write and [`FakeApiServer::compact`] bump it).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Creates or replaces a typed object (Service, EndpointSlice, Node or ServiceCIDR); returns its
    /// resourceVersion.
    ///
    /// # Panics
    ///
    /// If the object does not serialize to a served `apiVersion`/`kind` with a `metadata.name`.
    #[track_caller]
    pub fn apply(&self, object: &impl Serialize) -> u64 {
        self.apply_typed(to_json(object))
    }

    /// Stores `value`, whose `apiVersion` and `kind` say its kind.
    #[track_caller]
    fn apply_typed(&self, value: Value) -> u64 {
        let type_meta = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (api_version, kind) = (type_meta("apiVersion"), type_meta("kind"));
        let Some(kind) = ResourceKind::from_type_meta(&api_version, &kind) else {
            panic!("fake apiserver: does not serve apiVersion {api_version:?} kind {kind:?}");
        };
        self.apply_json(kind, value)
    }

    /// Creates or replaces an object given as JSON, which may be malformed beyond its metadata.
    ///
    /// Sets `kind` and `apiVersion`, defaults the namespace of namespaced kinds to `default`, and stamps
    /// `metadata.resourceVersion` (and `uid` and `creationTimestamp` unless given). Returns the new
    /// resourceVersion.
    ///
    /// # Panics
    ///
    /// If `object` is not a JSON object with a string `metadata.name`.
    #[track_caller]
    pub fn apply_json(&self, kind: ResourceKind, object: Value) -> u64 {
        self.shared.write(|store| store.upsert(kind, object)).unwrap_or_else(|e| panic!("fake apiserver: {e}"))
    }

    /// Creates or replaces a typed object with one value replaced, e.g. a Service whose
    /// `/spec/ports/0/port` (a JSON pointer) is the string `"eighty"`: lists and watches serve
    /// it as stored, so clients meet an object that does not decode as its kind. Returns its
    /// resourceVersion.
    ///
    /// # Panics
    ///
    /// As [`FakeApiServer::apply`], or if the parent of `pointer` is not in the object.
    #[track_caller]
    pub fn apply_with(&self, object: &impl Serialize, pointer: &str, value: Value) -> u64 {
        let mut json = to_json(object);
        replace(&mut json, pointer, value);
        self.apply_typed(json)
    }

    /// Deletes an object (`namespace` is ignored for cluster-scoped kinds); returns whether it existed.
    pub fn delete(&self, kind: ResourceKind, namespace: &str, name: &str) -> bool {
        self.shared.write(|store| store.delete(kind, namespace, name)).is_some()
    }

    /// One stored object, as watches and lists serve it.
    pub fn get(&self, kind: ResourceKind, namespace: &str, name: &str) -> Option<Value> {
        self.shared.store().get(kind, namespace, name).cloned()
    }

    /// Forgets the event history and bumps the resourceVersion.
    ///
    /// Watches started afterwards from any earlier resourceVersion get an ERROR event with a 410
    /// `Expired` Status, so a `watcher` relists. Open watches keep streaming unless they were behind.
    pub fn compact(&self) {
        self.shared.write(|store| store.compact());
    }

    /// Cuts the connection of every open watch (mid-stream, as when an apiserver goes away).
    pub fn drop_watches(&self) {
        self.shared.drop_watches();
    }

    /// While set, every request gets a 503 `ServiceUnavailable` Status; setting it also cuts open watches.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.set_unavailable(unavailable);
        if unavailable {
            self.shared.drop_watches();
        }
    }

    /// Every events.k8s.io/v1 Event created so far, as patched since, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.shared.events().clone()
    }

    /// Every request so far, as `METHOD /path?query`, oldest first.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests()
    }

    /// A kubeconfig (YAML) with one context pointing at [`FakeApiServer::url`] with the bearer token.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url:?}\n\
             users:\n- name: fake\n  user:\n    token: {token:?}\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
            url = self.url(),
            token = self.shared.token,
        )
    }

    /// Writes [`FakeApiServer::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A `kube::Config` for this server, loaded from [`FakeApiServer::kubeconfig_yaml`].
    ///
    /// Tests may adjust it before building a client: kube retries 503 answers up to 15 times with
    /// growing delays, so tests that want to see [`FakeApiServer::set_unavailable`] as watcher errors
    /// set `default_retry = false`.
    pub async fn config(&self) -> Result<kube::Config, kube::Error> {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())?;
        let options = kube::config::KubeConfigOptions::default();
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?)
    }

    /// A `kube::Client` for this server, built from [`FakeApiServer::config`] unchanged.
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        kube::Client::try_from(self.config().await?)
    }
}

#[track_caller]
fn to_json(object: &impl Serialize) -> Value {
    serde_json::to_value(object).unwrap_or_else(|e| panic!("fake apiserver: cannot serialize: {e}"))
}

/// Sets the value at JSON pointer `pointer` (its parent must exist; a key is added if absent).
#[track_caller]
fn replace(json: &mut Value, pointer: &str, value: Value) {
    let (parent, last) = pointer.rsplit_once('/').unwrap_or_else(|| panic!("fake apiserver: bad pointer {pointer:?}"));
    let last = last.replace("~1", "/").replace("~0", "~");
    match json.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
        }
        Some(Value::Array(items)) if last.parse::<usize>().is_ok_and(|i| i < items.len()) => {
            let index: usize = last.parse().unwrap_or_default();
            items[index] = value;
        }
        _ => panic!("fake apiserver: {pointer:?} is not in the object"),
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shared.drop_watches();
        if let Some(stop) = self.stop.take() {
            // Ignored: the server task may already be gone.
            let _ = stop.send(());
        }
    }
}
