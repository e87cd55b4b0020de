//! A two-node cluster made of network namespaces, with real servers in its pods.
//!
//! [`Cluster::create`] builds the layout of [`crate::plan`]: a `lan` namespace with a bridge,
//! `node1` and `node2` (forwarding, routing each other's pod range), four pods with routed
//! veths into their node, and two external clients that route the service, load-balancer
//! and external-IP ranges via node1. Every namespace is named `kpc<pid>x<seq>-<host>`; the
//! caller's own namespace is never touched. Dropping the [`Cluster`] (also while unwinding
//! from a panic) stops the servers and deletes every namespace; a failed creation deletes
//! what it made.

mod namespaces;
mod servers;
mod wiring;

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::plan;
use crate::{Error, netns};
use namespaces::Namespaces;
use servers::Servers;

/// The lan namespace's host name.
pub const LAN: &str = "lan";

/// Every host of the cluster, each a namespace: lan, nodes, clients, then pods.
pub const HOSTS: [&str; 9] = [
    LAN,
    plan::NODE1,
    plan::NODE2,
    plan::CLIENT,
    plan::CLIENT2,
    plan::POD1A.name,
    plan::POD1B.name,
    plan::POD2A.name,
    plan::POD2B.name,
];

/// What a dataplane factory needs to know of the node it programs (node1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEnv {
    /// The node's network namespace as `ip netns` names it (`ip netns exec <netns> nft …`).
    pub netns: String,
    /// The namespace's file, for `setns(2)`.
    pub netns_path: PathBuf,
    /// The node's name, `node1`.
    pub node_name: String,
    /// The node's addresses (IPv4 first).
    pub node_ips: Vec<IpAddr>,
    /// The node's pod CIDRs.
    pub pod_cidrs: Vec<IpNet>,
    /// The cluster CIDRs: traffic from outside them is masqueraded (local-traffic detector).
    pub cluster_cidrs: Vec<IpNet>,
    /// The service CIDRs.
    pub service_cidrs: Vec<IpNet>,
    /// kube-proxy's `masqueradeAll`: masquerade all traffic to service IPs.
    pub masquerade_all: bool,
    /// `--nftables-localhost-nodeports`: serve TCP node ports on `127.0.0.1` and `::1`
    /// too (a mode that does so anyway may ignore it).
    pub localhost_nodeports: bool,
    /// The namespaces (as `ip netns` names them) whose processes run on this node: the
    /// node's own, then its pods'. For dataplanes that balance per socket and must tell
    /// this node's clients from the other hosts, which run in the same test process.
    pub local_netns: Vec<String>,
}

/// The daemon settings a case may switch (the dataplane, or the daemon, is restarted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeFlags {
    /// `masqueradeAll`.
    pub masquerade_all: bool,
    /// `--nftables-localhost-nodeports`.
    pub localhost_nodeports: bool,
}

/// The running cluster; see the module docs.
#[derive(Debug)]
pub struct Cluster {
    // Field order is drop order: servers close their sockets before namespaces go.
    servers: Option<Servers>,
    namespaces: Namespaces,
    sctp: bool,
}

impl Cluster {
    /// Builds the cluster (needs root). Takes well under a second; blocking.
    pub fn create() -> Result<Self, Error> {
        if !kproxy_testkit::prereq::is_root() {
            return Err(Error::new("creating network namespaces needs root"));
        }
        let namespaces = Namespaces::create(&HOSTS)?;
        wiring::wire(&namespaces)?;
        let sctp = crate::traffic::sctp_available();
        let servers = Servers::start(&namespaces, sctp)?;
        Ok(Self { servers: Some(servers), namespaces, sctp })
    }

    /// The prefix of every namespace of this cluster (`kpc<pid>x<seq>-`).
    pub fn prefix(&self) -> &str {
        self.namespaces.prefix()
    }

    /// The namespace of `host` (one of [`HOSTS`]).
    pub fn netns(&self, host: &str) -> Result<&str, Error> {
        self.namespaces.of(host)
    }

    /// Every namespace of this cluster.
    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|(_, n)| n.to_owned()).collect()
    }

    /// Whether pods serve SCTP on [`plan::PORT_SCTP`].
    pub fn sctp_supported(&self) -> bool {
        self.sctp
    }

    /// Runs `program args…` inside `host` (`ip netns exec`); returns its output.
    pub fn exec(&self, host: &str, program: &str, args: &[&str]) -> Result<String, Error> {
        netns::exec(self.netns(host)?, program, args, "")
    }

    /// Runs `f` on a thread inside `host`; sockets it makes stay in that namespace.
    pub fn run_in<T: Send>(&self, host: &str, f: impl FnOnce() -> T + Send) -> Result<T, Error> {
        netns::in_netns(self.netns(host)?, f)
    }

    /// node1 as a dataplane factory sees it.
    pub fn node_env(&self, flags: NodeFlags) -> Result<NodeEnv, Error> {
        let netns = self.netns(plan::NODE1)?.to_owned();
        let mut local_netns = vec![netns.clone()];
        for pod in plan::PODS.iter().filter(|p| p.node == plan::NODE1) {
            local_netns.push(self.netns(pod.name)?.to_owned());
        }
        Ok(NodeEnv {
            local_netns,
            netns_path: netns::netns_path(&netns),
            netns,
            node_name: plan::NODE1.to_owned(),
            node_ips: vec![plan::NODE1_IPV4.into(), plan::NODE1_IPV6.into()],
            pod_cidrs: vec![plan::NODE1_POD_CIDR_V4.into(), plan::NODE1_POD_CIDR_V6.into()],
            cluster_cidrs: plan::cluster_cidrs(),
            service_cidrs: plan::service_cidrs(),
            masquerade_all: flags.masquerade_all,
            localhost_nodeports: flags.localhost_nodeports,
        })
    }

    /// Stops the servers and deletes every namespace now (dropping does the same).
    pub fn destroy(mut self) {
        self.servers.take();
    }
}

/// Namespaces left in `ip netns` whose names start with `prefix` (empty after a drop).
pub fn leftover_namespaces(prefix: &str) -> Vec<String> {
    netns::list().into_iter().filter(|n| n.starts_with(prefix)).collect()
}
