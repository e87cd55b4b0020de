//! `service_cidr(name, cidrs)`: networking.k8s.io/v1 ServiceCIDRs.

use k8s_openapi::api::networking::v1::{ServiceCIDR, ServiceCIDRSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// A ServiceCIDR `name` with `spec.cidrs` set to `cidrs` (at most one per family, as the
/// apiserver allows).
pub fn service_cidr(name: &str, cidrs: &[&str]) -> ServiceCIDR {
    ServiceCIDR {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        spec: Some(ServiceCIDRSpec { cidrs: Some(cidrs.iter().map(|c| (*c).to_owned()).collect()) }),
        status: None,
    }
}
