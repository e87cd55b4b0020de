//! The resource kinds the fake apiserver serves.

use std::fmt;

/// A resource kind the fake apiserver stores and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    /// core/v1 `Service` (namespaced).
    Service,
    /// discovery.k8s.io/v1 `EndpointSlice` (namespaced).
    EndpointSlice,
    /// core/v1 `Node` (cluster-scoped).
    Node,
    /// networking.k8s.io/v1 `ServiceCIDR` (cluster-scoped).
    ServiceCidr,
}

impl ResourceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ResourceKind; 4] =
        [ResourceKind::Service, ResourceKind::EndpointSlice, ResourceKind::Node, ResourceKind::ServiceCidr];

    /// The `kind` field of an object of this kind, e.g. `Service`.
    pub fn kind(self) -> &'static str {
        match self {
            ResourceKind::Service => "Service",
            ResourceKind::EndpointSlice => "EndpointSlice",
            ResourceKind::Node => "Node",
            ResourceKind::ServiceCidr => "ServiceCIDR",
        }
    }

    /// The `kind` field of a list of this kind, e.g. `ServiceList`.
    pub fn list_kind(self) -> &'static str {
        match self {
            ResourceKind::Service => "ServiceList",
            ResourceKind::EndpointSlice => "EndpointSliceList",
            ResourceKind::Node => "NodeList",
            ResourceKind::ServiceCidr => "ServiceCIDRList",
        }
    }

    /// The `apiVersion` field, e.g. `v1` or `discovery.k8s.io/v1`.
    pub fn api_version(self) -> &'static str {
        match self {
            ResourceKind::Service | ResourceKind::Node => "v1",
            ResourceKind::EndpointSlice => "discovery.k8s.io/v1",
            ResourceKind::ServiceCidr => "networking.k8s.io/v1",
        }
    }

    /// The plural resource name used in URLs, e.g. `services`.
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Service => "services",
            ResourceKind::EndpointSlice => "endpointslices",
            ResourceKind::Node => "nodes",
            ResourceKind::ServiceCidr => "servicecidrs",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, ResourceKind::Node | ResourceKind::ServiceCidr)
    }

    /// The URL prefix of this kind's group/version, e.g. `/api/v1`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            ResourceKind::Service | ResourceKind::Node => "/api/v1",
            ResourceKind::EndpointSlice => "/apis/discovery.k8s.io/v1",
            ResourceKind::ServiceCidr => "/apis/networking.k8s.io/v1",
        }
    }

    /// The kind with this `apiVersion` and `kind`, if the fake apiserver serves it.
    pub fn from_type_meta(api_version: &str, kind: &str) -> Option<ResourceKind> {
        Self::ALL.into_iter().find(|k| k.api_version() == api_version && k.kind() == kind)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::ResourceKind;

    #[test]
    fn type_meta_round_trips() {
        for kind in ResourceKind::ALL {
            assert_eq!(ResourceKind::from_type_meta(kind.api_version(), kind.kind()), Some(kind));
        }
        assert_eq!(ResourceKind::from_type_meta("v1", "Pod"), None);
        assert_eq!(ResourceKind::from_type_meta("v1", "EndpointSlice"), None);
    }
}
