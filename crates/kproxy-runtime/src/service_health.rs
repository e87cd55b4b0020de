//! Health-check node ports: upstream kube-proxy's `ServiceHealthServer`
//! (`pkg/proxy/healthcheck/service_health.go`).
//!
//! A LoadBalancer Service with `externalTrafficPolicy: Local` has a `healthCheckNodePort`;
//! the cloud load balancer probes it on every node and only sends traffic to nodes that
//! answer 200. [`ServiceHealthServer::sync_services`] opens one HTTP listener per such
//! Service (on each configured address) and closes the listeners of Services that are gone
//! or whose port changed; [`ServiceHealthServer::sync_endpoints`] records how many local,
//! ready endpoints each Service has. Every listener answers any path and method with 200
//! when the Service has local endpoints and the proxy is healthy
//! ([`ProxyHealth::is_healthy`], node eligibility not included), 503 otherwise, with
//! upstream's headers (`Content-Type: application/json`, `X-Content-Type-Options: nosniff`,
//! `X-Load-Balancing-Endpoint-Weight: N`) and upstream's tab-indented JSON body.
//!
//! A port that cannot be bound is logged and not recorded, so the next sync tries again.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kproxy_core::NamespacedName;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::health::ProxyHealth;

#[cfg(test)]
mod tests;

/// The header a load balancer may use to weight this node by its local endpoints.
pub const ENDPOINT_WEIGHT_HEADER: &str = "x-load-balancing-endpoint-weight";

/// What one listener's handler needs.
#[derive(Debug, Clone)]
struct HandlerState {
    service: Arc<NamespacedName>,
    endpoints: Arc<AtomicUsize>,
    health: Arc<ProxyHealth>,
}

/// One serving listener.
#[derive(Debug)]
struct Server {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, lets open connections finish gracefully, and waits until the
    /// listening socket is closed (so the port can be bound again at once).
    async fn close(mut self) {
        self.signal();
        if let Some(task) = self.task.take() {
            task.abort();
            // A cancelled task has dropped its future, and with it the listener.
            let _ = task.await;
        }
    }

    fn signal(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal();
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The listeners of one Service's health-check node port.
#[derive(Debug)]
struct Instance {
    port: u16,
    endpoints: Arc<AtomicUsize>,
    servers: Vec<Server>,
}

impl Instance {
    async fn close(self) {
        for server in self.servers {
            server.close().await;
        }
    }
}

/// The health-check node port servers of this node.
#[derive(Debug)]
pub struct ServiceHealthServer {
    addresses: Vec<IpAddr>,
    health: Arc<ProxyHealth>,
    services: BTreeMap<NamespacedName, Instance>,
}

impl ServiceHealthServer {
    /// Listens on each of `addresses` (e.g. the node IPs matching `nodePortAddresses`); no
    /// address means all of them, `0.0.0.0`.
    pub fn new(addresses: impl IntoIterator<Item = IpAddr>, health: Arc<ProxyHealth>) -> Self {
        let mut addresses: Vec<IpAddr> = addresses.into_iter().collect();
        if addresses.is_empty() {
            addresses.push(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        }
        Self { addresses, health, services: BTreeMap::new() }
    }

    /// The addresses each health-check port listens on.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// Makes `services` (Service → health-check node port) the open set: listeners of
    /// Services that are gone or changed port are closed first, then new ones are opened.
    /// A port that fails to bind is logged and retried on the next call.
    pub async fn sync_services(&mut self, services: BTreeMap<NamespacedName, u16>) {
        let stale: Vec<NamespacedName> = self
            .services
            .iter()
            .filter(|(name, instance)| services.get(*name) != Some(&instance.port))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(instance) = self.services.remove(&name) {
                tracing::info!(service = %name, port = instance.port, "closing health check");
                instance.close().await;
            }
        }
        for (name, port) in services {
            if self.services.contains_key(&name) {
                continue;
            }
            self.open(name, port).await;
        }
    }

    /// Records the number of local, ready endpoints per Service; Services not listed have
    /// none. Counts for Services without a health-check port are dropped.
    pub fn sync_endpoints(&mut self, endpoints: BTreeMap<NamespacedName, usize>) {
        for (name, instance) in &self.services {
            let count = endpoints.get(name).copied().unwrap_or(0);
            instance.endpoints.store(count, Ordering::Relaxed);
        }
    }

    /// The open Services and their health-check node ports.
    pub fn services(&self) -> impl Iterator<Item = (&NamespacedName, u16)> {
        self.services.iter().map(|(name, instance)| (name, instance.port))
    }

    /// The addresses `service`'s health check listens on, if it is open (with the port
    /// actually bound, which differs from the requested one only for port 0).
    pub fn local_addrs(&self, service: &NamespacedName) -> Option<Vec<SocketAddr>> {
        self.services.get(service).map(|instance| instance.servers.iter().map(|s| s.local_addr).collect())
    }

    /// Closes every listener.
    pub async fn shutdown(&mut self) {
        for (_, instance) in std::mem::take(&mut self.services) {
            instance.close().await;
        }
    }

    async fn open(&mut self, name: NamespacedName, port: u16) {
        tracing::info!(service = %name, port, "opening health check");
        let endpoints = Arc::new(AtomicUsize::new(0));
        let state =
            HandlerState { service: Arc::new(name.clone()), endpoints: endpoints.clone(), health: self.health.clone() };
        match listen_all(&self.addresses, port, &state).await {
            Ok(servers) => {
                self.services.insert(name, Instance { port, endpoints, servers });
            }
            Err(error) => {
                tracing::error!(service = %name, port, %error, "failed to start health check; retrying on the next sync");
            }
        }
    }
}

/// Binds `port` on every address and serves it; on any failure closes what was opened.
async fn listen_all(addresses: &[IpAddr], port: u16, state: &HandlerState) -> io::Result<Vec<Server>> {
    let mut servers = Vec::with_capacity(addresses.len());
    for &ip in addresses {
        match TcpListener::bind(SocketAddr::new(ip, port)).await {
            Ok(listener) => servers.push(spawn_server(listener, state.clone())?),
            Err(error) => {
                for server in servers {
                    server.close().await;
                }
                return Err(error);
            }
        }
    }
    Ok(servers)
}

fn spawn_server(listener: TcpListener, state: HandlerState) -> io::Result<Server> {
    let local_addr = listener.local_addr()?;
    let (shutdown, stop) = oneshot::channel::<()>();
    let router = Router::new().fallback(handle).with_state(state);
    let task = tokio::spawn(async move {
        let serving = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stop.await;
        });
        if let Err(error) = serving.await {
            tracing::error!(%local_addr, %error, "health check server failed");
        }
    });
    Ok(Server { local_addr, shutdown: Some(shutdown), task: Some(task) })
}

async fn handle(State(state): State<HandlerState>) -> Response {
    let count = state.endpoints.load(Ordering::Relaxed);
    let proxy_healthy = state.health.is_healthy();
    let code = if count != 0 && proxy_healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (code, body(&state.service, count, proxy_healthy)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(ENDPOINT_WEIGHT_HEADER, HeaderValue::from(count));
    response
}

/// Upstream's body, byte for byte: its dedented, tab-indented template with the outer
/// newlines trimmed.
fn body(service: &NamespacedName, local_endpoints: usize, proxy_healthy: bool) -> String {
    format!(
        "{{\n\t\"service\": {{\n\t\t\"namespace\": {},\n\t\t\"name\": {}\n\t}},\n\t\"localEndpoints\": {},\n\t\"serviceProxyHealthy\": {}\n}}",
        go_quote(&service.namespace),
        go_quote(&service.name),
        local_endpoints,
        proxy_healthy,
    )
}

/// A quoted string as Go's `%q` writes it, for the characters Kubernetes names can hold.
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}
