//! The golden cases every dataplane renders: representative Services and EndpointSlices as
//! seen by this node ([`node`]: `node1`, zone `zone-a`, 192.168.0.2), one function per
//! case, and a dataplane's golden files ([`GoldenFiles`]): the comparison of a rendering
//! with its file ([`check`]), files no case writes, the files a kernel-load test loads.
//!
//! A dataplane's `tests/golden.rs` turns each case's [`Objects`] into a state, renders it
//! and compares the text with `tests/golden/<case>.<ext>` ([`GoldenFiles::check`]);
//! [`golden_tests!`] writes one test per case. Where dataplanes show a case with different
//! objects, the case is made of smaller pieces (one Service with its slices) the dataplane
//! combines with [`Objects::and`].
//!
//! ```
//! use kproxy_testkit::golden;
//! let case = golden::dual().and(golden::sticky6());
//! assert_eq!(case.services.len(), 2);
//! assert_eq!(case.slices.len(), 3);
//! ```
//!
//! [`golden_tests!`]: crate::golden_tests

mod files;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use files::{GoldenFiles, check, stale_files, unified_diff};

use crate::ip_plan::{EXTERNAL_IP, LB_IP, NODE_IP, NODE_NAME, OTHER_NODE_NAME};
use crate::{EndpointBuilder, node as node_builder, service, slice};

/// This node's zone.
pub const ZONE: &str = "zone-a";
/// Another zone.
pub const OTHER_ZONE: &str = "zone-b";
/// A third node, for endpoints that are neither here nor on node2.
pub const NODE3: &str = "node3";

/// This node: `node1` in zone `zone-a`, with address 192.168.0.2 and pod CIDR 10.0.1.0/24.
pub fn node() -> Node {
    node_builder(NODE_NAME).zone(ZONE).internal_ip(NODE_IP).pod_cidr("10.0.1.0/24").build()
}

/// The cluster's ServiceCIDR `kubernetes`: [`SERVICE_CIDR`](crate::ip_plan::SERVICE_CIDR)
/// and its IPv6 counterpart, the ranges every golden cluster IP is allocated from.
pub fn service_cidr() -> k8s_openapi::api::networking::v1::ServiceCIDR {
    let v6 = crate::ip_plan::SERVICE_CIDR_V6.to_string();
    crate::service_cidr("kubernetes", &[crate::ip_plan::SERVICE_CIDR, &v6])
}

/// The objects of a golden case (this node is [`node`]).
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// The Services.
    pub services: Vec<Service>,
    /// Their EndpointSlices.
    pub slices: Vec<EndpointSlice>,
}

impl Objects {
    /// These objects and `other`'s.
    #[must_use]
    pub fn and(mut self, other: Objects) -> Self {
        self.services.extend(other.services);
        self.slices.extend(other.slices);
        self
    }
}

fn objects(services: impl IntoIterator<Item = Service>, slices: impl IntoIterator<Item = EndpointSlice>) -> Objects {
    Objects { services: services.into_iter().collect(), slices: slices.into_iter().collect() }
}

fn on(node: &'static str) -> impl FnOnce(EndpointBuilder) -> EndpointBuilder {
    move |e| e.node(node)
}

/// ClusterIP: `kube-system/dns` (UDP and TCP on port 53, 2 endpoints) and `ns1/svc1` (p80
/// and p443, 3 endpoints on three nodes).
pub fn clusterip() -> Objects {
    let dns = service("kube-system", "dns").cluster_ip("172.30.0.10").udp("dns", 53).tcp("dns-tcp", 53).build();
    let dns_eps = slice("kube-system", "dns", "dns-1")
        .udp("dns", 53)
        .tcp("dns-tcp", 53)
        .endpoint("10.180.0.1", on(NODE_NAME))
        .endpoint("10.180.1.1", on(OTHER_NODE_NAME))
        .build();
    let web = service("ns1", "svc1").cluster_ip("172.30.0.41").tcp("p80", 80).tcp("p443", 443).build();
    let web_eps = slice("ns1", "svc1", "svc1-a")
        .tcp("p80", 8080)
        .tcp("p443", 8443)
        .endpoint("10.180.0.2", on(NODE_NAME))
        .endpoint("10.180.1.2", on(OTHER_NODE_NAME))
        .endpoint("10.180.2.2", on(NODE3))
        .build();
    objects([dns, web], [dns_eps, web_eps])
}

/// NodePort `ns2/np`: TCP 30080 and UDP 30053, externalTrafficPolicy Cluster.
pub fn nodeport() -> Objects {
    let svc = service("ns2", "np")
        .cluster_ip("172.30.0.42")
        .node_port("p80", 80, 30080)
        .port("dns", 53, "UDP", Some(30053))
        .build();
    let eps = slice("ns2", "np", "np-1")
        .tcp("p80", 8080)
        .udp("dns", 5353)
        .endpoint("10.180.0.3", on(NODE_NAME))
        .endpoint("10.180.1.3", on(OTHER_NODE_NAME))
        .build();
    objects([svc], [eps])
}

/// LoadBalancer `ns3/lb` with `loadBalancerSourceRanges` `ranges`; its second ingress IP,
/// 5.6.7.8, has ipMode Proxy.
pub fn loadbalancer_source_ranges(ranges: &[&str]) -> Objects {
    let svc = service("ns3", "lb")
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.43")
        .port("p80", 80, "TCP", Some(30081))
        .lb_ingress(LB_IP, None)
        .lb_ingress("5.6.7.8", Some("Proxy"))
        .source_ranges(ranges)
        .build();
    let eps = slice("ns3", "lb", "lb-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.4", on(NODE_NAME))
        .endpoint("10.180.1.4", on(OTHER_NODE_NAME))
        .build();
    objects([svc], [eps])
}

/// `ns4/ext` with three externalIPs, one of them IPv6.
pub fn external_ips() -> Objects {
    let svc = service("ns4", "ext")
        .cluster_ip("172.30.0.44")
        .tcp("p80", 80)
        .external_ips(&[EXTERNAL_IP, "192.168.99.12", "fd00:192:168:99::11"])
        .build();
    let eps = slice("ns4", "ext", "ext-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.5", on(NODE_NAME))
        .endpoint("10.180.1.5", on(OTHER_NODE_NAME))
        .build();
    objects([svc], [eps])
}

/// ClientIP affinity: NodePort `ns5/sticky` (300 s) and `ns5/sticky-default` (the default
/// timeout).
pub fn session_affinity() -> Objects {
    let sticky = service("ns5", "sticky")
        .type_("NodePort")
        .cluster_ip("172.30.0.45")
        .port("p80", 80, "TCP", Some(30082))
        .client_ip_affinity(Some(300))
        .build();
    let sticky_eps = slice("ns5", "sticky", "sticky-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.6", on(NODE_NAME))
        .endpoint("10.180.1.6", on(OTHER_NODE_NAME))
        .build();
    let default =
        service("ns5", "sticky-default").cluster_ip("172.30.0.46").udp("dns", 53).client_ip_affinity(None).build();
    let default_eps =
        slice("ns5", "sticky-default", "sd-1").udp("dns", 5353).endpoint("10.180.1.7", on(OTHER_NODE_NAME)).build();
    objects([sticky, default], [sticky_eps, default_eps])
}

/// externalTrafficPolicy Local: `ns6/local-lb` has 2 local endpoints of 3, `ns6/remote-lb`
/// none here.
pub fn etp_local() -> Objects {
    let local = service("ns6", "local-lb")
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.47")
        .port("p80", 80, "TCP", Some(30083))
        .lb_ingress("1.2.3.5", None)
        .external_traffic_policy("Local")
        .health_check_node_port(32000)
        .build();
    let local_eps = slice("ns6", "local-lb", "local-lb-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.8", on(NODE_NAME))
        .endpoint("10.180.0.9", on(NODE_NAME))
        .endpoint("10.180.1.8", on(OTHER_NODE_NAME))
        .build();
    let remote = service("ns6", "remote-lb")
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.48")
        .port("p80", 80, "TCP", Some(30084))
        .lb_ingress("1.2.3.6", None)
        .external_traffic_policy("Local")
        .health_check_node_port(32001)
        .build();
    let remote_eps = slice("ns6", "remote-lb", "remote-lb-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.9", on(OTHER_NODE_NAME))
        .endpoint("10.180.2.9", on(NODE3))
        .build();
    objects([local, remote], [local_eps, remote_eps])
}

/// internalTrafficPolicy Local: `ns7/itp` has a local endpoint, `ns7/itp-none` none here.
pub fn itp_local() -> Objects {
    let local = service("ns7", "itp").cluster_ip("172.30.0.49").tcp("p80", 80).internal_traffic_policy("Local").build();
    let local_eps = slice("ns7", "itp", "itp-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.10", on(NODE_NAME))
        .endpoint("10.180.1.10", on(OTHER_NODE_NAME))
        .build();
    let none =
        service("ns7", "itp-none").cluster_ip("172.30.0.50").tcp("p80", 80).internal_traffic_policy("Local").build();
    let none_eps =
        slice("ns7", "itp-none", "itp-none-1").tcp("p80", 8080).endpoint("10.180.1.11", on(OTHER_NODE_NAME)).build();
    objects([local, none], [local_eps, none_eps])
}

/// NodePort `ns8/empty`: no EndpointSlice at all.
pub fn empty() -> Objects {
    objects([service("ns8", "empty").cluster_ip("172.30.0.51").node_port("p80", 80, 30085).build()], [])
}

/// `ns8/unready` (with `external_ips`): its two endpoints are neither ready nor serving.
pub fn unready(external_ips: &[&str]) -> Objects {
    let mut unready = service("ns8", "unready").cluster_ip("172.30.0.52").tcp("p80", 80);
    if !external_ips.is_empty() {
        unready = unready.external_ips(external_ips);
    }
    let unready_eps = slice("ns8", "unready", "unready-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.12", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, false, false))
        .endpoint("10.180.1.13", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, false, true))
        .build();
    objects([unready.build()], [unready_eps])
}

/// `ns8/itp-remote`: internalTrafficPolicy Local, its only endpoint on node2.
pub fn itp_remote() -> Objects {
    let itp =
        service("ns8", "itp-remote").cluster_ip("172.30.0.53").tcp("p80", 80).internal_traffic_policy("Local").build();
    let itp_eps = slice("ns8", "itp-remote", "itp-remote-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.14", on(OTHER_NODE_NAME))
        .build();
    objects([itp], [itp_eps])
}

/// NodePort `ns8/etp-remote`: externalTrafficPolicy Local, its only endpoint on node2.
pub fn etp_remote() -> Objects {
    let etp = service("ns8", "etp-remote")
        .cluster_ip("172.30.0.54")
        .node_port("p80", 80, 30086)
        .external_traffic_policy("Local")
        .build();
    let etp_eps = slice("ns8", "etp-remote", "etp-remote-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.15", on(OTHER_NODE_NAME))
        .build();
    objects([etp], [etp_eps])
}

/// Topology hints: `ns9/zonal` (zone hints), `ns9/nodal` (node hints), `ns9/partial` (one
/// endpoint without hints).
pub fn topology_hints() -> Objects {
    let zonal = service("ns9", "zonal").cluster_ip("172.30.0.55").tcp("p80", 80).build();
    let zonal_eps = slice("ns9", "zonal", "zonal-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.16", |e| e.node(NODE_NAME).zone(ZONE).zone_hints(&[ZONE]))
        .endpoint("10.180.1.16", |e| e.node(OTHER_NODE_NAME).zone(ZONE).zone_hints(&[ZONE]))
        .endpoint("10.180.2.16", |e| e.node(NODE3).zone(OTHER_ZONE).zone_hints(&[OTHER_ZONE]))
        .build();
    let nodal = service("ns9", "nodal").cluster_ip("172.30.0.56").tcp("p80", 80).build();
    let nodal_eps = slice("ns9", "nodal", "nodal-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.17", |e| e.node(NODE_NAME).node_hints(&[NODE_NAME]))
        .endpoint("10.180.1.17", |e| e.node(OTHER_NODE_NAME).node_hints(&[OTHER_NODE_NAME]))
        .build();
    let partial = service("ns9", "partial").cluster_ip("172.30.0.57").tcp("p80", 80).build();
    let partial_eps = slice("ns9", "partial", "partial-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.18", |e| e.node(OTHER_NODE_NAME).zone(ZONE).zone_hints(&[ZONE]))
        .endpoint("10.180.2.18", |e| e.node(NODE3).zone(OTHER_ZONE))
        .build();
    objects([zonal, nodal, partial], [zonal_eps, nodal_eps, partial_eps])
}

/// Terminating endpoints: `ns10/term` has only serving terminating ones; NodePort
/// `ns10/term-local` (policy Local) a terminating local one and a ready remote one.
pub fn terminating_fallback() -> Objects {
    let term = service("ns10", "term").cluster_ip("172.30.0.58").tcp("p80", 80).build();
    let term_eps = slice("ns10", "term", "term-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.19", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, true, true))
        .endpoint("10.180.2.19", |e| e.node(NODE3).conditions_rst(false, true, true))
        .endpoint("10.180.2.20", |e| e.node(NODE3).conditions_rst(false, false, true))
        .build();
    let local = service("ns10", "term-local")
        .cluster_ip("172.30.0.59")
        .node_port("p80", 80, 30087)
        .external_traffic_policy("Local")
        .build();
    let local_eps = slice("ns10", "term-local", "term-local-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.21", |e| e.node(NODE_NAME).conditions_rst(false, true, true))
        .endpoint("10.180.1.21", on(OTHER_NODE_NAME))
        .build();
    objects([term, local], [term_eps, local_eps])
}

/// Dual-stack NodePort `ns11/dual` with an external IP per family and a slice per family.
pub fn dual() -> Objects {
    let dual = service("ns11", "dual")
        .cluster_ips(&["172.30.0.60", "fd00:172:30::60"])
        .node_port("p80", 80, 30088)
        .external_ips(&["192.168.99.13", "fd00:192:168:99::13"])
        .build();
    let v4 = slice("ns11", "dual", "dual-v4")
        .tcp("p80", 8080)
        .endpoint("10.180.0.22", on(NODE_NAME))
        .endpoint("10.180.1.22", on(OTHER_NODE_NAME))
        .build();
    let v6 = slice("ns11", "dual", "dual-v6")
        .address_type("IPv6")
        .tcp("p80", 8080)
        .endpoint("fd00:10::22", on(NODE_NAME))
        .endpoint("fd00:10::1:22", on(OTHER_NODE_NAME))
        .build();
    objects([dual], [v4, v6])
}

/// IPv6-only UDP `ns11/sticky6` with ClientIP affinity (60 s).
pub fn sticky6() -> Objects {
    let sticky6 =
        service("ns11", "sticky6").cluster_ip("fd00:172:30::61").udp("dns", 53).client_ip_affinity(Some(60)).build();
    let sticky6_eps = slice("ns11", "sticky6", "sticky6-1")
        .address_type("IPv6")
        .udp("dns", 5353)
        .endpoint("fd00:10::1:23", on(OTHER_NODE_NAME))
        .build();
    objects([sticky6], [sticky6_eps])
}

/// `ns12/masq`: a ClusterIP for the masqueradeAll case.
pub fn masq() -> Objects {
    let masq = service("ns12", "masq").cluster_ip("172.30.0.62").tcp("p80", 80).build();
    let masq_eps = slice("ns12", "masq", "masq-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.24", on(NODE_NAME))
        .endpoint("10.180.1.24", on(OTHER_NODE_NAME))
        .build();
    objects([masq], [masq_eps])
}

/// LoadBalancer `ns12/masq-local` (policy Local) for the masqueradeAll case.
pub fn masq_local() -> Objects {
    let local = service("ns12", "masq-local")
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.63")
        .port("p80", 80, "TCP", Some(30089))
        .lb_ingress("1.2.3.7", None)
        .external_traffic_policy("Local")
        .build();
    let local_eps = slice("ns12", "masq-local", "masq-local-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.25", on(NODE_NAME))
        .endpoint("10.180.1.25", on(OTHER_NODE_NAME))
        .build();
    objects([local], [local_eps])
}

/// Dual-stack NodePort `ns13/np` (30090) for the nodePortAddresses case: two IPv4
/// endpoints, one IPv6.
pub fn nodeport_dual() -> Objects {
    let np = service("ns13", "np").cluster_ips(&["172.30.0.64", "fd00:172:30::64"]).node_port("p80", 80, 30090).build();
    let v4 = slice("ns13", "np", "np-v4")
        .tcp("p80", 8080)
        .endpoint("10.180.0.26", on(NODE_NAME))
        .endpoint("10.180.1.26", on(OTHER_NODE_NAME))
        .build();
    let v6 = slice("ns13", "np", "np-v6")
        .address_type("IPv6")
        .tcp("p80", 8080)
        .endpoint("fd00:10::26", on(NODE_NAME))
        .build();
    objects([np], [v4, v6])
}

/// IPv4 NodePort `ns13/np` (30090) with one local endpoint, for the nodePortAddresses case.
pub fn nodeport_v4() -> Objects {
    let np = service("ns13", "np").cluster_ip("172.30.0.64").node_port("p80", 80, 30090).build();
    let eps = slice("ns13", "np", "np-v4").tcp("p80", 8080).endpoint("10.180.0.26", on(NODE_NAME)).build();
    objects([np], [eps])
}

/// LoadBalancer with 63-character namespace, Service and port names, affinity and policy
/// Local: names that outgrow a dataplane's limits.
pub fn long_names() -> Objects {
    let namespace = "a-namespace-with-a-rather-long-name-0123456789-0123456789-abcde";
    let name = "a-service-with-a-rather-long-name-as-generated-names-get-012345";
    let svc = service(namespace, name)
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.65")
        .port("long-port-name1", 80, "TCP", Some(30091))
        .lb_ingress("1.2.3.8", None)
        .external_traffic_policy("Local")
        .client_ip_affinity(None)
        .build();
    let eps = slice(namespace, name, "long-1")
        .port("long-port-name1", 8080, "TCP")
        .endpoint("10.180.0.27", on(NODE_NAME))
        .endpoint("10.180.1.27", on(OTHER_NODE_NAME))
        .build();
    objects([svc], [eps])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(objects: &Objects) -> Vec<String> {
        objects.services.iter().filter_map(|s| s.metadata.name.clone()).collect()
    }

    #[test]
    fn pieces_combine() {
        let case = empty().and(unready(&["192.168.99.13"])).and(etp_remote());
        assert_eq!(names(&case), ["empty", "unready", "etp-remote"]);
        assert_eq!(case.slices.len(), 2);
        let unready = &case.services[1];
        let ips = unready.spec.as_ref().and_then(|s| s.external_ips.clone());
        assert_eq!(ips, Some(vec!["192.168.99.13".to_owned()]));
    }

    #[test]
    fn the_node_is_node1_in_zone_a() {
        let node = node();
        assert_eq!(node.metadata.name.as_deref(), Some(NODE_NAME));
        assert_eq!(
            node.metadata.labels.unwrap_or_default().get("topology.kubernetes.io/zone").map(String::as_str),
            Some(ZONE)
        );
    }
}
