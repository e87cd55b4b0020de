//! ServiceCIDR → [`ServiceCidrInfo`]: the ranges one ServiceCIDR object allocates cluster
//! IPs from.

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use super::fields::FieldParser;
use super::validation::NameRule;
use crate::error::{ConversionError, Invalid, ObjectKind};
use crate::names::{IpFamily, NamespacedName};

/// What the proxy uses of a ServiceCIDR: its name and its CIDRs (at most one per family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCidrInfo {
    /// The object's name (ServiceCIDRs are cluster-scoped).
    pub name: String,
    /// `spec.cidrs`, parsed, in the object's order.
    pub cidrs: Vec<IpNet>,
}

impl ServiceCidrInfo {
    /// Validates `object` as the apiserver does: a DNS-1123 subdomain name, CIDRs that
    /// parse, at most two of them and no two of one family.
    pub fn from_service_cidr(object: &ServiceCIDR) -> Result<Self, ConversionError> {
        let name = service_cidr_name(object);
        let p = FieldParser { kind: ObjectKind::ServiceCidr, object: &name };
        p.name("metadata.name", &name.name, NameRule::Dns1123Subdomain)?;
        let texts = object.spec.as_ref().and_then(|s| s.cidrs.as_deref()).unwrap_or_default();
        let mut cidrs: Vec<IpNet> = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            let field = format!("spec.cidrs[{i}]");
            let cidr = p.cidr(field.clone(), text)?;
            if cidrs.iter().any(|c| IpFamily::of(&c.addr()) == IpFamily::of(&cidr.addr())) {
                return Err(p.error(field, Invalid::Duplicate(text.clone())));
            }
            cidrs.push(cidr);
        }
        Ok(Self { name: name.name, cidrs })
    }
}

/// The name a ServiceCIDR is known by: cluster-scoped, so no namespace.
pub fn service_cidr_name(object: &ServiceCIDR) -> NamespacedName {
    NamespacedName::new("", object.metadata.name.as_deref().unwrap_or_default())
}

#[cfg(test)]
#[path = "service_cidr_tests.rs"]
mod tests;
