//! kproxy's core: the pure model of a Kubernetes service proxy.
//!
//! API objects (k8s-openapi `Service`, `EndpointSlice`, `Node`) go into a [`ChangeTracker`];
//! a sync checks the pending changes out into a [`ProxyState`] and hands both to a
//! [`Dataplane`]. [`categorize_endpoints`] tells a dataplane which endpoints each service
//! port uses on this node. Nothing here does I/O or needs an async runtime.
//!
//! The nouns are upstream kube-proxy's (`pkg/proxy`): [`ServicePortName`], [`ServicePort`],
//! [`Endpoint`], [`ServicePortMap`], [`EndpointsMap`], [`ServiceChangeTracker`],
//! [`EndpointsChangeTracker`].

mod change_tracker;
mod claims;
pub mod convert;
mod dataplane;
mod endpoint;
mod endpoint_slice_cache;
mod endpoints_change_tracker;
mod endpoints_map;
mod error;
mod names;
mod proxy_loop;
mod proxy_state;
pub mod render;
mod service_change_tracker;
mod service_port;
mod service_port_map;
pub mod stale_flows;
mod topology;

pub use change_tracker::ChangeTracker;
pub use claims::{Claim, ClaimKind, Conflict};
pub use convert::NameRule;
pub use dataplane::{Dataplane, Retry, SyncError, SyncStats};
pub use endpoint::Endpoint;
pub use endpoint_slice_cache::{EndpointSliceCache, EndpointsChange, PortEndpoints, endpoints_by_port};
pub use endpoints_change_tracker::{EndpointsChangeTracker, EndpointsChanges};
pub use endpoints_map::{EndpointsMap, UpdateEndpointsMapResult};
pub use error::{ConversionError, Invalid, ObjectKind};
pub use names::{IpFamily, NamespacedName, Protocol, ServicePortName, UnknownProtocol};
pub use proxy_loop::{ProxyLoop, Quarantined, SyncReport};
pub use proxy_state::{Changes, FamilyChanges, FamilyState, ProxyState};
pub use service_change_tracker::{ServiceChange, ServiceChangeTracker, ServicePorts};
pub use service_port::{DEFAULT_STICKY_MAX_AGE_SECONDS, MAX_STICKY_MAX_AGE_SECONDS, ServicePort, SessionAffinity};
pub use service_port_map::ServicePortMap;
pub use topology::{CategorizedEndpoints, TopologyNode, categorize_endpoints};
