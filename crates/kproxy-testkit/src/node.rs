//! `node(name)`: a builder for core/v1 Nodes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Starts a Node without labels, addresses or pod CIDRs.
pub fn node(name: &str) -> NodeBuilder {
    NodeBuilder {
        node: Node {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus::default()),
        },
    }
}

/// Builds a Node step by step; see [`node`].
#[derive(Debug, Clone)]
#[must_use]
pub struct NodeBuilder {
    node: Node,
}

impl NodeBuilder {
    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.node.metadata.labels.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets the `topology.kubernetes.io/zone` label.
    pub fn zone(self, zone: &str) -> Self {
        self.label("topology.kubernetes.io/zone", zone)
    }

    /// Adds an `InternalIP` address.
    pub fn internal_ip(mut self, ip: &str) -> Self {
        let status = self.node.status.get_or_insert_with(NodeStatus::default);
        status
            .addresses
            .get_or_insert_with(Vec::new)
            .push(NodeAddress { address: ip.to_owned(), type_: "InternalIP".to_owned() });
        self
    }

    /// Adds a pod CIDR (the first also becomes `spec.podCIDR`).
    pub fn pod_cidr(mut self, cidr: &str) -> Self {
        let spec = self.node.spec.get_or_insert_with(NodeSpec::default);
        spec.pod_cidr.get_or_insert_with(|| cidr.to_owned());
        spec.pod_cidrs.get_or_insert_with(Vec::new).push(cidr.to_owned());
        self
    }

    /// The Node.
    pub fn build(self) -> Node {
        self.node
    }
}
