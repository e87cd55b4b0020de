//! Sources of API objects: a Kubernetes apiserver (watchers) or a manifest directory.
//!
//! A source only emits [`SourceEvent`]s (kproxy-core's event types, re-exported here); it
//! never touches the model. Every relist (the initial list included) arrives as one
//! [`ObjectEvent::Reset`] carrying the complete set, so the state is replaced atomically,
//! never flushed first.
//!
//! An object the apiserver sends that cannot even be decoded (a field of the wrong type)
//! never fails a list or a watch: it arrives as a [`ConversionError`], like an object that
//! decodes but cannot be converted, and keeps its previous state.
//!
//! [`ConversionError`]: kproxy_core::ConversionError

mod backoff;
mod batch;
mod kube_source;
mod lenient;
mod manifest_source;

pub use kproxy_core::{ObjectEvent, SourceEvent};

pub use kube_source::{KubeSource, KubeSourceError};
pub use manifest_source::{ManifestSet, ManifestSource, read_manifests};

/// Label selector of the Services a proxy watches: not handed to another proxy.
pub const SERVICE_LABEL_SELECTOR: &str = "!service.kubernetes.io/service-proxy-name";
/// Label selector of the EndpointSlices a proxy watches: not of headless Services.
pub const ENDPOINT_SLICE_LABEL_SELECTOR: &str = "!service.kubernetes.io/headless";
