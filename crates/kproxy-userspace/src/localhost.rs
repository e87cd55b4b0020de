//! Localhost node ports: every TCP node port also served on `127.0.0.1` and `::1`, by
//! listeners of a [`Relay`] bound there at the node port (upstream's KEP-6032, for the
//! nftables mode, whose rules cannot reach loopback destinations).
//!
//! Endpoint choice has one owner: the userspace [`plan`], which gives each node port the
//! listener node-local clients of it use (the cluster-wide endpoints, as upstream
//! short-circuits traffic from the node itself: a connection to `127.0.0.1` always comes
//! from the node). [`localhost_listeners`] only moves those listeners to loopback.

mod composite;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use kproxy_core::{IpFamily, Protocol, ProxyState};

use crate::config::{RelayConfig, UserspaceConfig};
use crate::relay::Relay;
use crate::render::plan::{ListenerKey, ListenerSpec, Plan, plan};
pub use composite::WithLocalhostNodePorts;

/// The loopback address of `family`.
pub fn loopback(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => Ipv4Addr::LOCALHOST.into(),
        IpFamily::V6 => Ipv6Addr::LOCALHOST.into(),
    }
}

/// The listeners that serve `plan`'s TCP node ports on loopback: each node port's
/// listener for node-local clients, bound at the family's loopback address and the node
/// port. Node ports without endpoints get none (a connection is refused, as upstream
/// rejects them); UDP and SCTP get none (upstream's proxy is TCP only).
pub fn localhost_listeners(plan: &Plan) -> BTreeMap<ListenerKey, ListenerSpec> {
    let tcp = plan.node_ports.iter().filter(|((_, protocol, _), _)| *protocol == Protocol::Tcp);
    tcp.filter_map(|((family, _, node_port), key)| {
        let spec = plan.listeners.get(key)?;
        let address = Some(SocketAddr::new(loopback(*family), *node_port));
        Some((key.clone(), ListenerSpec { address, ..spec.clone() }))
    })
    .collect()
}

/// Serves the localhost node ports of each synced state. See the module docs.
pub struct LocalhostNodePorts {
    relay: Relay,
    /// What the planner needs (only its listeners are used: no redirect table).
    planner: UserspaceConfig,
}

impl std::fmt::Debug for LocalhostNodePorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalhostNodePorts").field("relay", &self.relay).finish_non_exhaustive()
    }
}

impl LocalhostNodePorts {
    /// Starts the relay's threads (one by default): its listeners live in the calling
    /// thread's network namespace.
    pub fn new(relay: RelayConfig) -> std::io::Result<Self> {
        let planner = UserspaceConfig { relay: relay.clone(), raise_nofile_limit: false, ..UserspaceConfig::default() };
        Ok(Self { relay: Relay::new(relay)?, planner })
    }

    /// The relay configuration [`LocalhostNodePorts::new`] is usually given: one worker
    /// thread (localhost node ports carry little traffic).
    pub fn default_relay() -> RelayConfig {
        RelayConfig { worker_threads: 1, ..RelayConfig::default() }
    }

    /// Opens the listeners `state` needs and closes the others (their connections go on
    /// to their end). A node port that cannot be bound (another process holds it on
    /// loopback) is logged and tried again at the next sync; the others are served.
    /// Returns the number of listeners serving.
    pub fn sync(&mut self, state: &ProxyState) -> usize {
        let desired = localhost_listeners(&plan(&self.planner, state));
        // Closed first: a node port that moved to another Service is bound again below.
        self.relay.retire(&desired);
        for (key, spec) in &desired {
            if let Err(error) = self.relay.serve(key, spec) {
                let address = spec.address.map(|a| a.to_string()).unwrap_or_default();
                tracing::warn!(service = %key.name, %address, %error, "localhost node port: cannot listen");
            }
        }
        self.relay.ports().len()
    }

    /// The address of every listener serving.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let ports = self.relay.ports();
        ports.iter().map(|(key, port)| SocketAddr::new(loopback(key.family), *port)).collect()
    }

    /// Closes every listener.
    pub fn stop(&mut self) {
        self.relay.stop_all();
    }

    /// Stops accepting, waits up to `drain` for connections in progress; returns how
    /// many were cut.
    pub async fn shutdown(&mut self, drain: Duration) -> usize {
        self.relay.shutdown(drain).await
    }

    /// The listeners `state` needs, as comment lines for `--render`.
    pub fn render(&self, state: &ProxyState) -> String {
        let mut out = String::from("# localhost node ports (userspace relay)\n");
        for (key, spec) in localhost_listeners(&plan(&self.planner, state)) {
            let endpoints: Vec<String> = spec.endpoints.iter().map(ToString::to_string).collect();
            let address = spec.address.map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(out, "#   {} {address} -> {}", key.name, endpoints.join(", "));
        }
        out
    }
}

#[cfg(test)]
#[path = "localhost_tests.rs"]
mod tests;
