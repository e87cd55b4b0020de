//! kproxy's core: the pure model of a Kubernetes service proxy.
//!
//! API objects (k8s-openapi `Service`, `EndpointSlice`, `Node`, `ServiceCIDR`) arrive as [`SourceEvent`]s
//! and fold into a [`ProxyLoop`]; a sync checks the pending changes out into a
//! [`ProxyState`] and hands it, with the [`Changes`], to a [`Dataplane`].
//! [`categorize_endpoints`] tells a dataplane which endpoints each service port uses on this
//! node ([`LocalNode`]). Nothing here does I/O or needs an async runtime.
//!
//! What a dataplane author needs: the [`Dataplane`] trait with [`SyncStats`] and
//! [`SyncError`]; the model it programs ([`ProxyState`], [`FamilyState`], [`LocalNode`],
//! [`ServicePortMap`], [`ServicePort`], [`EndpointsMap`], [`Endpoint`], the names) and what
//! changed ([`Changes`]); [`categorize_endpoints`]. Tests build states from API objects with
//! a [`ChangeTracker`] (or drive a whole [`ProxyLoop`]). The crate's README shows a
//! downstream dataplane that runs the conformance suite.
//!
//! The nouns are upstream kube-proxy's (`pkg/proxy`): [`ServicePortName`], [`ServicePort`],
//! [`Endpoint`], [`ServicePortMap`], [`EndpointsMap`].

mod change_tracker;
mod claims;
pub mod convert;
mod dataplane;
mod endpoint;
mod endpoint_slice_cache;
mod endpoints_change_tracker;
mod endpoints_map;
mod error;
mod event;
pub mod explain;
mod interface_name;
mod local_node;
mod names;
mod nodeport_addresses;
mod packet_counters;
mod proxy_loop;
mod proxy_state;
pub mod render;
mod service_change_tracker;
mod service_cidrs;
mod service_port;
mod service_port_map;
pub mod stale_flows;
mod topology;

pub use change_tracker::ChangeTracker;
pub use claims::{Claim, ClaimKind, Conflict};
pub use convert::NameRule;
pub use dataplane::{
    Dataplane, MapUsage, MapUsages, RULE_TABLES, Retry, SyncError, SyncStats, TableRuleCounts, explain_with,
};
pub use endpoint::{Endpoint, HintNames};
pub use endpoints_map::EndpointsMap;
pub use error::{ConversionError, Invalid, ObjectKind};
pub use event::{ObjectEvent, SourceEvent};
pub use interface_name::InterfaceName;
pub use local_node::LocalNode;
pub use names::{IpFamily, NamespacedName, Protocol, ServicePortName, UnknownProtocol};
pub use nodeport_addresses::{NodePortAddresses, config_for_node};
pub use packet_counters::{PacketCounter, PacketCounters};
pub use proxy_loop::{HealthInputs, Malformed, ProxyLoop, Quarantined, SyncReport};
pub use proxy_state::{Changes, FamilyChanges, FamilyState, ProxyState};
pub use service_port::{DEFAULT_STICKY_MAX_AGE_SECONDS, MAX_STICKY_MAX_AGE_SECONDS, ServicePort, SessionAffinity};
pub use service_port_map::ServicePortMap;
pub use topology::{CategorizedEndpoints, TopologyNode, categorize_endpoints};
