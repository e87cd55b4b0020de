//! `ServiceCidrs`: the CIDRs of every ServiceCIDR object, as upstream's
//! `ServiceCIDRConfig` keeps them (one set over all objects).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::ServiceCIDR;

use crate::convert::{ServiceCidrInfo, service_cidr_name};
use crate::error::ConversionError;
use crate::names::NamespacedName;

/// The CIDRs of each ServiceCIDR object, by name.
#[derive(Debug, Default)]
pub(crate) struct ServiceCidrs {
    by_name: BTreeMap<String, Vec<IpNet>>,
}

impl ServiceCidrs {
    /// A ServiceCIDR was added or updated; whether the union changed. A malformed one
    /// keeps its previous CIDRs.
    pub(crate) fn update(&mut self, object: &ServiceCIDR) -> Result<bool, ConversionError> {
        let info = ServiceCidrInfo::from_service_cidr(object)?;
        let before = self.union();
        self.by_name.insert(info.name, info.cidrs);
        Ok(self.union() != before)
    }

    /// A ServiceCIDR was deleted; whether the union changed.
    pub(crate) fn delete(&mut self, name: &str) -> bool {
        let before = self.union();
        self.by_name.remove(name);
        self.union() != before
    }

    /// A relist: `objects` is the complete set, and the ones named in `kept` were listed but
    /// could not be read (they keep their previous CIDRs). Returns whether the union changed
    /// and the malformed objects.
    pub(crate) fn relisted(
        &mut self,
        objects: &[ServiceCIDR],
        kept: &[NamespacedName],
    ) -> (bool, Vec<ConversionError>) {
        let before = self.union();
        let listed: BTreeSet<String> =
            objects.iter().map(|o| service_cidr_name(o).name).chain(kept.iter().map(|k| k.name.clone())).collect();
        self.by_name.retain(|name, _| listed.contains(name));
        let errors = objects.iter().filter_map(|o| self.update(o).err()).collect();
        (self.union() != before, errors)
    }

    /// Every CIDR of every object, sorted, without duplicates.
    pub(crate) fn union(&self) -> Vec<IpNet> {
        let all: BTreeSet<IpNet> = self.by_name.values().flatten().copied().collect();
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use kproxy_testkit::service_cidr;

    use super::*;

    fn texts(cidrs: &ServiceCidrs) -> Vec<String> {
        cidrs.union().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_union_covers_every_object_and_changes_only_when_a_cidr_does() {
        let mut cidrs = ServiceCidrs::default();
        assert_eq!(cidrs.update(&service_cidr("kubernetes", &["10.96.0.0/12", "fd00::/112"])), Ok(true));
        assert_eq!(cidrs.update(&service_cidr("extra", &["10.96.0.0/12"])), Ok(false), "already covered");
        assert_eq!(cidrs.update(&service_cidr("more", &["172.30.0.0/16"])), Ok(true));
        assert_eq!(texts(&cidrs), ["10.96.0.0/12", "172.30.0.0/16", "fd00::/112"]);
        assert!(!cidrs.delete("extra"), "kubernetes still has 10.96.0.0/12");
        assert!(cidrs.delete("kubernetes"));
        assert_eq!(texts(&cidrs), ["172.30.0.0/16"]);
    }

    #[test]
    fn a_malformed_update_keeps_the_previous_cidrs() {
        let mut cidrs = ServiceCidrs::default();
        assert_eq!(cidrs.update(&service_cidr("kubernetes", &["10.96.0.0/12"])), Ok(true));
        assert!(cidrs.update(&service_cidr("kubernetes", &["not-a-cidr"])).is_err());
        assert_eq!(texts(&cidrs), ["10.96.0.0/12"]);
    }

    #[test]
    fn a_relist_drops_unlisted_objects_and_keeps_unreadable_ones() {
        let mut cidrs = ServiceCidrs::default();
        for (name, cidr) in [("a", "10.0.0.0/16"), ("b", "10.1.0.0/16"), ("c", "10.2.0.0/16")] {
            cidrs.update(&service_cidr(name, &[cidr])).expect("valid");
        }
        let listed = [service_cidr("a", &["10.0.0.0/16"]), service_cidr("d", &["bad"])];
        let (changed, errors) = cidrs.relisted(&listed, &[NamespacedName::new("", "c")]);
        assert!(changed, "b is gone");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].object, NamespacedName::new("", "d"));
        assert_eq!(texts(&cidrs), ["10.0.0.0/16", "10.2.0.0/16"]);
    }
}
