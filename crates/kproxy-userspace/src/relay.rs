//! The relay: a few worker threads with a single-threaded runtime each (no thread per
//! connection), a listener task per planned listener on each worker (TCP: a socket each,
//! `SO_REUSEPORT`) or on one of them (UDP), and the connections they accept.
//!
//! Listener sockets are bound by the caller's thread and the workers are started by
//! [`Relay::new`]'s caller: all of them live in that thread's network namespace.

mod balancer;
mod connect;
mod drain;
mod pktinfo;
mod socket;
mod splice;
mod tcp;
mod udp;
mod worker;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kproxy_core::Protocol;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::config::RelayConfig;
use crate::render::plan::{ListenerKey, ListenerSpec};
pub use balancer::{Balancer, Targets};
use drain::Connections;
pub use socket::raise_nofile_limit;
use socket::{Bound, PortPicker};
use splice::PipePool;
use worker::Workers;

/// What every listener and connection of a relay shares.
pub(crate) struct Shared {
    config: RelayConfig,
    /// The receive buffer relayed TCP sockets get, if any.
    receive_buffer: Option<usize>,
    pipes: PipePool,
    connections: Arc<Connections>,
    epoch: Instant,
}

impl Shared {
    /// Milliseconds since the relay started: a cheap clock for UDP idle times.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A listener in service.
struct Running {
    port: u16,
    spec: ListenerSpec,
    targets: Arc<Targets>,
    /// Its task on each worker that has a socket of it.
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    fn abort(&self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// A listener that was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// Its key.
    pub key: ListenerKey,
    /// What it did.
    pub spec: ListenerSpec,
    /// The port it had.
    pub port: u16,
}

/// See the module docs.
pub struct Relay {
    workers: Workers,
    shared: Arc<Shared>,
    picker: PortPicker,
    listeners: BTreeMap<ListenerKey, Running>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("listeners", &self.listeners.len()).finish_non_exhaustive()
    }
}

impl Relay {
    /// Starts the relay's threads (in the calling thread's network namespace).
    pub fn new(config: RelayConfig) -> io::Result<Self> {
        let workers = Workers::start(config.threads())?;
        let shared = Shared {
            pipes: PipePool::new(config.pipe_size, config.max_idle_pipes),
            connections: Arc::default(),
            epoch: Instant::now(),
            receive_buffer: config.effective_receive_buffer(),
            config,
        };
        let picker = PortPicker::new(shared.config.port_range.clone());
        Ok(Self { workers, shared: Arc::new(shared), picker, listeners: BTreeMap::new() })
    }

    /// Serves every listener of `desired`: starts the missing ones, hands new endpoints
    /// to the others (their connections in progress stay where they are). Returns the port
    /// of each. Listeners not in `desired` keep running: see [`Relay::retire`].
    pub fn reconcile(
        &mut self,
        desired: &BTreeMap<ListenerKey, ListenerSpec>,
    ) -> io::Result<BTreeMap<ListenerKey, u16>> {
        self.running()?;
        for (key, spec) in desired {
            self.serve(key, spec)?;
        }
        Ok(self.ports())
    }

    /// Serves one listener: starts it if it is missing (or must listen elsewhere), else
    /// hands it `spec`'s endpoints (its connections in progress stay where they are).
    /// Returns its port.
    pub fn serve(&mut self, key: &ListenerKey, spec: &ListenerSpec) -> io::Result<u16> {
        self.running()?;
        match self.listeners.get_mut(key) {
            Some(running) if running.spec.protocol == spec.protocol && running.spec.address == spec.address => {
                if running.spec != *spec {
                    running.targets.lock().update(spec, Instant::now());
                    running.spec = spec.clone();
                }
                Ok(running.port)
            }
            _ => {
                if let Some(old) = self.listeners.remove(key) {
                    // Its address may be the one the new listener binds.
                    old.abort();
                }
                let running = self.start(key, spec)?;
                let port = running.port;
                self.listeners.insert(key.clone(), running);
                Ok(port)
            }
        }
    }

    fn running(&self) -> io::Result<()> {
        if self.workers.stopped() {
            return Err(io::Error::other("the relay was shut down"));
        }
        Ok(())
    }

    fn start(&mut self, key: &ListenerKey, spec: &ListenerSpec) -> io::Result<Running> {
        let copies = self.workers.len();
        let (bound, port) = match spec.address {
            Some(address) => socket::bind_at(spec.protocol, address, copies)?,
            None => {
                let ip = self.shared.config.bind_ip(key.family == kproxy_core::IpFamily::V6);
                socket::bind_listener(spec.protocol, ip, &mut self.picker, copies)?
            }
        };
        let targets = Arc::new(Targets::new(Balancer::new(spec)));
        let tasks = match bound {
            Bound::Tcp(listeners) => {
                // Each copy is registered with its worker's own reactor.
                let registered = listeners
                    .into_iter()
                    .zip(self.workers.handles())
                    .map(|(listener, worker)| {
                        let _context = worker.enter();
                        Ok((tokio::net::TcpListener::from_std(listener)?, worker))
                    })
                    .collect::<io::Result<Vec<_>>>()?;
                let serve = |(listener, worker): (_, &Handle)| {
                    worker.spawn(tcp::serve(listener, targets.clone(), self.shared.clone()))
                };
                registered.into_iter().map(serve).collect()
            }
            Bound::Udp(socket) => {
                let worker = self.workers.next().ok_or_else(|| io::Error::other("the relay was shut down"))?;
                let socket = {
                    let _context = worker.enter();
                    tokio::net::UdpSocket::from_std(socket)?
                };
                vec![worker.spawn(udp::serve(socket, targets.clone(), self.shared.clone()))]
            }
        };
        tracing::debug!(service = %key.name, role = key.role.as_str(), port, "userspace relay: listening");
        Ok(Running { port, spec: spec.clone(), targets, tasks })
    }

    /// Stops the listeners that are not in `desired` (their TCP connections go on to
    /// their end; UDP sessions end with their listener) and returns them.
    pub fn retire(&mut self, desired: &BTreeMap<ListenerKey, ListenerSpec>) -> Vec<Retired> {
        let gone: Vec<ListenerKey> = self.listeners.keys().filter(|k| !desired.contains_key(*k)).cloned().collect();
        gone.into_iter().filter_map(|key| self.stop(key)).collect()
    }

    /// Stops every listener.
    pub fn stop_all(&mut self) -> Vec<Retired> {
        let all: Vec<ListenerKey> = self.listeners.keys().cloned().collect();
        all.into_iter().filter_map(|key| self.stop(key)).collect()
    }

    fn stop(&mut self, key: ListenerKey) -> Option<Retired> {
        let running = self.listeners.remove(&key)?;
        running.abort();
        tracing::debug!(service = %key.name, role = key.role.as_str(), "userspace relay: listener stopped");
        Some(Retired { key, spec: running.spec, port: running.port })
    }

    /// The port of every listener.
    pub fn ports(&self) -> BTreeMap<ListenerKey, u16> {
        self.listeners.iter().map(|(k, r)| (k.clone(), r.port)).collect()
    }

    /// TCP connections in progress.
    pub fn active_connections(&self) -> usize {
        self.shared.connections.active()
    }

    /// Graceful shutdown: stops accepting, waits up to `drain` for the connections in
    /// progress to finish, then cuts the rest and stops the threads. Returns how many
    /// connections were cut.
    pub async fn shutdown(&mut self, drain: Duration) -> usize {
        self.stop_all();
        let drained = self.shared.connections.drained(drain).await;
        let cut = if drained { 0 } else { self.active_connections() };
        self.workers.stop();
        cut
    }

    /// Whether `protocol` can be relayed.
    pub fn supports(protocol: Protocol) -> bool {
        matches!(protocol, Protocol::Tcp | Protocol::Udp)
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
