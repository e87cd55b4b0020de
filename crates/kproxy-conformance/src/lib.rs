//! kproxy's conformance suite: real packets through any [`kproxy_core::Dataplane`].
//!
//! - [`Cluster`] builds a two-node cluster out of network namespaces (layout and addresses
//!   in [`plan`]) with TCP, UDP (and, where the kernel has it, SCTP) servers in every pod
//!   that answer `<pod-name> <peer-ip>:<peer-port>`.
//! - [`Harness`] runs the dataplane under test on node1, feeds it Services, EndpointSlices
//!   and node1's Node through the daemon's [`kproxy_core::ProxyLoop`], and sends traffic from any
//!   host ([`Harness::tcp_request`], [`Harness::spread`], [`eventually`]).
//! - [`OfflineNode`] is node1's model without a kernel, for tests against fakes.
//! - [`cases()`] is the table of kube-proxy behaviours; [`run_conformance`] runs it.
//!
//! # Plugging a dataplane in
//!
//! ```no_run
//! # async fn demo() {
//! use kproxy_conformance::{BoxError, NodeEnv, run_conformance};
//! use kproxy_core::Dataplane;
//!
//! # fn my_dataplane(_: &NodeEnv) -> Box<dyn Dataplane> { unimplemented!() }
//! fn build(env: &NodeEnv) -> Result<Box<dyn Dataplane>, BoxError> {
//!     // Called on a thread inside node1's namespace: commands, netlink sockets and
//!     // blocking tasks of the dataplane act there. `env.netns` is there for dataplanes that
//!     // prefer `ip netns exec` anyway; `env.masquerade_all` must be honoured.
//!     Ok(my_dataplane(env))
//! }
//!
//! let skips = [("sctp-clusterip", "this dataplane has no SCTP")];
//! let report = run_conformance(build, &skips, None).await;
//! report.assert_all_passed();
//! # }
//! ```
//!
//! # End to end
//!
//! With feature `e2e`, `run_conformance_e2e` runs the same cases through the `kproxy`
//! binary: a fake apiserver and the daemon run inside node1, every object the harness
//! applies or deletes goes to the apiserver, and [`Harness::sync`] waits until the daemon
//! has programmed it (see the `e2e` module).
//!
//! Needs root; every change (links, routes, sysctls, rules) happens in namespaces it made
//! and is removed with them.

mod cases;
#[cfg(feature = "e2e")]
mod e2e;
mod harness;
mod netns;
pub mod offline;
mod runner;
mod topology;
pub mod traffic;

use std::fmt;

pub use cases::{Case, CaseError, CaseFuture, CaseResult, cases};
#[cfg(feature = "e2e")]
pub use e2e::{DaemonArgs, run_conformance_e2e, run_conformance_e2e_with};
pub use harness::{
    BoxError, DEFAULT_REQUEST_TIMEOUT, DataplaneFactory, Harness, Proto, SPREAD_FAILED, SPREAD_REFUSED,
    SPREAD_TIMED_OUT, default_node, eventually, spread_key,
};
pub use kproxy_testkit::ip_plan as plan;
pub use netns::{NETNS_DIR, netns_path};
pub use offline::OfflineNode;
pub use runner::{CaseReport, Report, Verdict, run_cases, run_conformance};
pub use topology::{Cluster, HOSTS, LAN, NodeEnv, NodeFlags, leftover_namespaces};
pub use traffic::{Outcome, Reply};

/// A failure of the cluster or the harness (not of a case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
