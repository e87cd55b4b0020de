//! The states of the golden cases.

use kproxy_core::IpFamily;
use kproxy_iptables::NodePortAddresses;
use kproxy_testkit::ip_plan::{EXTERNAL_IP, LB_IP, NODE_NAME, OTHER_NODE_NAME};
use kproxy_testkit::{service, slice};

use super::{Case, case, on};

/// A third node, for endpoints that are neither here nor on node2.
const NODE3: &str = "node3";

pub(super) fn clusterip() -> Case {
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
    case(
        "ClusterIP: multi-port with 3 endpoints (probabilities 1/3, 1/2), TCP and UDP on port 53",
        &[dns, web],
        &[dns_eps, web_eps],
    )
}

pub(super) fn nodeport() -> Case {
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
    case("NodePort, TCP and UDP, externalTrafficPolicy Cluster", &[svc], &[eps])
}

pub(super) fn loadbalancer_source_ranges() -> Case {
    let svc = service("ns3", "lb")
        .type_("LoadBalancer")
        .cluster_ip("172.30.0.43")
        .port("p80", 80, "TCP", Some(30081))
        .lb_ingress(LB_IP, None)
        .lb_ingress("5.6.7.8", Some("Proxy"))
        .source_ranges(&["203.0.113.0/25", "192.168.0.0/24", "2001:db8:1::/64"])
        .build();
    let eps = slice("ns3", "lb", "lb-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.4", on(NODE_NAME))
        .endpoint("10.180.1.4", on(OTHER_NODE_NAME))
        .build();
    case(
        "LoadBalancer with loadBalancerSourceRanges: KUBE-FW admits the ranges and, as the node's 192.168.0.2 is in one, the LB IP itself; KUBE-PROXY-FIREWALL drops the rest (5.6.7.8 has ipMode Proxy and is not programmed)",
        &[svc],
        &[eps],
    )
}

pub(super) fn external_ips() -> Case {
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
    case("externalIPs (the IPv6 one belongs to ip6tables)", &[svc], &[eps])
}

pub(super) fn session_affinity() -> Case {
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
    case(
        "ClientIP session affinity: -m recent --rcheck per endpoint before the random rules, --set in KUBE-SEP (300 s, and the 10800 s default)",
        &[sticky, default],
        &[sticky_eps, default_eps],
    )
}

pub(super) fn etp_local() -> Case {
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
    case(
        "externalTrafficPolicy Local: local-lb has KUBE-SVL with its 2 local endpoints of 3; remote-lb has none here (external traffic dropped in KUBE-EXTERNAL-SERVICES, pods and the node short-circuited to KUBE-SVC)",
        &[local, remote],
        &[local_eps, remote_eps],
    )
}

pub(super) fn itp_local() -> Case {
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
    case(
        "internalTrafficPolicy Local: itp jumps to KUBE-SVL with its local endpoint; itp-none has none here and drops in filter KUBE-SERVICES",
        &[local, none],
        &[local_eps, none_eps],
    )
}

pub(super) fn no_endpoints() -> Case {
    let empty = service("ns8", "empty").cluster_ip("172.30.0.51").node_port("p80", 80, 30085).build();
    let unready =
        service("ns8", "unready").cluster_ip("172.30.0.52").tcp("p80", 80).external_ips(&["192.168.99.13"]).build();
    let unready_eps = slice("ns8", "unready", "unready-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.12", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, false, false))
        .endpoint("10.180.1.13", |e| e.node(OTHER_NODE_NAME).conditions_rst(false, false, true))
        .build();
    let etp = service("ns8", "etp-remote")
        .cluster_ip("172.30.0.54")
        .node_port("p80", 80, 30086)
        .external_traffic_policy("Local")
        .build();
    let etp_eps = slice("ns8", "etp-remote", "etp-remote-1")
        .tcp("p80", 8080)
        .endpoint("10.180.1.15", on(OTHER_NODE_NAME))
        .build();
    case(
        "No usable endpoints: empty and unready REJECT (cluster IP, external IP, node port); etp-remote DROPs external traffic only",
        &[empty, unready, etp],
        &[unready_eps, etp_eps],
    )
}

pub(super) fn dual_stack() -> Case {
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
    let mut case = case(
        "Dual stack: iptables and ip6tables; IPv6 DNATs to [addr]:port, excludes ::1 from node ports and has no KUBE-FIREWALL",
        &[dual],
        &[v4, v6],
    );
    case.config.families = IpFamily::ALL.to_vec();
    case
}

pub(super) fn masquerade_all() -> Case {
    let masq = service("ns12", "masq").cluster_ip("172.30.0.62").tcp("p80", 80).build();
    let masq_eps = slice("ns12", "masq", "masq-1")
        .tcp("p80", 8080)
        .endpoint("10.180.0.24", on(NODE_NAME))
        .endpoint("10.180.1.24", on(OTHER_NODE_NAME))
        .build();
    let mut case =
        case("masqueradeAll: the first rule of KUBE-SVC marks every packet to the cluster IP", &[masq], &[masq_eps]);
    case.config.masquerade_all = true;
    case
}

pub(super) fn nodeport_addresses_cidrs() -> Case {
    let np = service("ns13", "np").cluster_ip("172.30.0.64").node_port("p80", 80, 30090).build();
    let eps = slice("ns13", "np", "np-v4").tcp("p80", 8080).endpoint("10.180.0.26", on(NODE_NAME)).build();
    let mut case = case(
        "nodePortAddresses 192.168.0.0/24 and 127.0.0.0/8: one KUBE-NODEPORTS jump per CIDR (local addresses only), localhost node ports on",
        &[np],
        &[eps],
    );
    let cidrs = ["192.168.0.0/24", "127.0.0.0/8"].map(|c| c.parse().expect("CIDR"));
    case.config.nodeport_addresses = NodePortAddresses::Cidrs(cidrs.to_vec());
    case
}
