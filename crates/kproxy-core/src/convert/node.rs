//! Node → [`NodeInfo`]: this node's name, topology labels, addresses and pod CIDRs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::LABEL_TOPOLOGY_ZONE;
use super::fields::FieldParser;
use super::validation::NameRule;
use crate::error::{ConversionError, ObjectKind};
use crate::names::NamespacedName;

/// What the proxy uses of its own Node object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// The node's name (the proxy's hostname).
    pub name: String,
    /// The node's labels (the zone label drives topology).
    pub labels: BTreeMap<String, String>,
    /// `status.addresses`, parsed.
    pub addresses: Vec<IpAddr>,
    /// `spec.podCIDRs`, parsed.
    pub pod_cidrs: Vec<IpNet>,
    /// The node's primary IP of each family (upstream's `GetNodeHostIPs`): its first
    /// `InternalIP` of that family, else its first `ExternalIP`.
    pub primary_addresses: Vec<IpAddr>,
}

impl NodeInfo {
    /// A node known only by name (before its object has been seen).
    pub fn named(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    /// The `topology.kubernetes.io/zone` label, if set.
    pub fn zone(&self) -> Option<&str> {
        self.labels.get(LABEL_TOPOLOGY_ZONE).map(String::as_str)
    }

    /// Validates `node`.
    pub fn from_node(node: &Node) -> Result<Self, ConversionError> {
        let object = NamespacedName::new("", node.metadata.name.as_deref().unwrap_or_default());
        let p = FieldParser { kind: ObjectKind::Node, object: &object };
        p.name("metadata.name", &object.name, NameRule::Dns1123Subdomain)?;
        let labels = node.metadata.labels.clone().unwrap_or_default();
        check_labels(&p, &labels)?;
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_deref()).unwrap_or_default();
        let cidrs = node.spec.as_ref().and_then(|s| s.pod_cidrs.as_deref()).unwrap_or_default();
        let primary_addresses = primary_addresses(addresses);
        Ok(Self {
            primary_addresses,
            name: object.name.clone(),
            labels,
            addresses: addresses
                .iter()
                .enumerate()
                // Hostname and DNS entries are not IPs; only IP-typed addresses are parsed.
                .filter(|(_, a)| a.type_.ends_with("IP"))
                .map(|(i, a)| p.ip(format!("status.addresses[{i}].address"), &a.address))
                .collect::<Result<_, _>>()?,
            pod_cidrs: cidrs
                .iter()
                .enumerate()
                .map(|(i, c)| p.cidr(format!("spec.podCIDRs[{i}]"), c))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The first `InternalIP` of each family, else the first `ExternalIP` of it (addresses that
/// do not parse are left out here; the conversion reports them).
fn primary_addresses(addresses: &[k8s_openapi::api::core::v1::NodeAddress]) -> Vec<IpAddr> {
    let of_type = |kind: &str| -> Vec<IpAddr> {
        addresses.iter().filter(|a| a.type_ == kind).filter_map(|a| a.address.trim().parse().ok()).collect()
    };
    let (internal, external) = (of_type("InternalIP"), of_type("ExternalIP"));
    crate::names::IpFamily::ALL
        .into_iter()
        .filter_map(|family| {
            let first = |ips: &[IpAddr]| ips.iter().copied().find(|ip| crate::names::IpFamily::of(ip) == family);
            first(&internal).or_else(|| first(&external))
        })
        .collect()
}

/// The taint the cluster autoscaler puts on a node it is about to delete.
pub const TAINT_TO_BE_DELETED: &str = "ToBeDeletedByClusterAutoscaler";

/// Whether load balancers should keep sending traffic to `node` (upstream's
/// `NodeEligibleHandler`, KEP-3836): not when it is being deleted or the autoscaler has
/// tainted it for deletion. `/healthz` answers 503 for an ineligible node.
pub fn node_eligible(node: &Node) -> bool {
    let deleting = node.metadata.deletion_timestamp.is_some();
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    !deleting && !taints.iter().any(|t| t.key == TAINT_TO_BE_DELETED)
}

/// The apiserver's rules for labels (the zone label among them): keys are label keys,
/// values label values.
fn check_labels(p: &FieldParser<'_>, labels: &BTreeMap<String, String>) -> Result<(), ConversionError> {
    for (key, value) in labels {
        p.name("metadata.labels", key, NameRule::LabelKey)?;
        p.name(format!("metadata.labels[{key}]"), value, NameRule::LabelValue)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "node_tests.rs"]
mod tests;
