//! The case table: one entry per kube-proxy behaviour, each with what it proves.
//!
//! A case sets up its own Services and EndpointSlices (addresses from the harness's
//! allocator, so no two cases share one) and leaves the rest to the runner, which resets
//! the harness after every case. Cases run in table order; none depends on another.

use std::future::Future;
use std::pin::Pin;

use crate::{Error, Harness};

/// Fails the case with a message when `cond` is false.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::cases::CaseError::Fail(format!($($arg)+)));
        }
    };
}

mod affinity;
mod clusterip;
mod external;
mod families;
mod hygiene;
mod lifecycle;
mod localhost;
mod masquerade;
mod policy;
mod robustness;
mod support;

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseError {
    /// The behaviour is wrong (or the harness failed): the message says how.
    Fail(String),
    /// The case cannot run here (e.g. the kernel has no SCTP): the message says why.
    Skip(String),
}

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaseError::Fail(why) => f.write_str(why),
            CaseError::Skip(why) => write!(f, "skipped: {why}"),
        }
    }
}

impl From<Error> for CaseError {
    fn from(error: Error) -> Self {
        CaseError::Fail(error.to_string())
    }
}

impl From<String> for CaseError {
    fn from(message: String) -> Self {
        CaseError::Fail(message)
    }
}

/// What a case returns.
pub type CaseResult = Result<(), CaseError>;

/// A running case.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

/// One behaviour to check.
#[derive(Clone, Copy)]
pub struct Case {
    /// A stable, kebab-case name (skips and filters use it).
    pub name: &'static str,
    /// The kube-proxy behaviour it proves.
    pub proves: &'static str,
    /// Runs it against the harness.
    pub run: for<'a> fn(&'a mut Harness) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).field("proves", &self.proves).finish_non_exhaustive()
    }
}

/// Builds a [`Case`] from an `async fn(&mut Harness) -> CaseResult`.
macro_rules! case {
    ($name:literal, $run:path, $proves:literal) => {
        Case {
            name: $name,
            proves: $proves,
            run: {
                fn run(h: &mut Harness) -> CaseFuture<'_> {
                    Box::pin($run(h))
                }
                run
            },
        }
    };
}

/// Every case, in the order the runner runs them.
pub fn cases() -> Vec<Case> {
    let mut all = clusterip_cases();
    all.extend(external_cases());
    all.extend(policy_cases());
    all.extend(state_cases());
    all.extend(robustness_cases());
    all
}

fn clusterip_cases() -> Vec<Case> {
    vec![
        case!(
            "clusterip-tcp-from-pod",
            clusterip::tcp_from_pod,
            "a ClusterIP spreads TCP connections from a pod over every ready endpoint, on both nodes"
        ),
        case!(
            "clusterip-tcp-from-node",
            clusterip::tcp_from_node,
            "a ClusterIP spreads TCP connections from the node itself over every ready endpoint"
        ),
        case!(
            "clusterip-udp",
            clusterip::udp,
            "a UDP ClusterIP spreads datagrams (one flow per source port) over every endpoint"
        ),
        case!(
            "multi-port",
            clusterip::multi_port,
            "each port of a multi-port Service maps to its own endpoints and target port"
        ),
        case!(
            "same-port-tcp-and-udp",
            clusterip::same_port_tcp_and_udp,
            "one port number with TCP and UDP is two service ports with separate endpoints"
        ),
        case!(
            "no-endpoints-reject",
            clusterip::no_endpoints_reject,
            "a Service without endpoints rejects TCP at once (RST/ICMP in under 1 s), from pods and the node"
        ),
        case!(
            "hairpin",
            clusterip::hairpin,
            "a pod reaching its own Service lands on itself and the connection works (hairpin masquerade)"
        ),
        case!(
            "ipv6-clusterip",
            families::ipv6_clusterip,
            "an IPv6 ClusterIP spreads over IPv6 endpoints on both nodes, keeping the pod's source"
        ),
        case!(
            "ipv6-nodeport",
            families::ipv6_nodeport,
            "an IPv6 NodePort on node1's IPv6 address reaches endpoints on both nodes, masqueraded"
        ),
        case!("sctp-clusterip", families::sctp_clusterip, "an SCTP ClusterIP spreads associations over every endpoint"),
        case!(
            "cluster-ip-hygiene",
            hygiene::cluster_ip_hygiene,
            "with a ServiceCIDR, an unknown port of an active cluster IP is refused at once and an unallocated \
             address of the service CIDR times out instead of being routed on (from a pod, the node and outside); \
             the service port itself still works"
        ),
    ]
}

fn external_cases() -> Vec<Case> {
    vec![
        case!(
            "nodeport-cluster-policy",
            external::nodeport_cluster,
            "a NodePort (externalTrafficPolicy Cluster) reaches pods on both nodes, source masqueraded to the node IP"
        ),
        case!(
            "nodeport-local-policy",
            external::nodeport_local,
            "a NodePort with externalTrafficPolicy Local uses only node1's endpoints and keeps the client's source"
        ),
        case!(
            "nodeport-local-no-local-endpoints",
            external::nodeport_local_none,
            "externalTrafficPolicy Local with no endpoint on the node drops (times out), it does not reject"
        ),
        case!(
            "loadbalancer-local-policy",
            external::lb_local,
            "a load-balancer IP with externalTrafficPolicy Local uses only local endpoints, source preserved"
        ),
        case!(
            "loadbalancer-local-from-pod",
            external::lb_local_from_pod,
            "a pod calling an externalTrafficPolicy Local LB IP is short-circuited to all cluster endpoints"
        ),
        case!("external-ips", external::external_ips, "traffic to a Service's externalIPs reaches its endpoints"),
        case!(
            "loadbalancer-ingress",
            external::lb_ingress,
            "traffic to a load-balancer ingress IP reaches every endpoint, masqueraded (policy Cluster)"
        ),
        case!(
            "localhost-nodeport",
            localhost::localhost_nodeport,
            "node1 → 127.0.0.1:nodePort reaches the endpoints the node's own traffic to the node port reaches \
             (iptables mode: route_localnet; nftables mode: with --nftables-localhost-nodeports only, ::1 too), \
             and is refused once the Service is gone"
        ),
        case!(
            "loadbalancer-source-ranges",
            external::lb_source_ranges,
            "loadBalancerSourceRanges admit listed clients and drop the others"
        ),
    ]
}

fn policy_cases() -> Vec<Case> {
    vec![
        case!(
            "internal-traffic-policy-local",
            policy::itp_local,
            "internalTrafficPolicy Local: a pod on node1 reaches only node1's endpoints"
        ),
        case!(
            "internal-traffic-policy-local-no-local-endpoints",
            policy::itp_local_none,
            "internalTrafficPolicy Local with no local endpoint drops (times out)"
        ),
        case!(
            "topology-zone-hints",
            policy::zone_hints,
            "with every endpoint hinted, only endpoints hinted for node1's zone are used"
        ),
        case!(
            "topology-node-hints",
            policy::node_hints,
            "with every endpoint node-hinted, only endpoints hinted for node1 are used"
        ),
        case!(
            "terminating-endpoints-fallback",
            policy::terminating_fallback,
            "serving terminating endpoints are used when no endpoint is ready; ready ones win when present"
        ),
        case!(
            "session-affinity",
            affinity::sticky,
            "ClientIP session affinity sends every connection of one client to the same endpoint"
        ),
        case!(
            "session-affinity-timeout",
            affinity::timeout,
            "ClientIP affinity expires after timeoutSeconds of silence; the next connection picks afresh"
        ),
        case!("masquerade-all", masquerade::masquerade_all, "masqueradeAll masquerades pod-to-ClusterIP traffic too"),
        case!(
            "cluster-cidr-masquerade",
            masquerade::cluster_cidr,
            "the cluster-CIDR detector keeps pod sources and masquerades node and external sources"
        ),
    ]
}

fn state_cases() -> Vec<Case> {
    vec![
        case!(
            "endpoint-churn",
            lifecycle::endpoint_churn,
            "replacing a Service's endpoints moves traffic to the new ones within 5 s"
        ),
        case!(
            "service-deletion",
            lifecycle::service_deletion,
            "a deleted Service's ClusterIP stops answering within 5 s"
        ),
        case!(
            "stale-udp-conntrack",
            lifecycle::stale_udp,
            "a UDP flow (fixed source port) to a removed endpoint moves to a live one within 5 s (conntrack cleanup)"
        ),
        case!(
            "scale-1000-services",
            lifecycle::scale_1000,
            "1,000 Services with endpoints program in one sync and a sample of them answers correctly"
        ),
    ]
}

fn robustness_cases() -> Vec<Case> {
    vec![
        case!(
            "poisoned-service-does-not-block-others",
            robustness::poisoned_service,
            "Services and slices whose names carry quotes, newlines, braces or 253 characters are skipped; names at \
             their longest valid length work; a fresh Service works, also after a restart"
        ),
        case!(
            "duplicate-external-ip",
            robustness::duplicate_external_ip,
            "two Services listing one external IP: the older one has it, the other keeps its ClusterIP and takes \
             the external IP over when the older is deleted"
        ),
        case!(
            "large-service-and-slice",
            robustness::large_objects,
            "a Service with 100 ports and a slice with 1,000 endpoints program in one sync and answer; a fresh \
             Service still does, also after a restart"
        ),
    ]
}
