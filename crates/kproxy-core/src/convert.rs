//! Conversion of API objects (k8s-openapi types) into model values, with validation.
//!
//! Every function here is total: malformed input becomes a [`ConversionError`](crate::ConversionError) naming the
//! object and the field, never a panic.

mod endpoint_slice;
mod fields;
mod node;
mod service;
mod service_cidr;
mod validation;

pub use endpoint_slice::{EndpointInfo, EndpointSliceInfo, SlicePort};
pub use node::{NodeInfo, TAINT_TO_BE_DELETED, node_eligible};
pub(crate) use service::object_name;
pub use service::{ServiceInfo, SkipReason};
pub use service_cidr::{ServiceCidrInfo, service_cidr_name};
pub use validation::{
    MAX_LABEL_LENGTH, MAX_SUBDOMAIN_LENGTH, NameRule, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain,
    is_label_key, is_label_value,
};

/// Label that hands a Service to another proxy; kube-proxy ignores such Services.
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label set on EndpointSlices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Label that ties an EndpointSlice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Node label naming the node's zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// EndpointSlice annotation with the time of the change that caused the slice's update.
pub const ANNOTATION_LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
