use super::*;

use kproxy_testkit::service_cidr;

fn net(text: &str) -> IpNet {
    text.parse().expect("test CIDR")
}

#[test]
fn dual_stack_service_cidr() {
    let info = ServiceCidrInfo::from_service_cidr(&service_cidr("kubernetes", &["10.96.0.0/12", "fd00:10:96::/112"]))
        .expect("valid");
    assert_eq!(info.name, "kubernetes");
    assert_eq!(info.cidrs, vec![net("10.96.0.0/12"), net("fd00:10:96::/112")]);
}

#[test]
fn a_service_cidr_without_cidrs_allocates_nothing() {
    let mut object = service_cidr("empty", &[]);
    object.spec = None;
    assert_eq!(ServiceCidrInfo::from_service_cidr(&object).expect("valid").cidrs, Vec::<IpNet>::new());
}

#[test]
fn a_cidr_that_does_not_parse_is_an_error_naming_the_field() {
    let err = ServiceCidrInfo::from_service_cidr(&service_cidr("bad", &["10.96.0.0/12", "10.0.0.0/33"]))
        .expect_err("invalid CIDR");
    assert_eq!(err.kind, ObjectKind::ServiceCidr);
    assert_eq!(err.object, NamespacedName::new("", "bad"));
    assert_eq!(err.field, "spec.cidrs[1]");
    assert_eq!(err.reason, Invalid::Cidr("10.0.0.0/33".to_owned()));
    assert_eq!(err.to_string(), "ServiceCIDR /bad: field spec.cidrs[1]: \"10.0.0.0/33\" is not a CIDR");
}

#[test]
fn two_cidrs_of_one_family_are_refused() {
    let err = ServiceCidrInfo::from_service_cidr(&service_cidr("two", &["10.96.0.0/12", "10.112.0.0/12"]))
        .expect_err("two IPv4 CIDRs");
    assert_eq!(err.field, "spec.cidrs[1]");
    assert_eq!(err.reason, Invalid::Duplicate("10.112.0.0/12".to_owned()));
}

#[test]
fn the_name_must_be_a_dns_subdomain() {
    let err = ServiceCidrInfo::from_service_cidr(&service_cidr("Bad_Name", &["10.96.0.0/12"])).expect_err("bad name");
    assert_eq!(err.field, "metadata.name");
}
