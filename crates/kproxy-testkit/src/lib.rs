//! Test support for kproxy crates: builders for Services, EndpointSlices, Nodes and
//! ServiceCIDRs, and the fixed IP plan every test uses ([`ip_plan`]: unit and golden tests,
//! and the conformance cluster).
//! With the `apiserver` feature, [`fake_apiserver`] adds an in-process fake kube-apiserver.
//! [`prereq`] is the one check of what packet tests need from the machine (root, tools).
//! [`netns`] makes the throwaway network namespaces packet tests program.
//! [`golden`] holds the golden cases every dataplane renders and compares with its files.
//!
//! ```
//! use kproxy_testkit::{service, slice};
//! let svc = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).build();
//! let eps = slice("ns1", "svc1", "svc1-abc").tcp("p80", 8080).endpoint("10.180.0.1", |e| e.node("node1")).build();
//! assert_eq!(svc.metadata.name.as_deref(), Some("svc1"));
//! assert_eq!(eps.endpoints.unwrap().len(), 1);
//! ```

mod endpoint_slice;
#[cfg(feature = "apiserver")]
pub mod fake_apiserver;
pub mod golden;
pub mod ip_plan;
pub mod netns;
mod node;
pub mod prereq;
mod service;
mod service_cidr;

pub use endpoint_slice::{EndpointBuilder, SliceBuilder, slice};
#[cfg(feature = "apiserver")]
pub use fake_apiserver::{FakeApiServer, FakeApiServerOptions, ResourceKind};
pub use node::{NodeBuilder, node};
pub use service::{ServiceBuilder, service};
pub use service_cidr::service_cidr;
