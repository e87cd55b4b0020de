//! Source events: what a source of API objects (an apiserver's watches, a manifest
//! directory, a test) tells a [`ProxyLoop`](crate::ProxyLoop).
//!
//! A source only emits events; it never touches the model. Every relist (the initial list
//! included) arrives either as one [`ObjectEvent::Reset`] carrying the complete set, or in
//! pieces ([`ObjectEvent::ListStart`], [`ObjectEvent::Listed`]…, [`ObjectEvent::ListEnd`])
//! so that a large list is never held whole; either way the state is never flushed first,
//! and objects the relist did not list are deleted only at its end. An object a source cannot even decode (a
//! field of the wrong type) arrives as a [`ConversionError`], like an object that decodes
//! but cannot be converted, and keeps its previous state.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use crate::error::{ConversionError, ObjectKind};

/// One change of one kind of object.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectEvent<K> {
    /// An object was added or updated.
    Apply(K),
    /// An object was deleted.
    Delete(K),
    /// The complete set of objects after a (re)list.
    Reset {
        /// Every object listed; one that could not be decoded in the last state the source
        /// decoded of it (so it keeps its previous state), or left out if it never decoded.
        objects: Vec<K>,
        /// Why each listed object that could not be decoded did not decode.
        undecodable: Vec<ConversionError>,
    },
    /// An object was added or updated but could not be decoded: it keeps its previous state.
    Undecodable(ConversionError),
    /// A relist in pieces begins (a relist that started before and did not end is void).
    ListStart,
    /// Objects of the relist in progress, in the same form as [`Reset`](Self::Reset)'s.
    Listed {
        /// Objects listed.
        objects: Vec<K>,
        /// Why each listed object that could not be decoded did not decode.
        undecodable: Vec<ConversionError>,
    },
    /// The relist in progress is complete: what it did not list is gone.
    ListEnd,
}

impl<K> ObjectEvent<K> {
    /// A relist in which every object could be decoded.
    pub fn reset(objects: Vec<K>) -> Self {
        Self::Reset { objects, undecodable: Vec::new() }
    }
}

/// An event of any kind a proxy watches.
#[expect(clippy::large_enum_variant, reason = "events move through a channel once; boxing buys nothing")]
#[derive(Debug, Clone, PartialEq)]
pub enum SourceEvent {
    /// A Service event.
    Service(ObjectEvent<Service>),
    /// An EndpointSlice event.
    EndpointSlice(ObjectEvent<EndpointSlice>),
    /// An event of this node's Node object.
    Node(ObjectEvent<Node>),
    /// A ServiceCIDR event: the ranges cluster IPs are allocated from.
    ServiceCidr(ObjectEvent<ServiceCIDR>),
}

impl SourceEvent {
    /// The kind of object the event is about.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Self::Service(_) => ObjectKind::Service,
            Self::EndpointSlice(_) => ObjectKind::EndpointSlice,
            Self::Node(_) => ObjectKind::Node,
            Self::ServiceCidr(_) => ObjectKind::ServiceCidr,
        }
    }
}
