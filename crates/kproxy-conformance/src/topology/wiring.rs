//! Links, addresses, routes and sysctls of the cluster, as `ip -batch` scripts run inside
//! each namespace. Nothing here runs in the caller's namespace.

use std::fmt::Write as _;

use super::namespaces::Namespaces;
use crate::plan::{self, PODS, PodPlan};
use crate::{Error, netns};

/// The MAC of every node-side pod veth; pods reach their node's gateway through it.
const GATEWAY_MAC: &str = "ee:ee:ee:ee:ee:ee";
/// The gateway address pods route through (answered by the static neighbour entry).
const POD_GATEWAY_V4: &str = "169.254.1.1";
/// The same, IPv6.
const POD_GATEWAY_V6: &str = "fe80::1";

/// The external clients: (host, IPv4, IPv6).
const CLIENTS: [(&str, std::net::Ipv4Addr, std::net::Ipv6Addr); 2] =
    [(plan::CLIENT, plan::CLIENT_IPV4, plan::CLIENT_IPV6), (plan::CLIENT2, plan::CLIENT2_IPV4, plan::CLIENT2_IPV6)];

/// Wires every namespace of `ns`.
pub(crate) fn wire(ns: &Namespaces) -> Result<(), Error> {
    for (host, name) in ns.iter() {
        sysctls(host, name)?;
    }
    netns::ip_batch(Some(ns.of("lan")?), &lan_script(ns)?)?;
    for node in [plan::NODE1, plan::NODE2] {
        netns::ip_batch(Some(ns.of(node)?), &node_script(ns, node)?)?;
    }
    for (host, v4, v6) in CLIENTS {
        netns::ip_batch(Some(ns.of(host)?), &client_script(v4, v6))?;
    }
    for pod in PODS {
        netns::ip_batch(Some(ns.of(pod.name)?), &pod_script(&pod))?;
    }
    Ok(())
}

/// No DAD (addresses usable at once), no ICMP redirects (they would teach clients to bypass
/// node1), and forwarding on the nodes only.
fn sysctls(host: &str, name: &str) -> Result<(), Error> {
    let mut settings = vec![
        ("ipv6/conf/all/accept_dad", "0"),
        ("ipv6/conf/default/accept_dad", "0"),
        ("ipv4/conf/all/accept_redirects", "0"),
        ("ipv4/conf/default/accept_redirects", "0"),
        ("ipv6/conf/all/accept_redirects", "0"),
        ("ipv6/conf/default/accept_redirects", "0"),
        ("ipv4/conf/all/send_redirects", "0"),
        ("ipv4/conf/default/send_redirects", "0"),
    ];
    if host == plan::NODE1 || host == plan::NODE2 {
        settings.extend([("ipv4/ip_forward", "1"), ("ipv6/conf/all/forwarding", "1")]);
    }
    let mut script = String::from("set -e\n");
    for (key, value) in settings {
        let _ = writeln!(script, "echo {value} > /proc/sys/net/{key}");
    }
    netns::exec(name, "sh", &["-c", &script], "").map(drop)
}

fn lan_script(ns: &Namespaces) -> Result<String, Error> {
    let mut s = String::from("link set lo up\nlink add br0 type bridge mcast_snooping 0\n");
    let _ = writeln!(s, "addr add {}/{} dev br0", plan::LAN_GATEWAY_IPV4, plan::LAN_PREFIX_V4);
    let _ = writeln!(s, "addr add {}/64 dev br0 nodad", plan::LAN_GATEWAY_IPV6);
    s.push_str("link set br0 up\n");
    for host in [plan::NODE1, plan::NODE2, plan::CLIENT, plan::CLIENT2] {
        let _ = writeln!(s, "link add {host} type veth peer name eth0 netns {}", ns.of(host)?);
        let _ = writeln!(s, "link set {host} master br0 up");
    }
    Ok(s)
}

/// Lan side of a host: `eth0` with its addresses, up.
fn lan_side(s: &mut String, v4: impl std::fmt::Display, v6: impl std::fmt::Display) {
    s.push_str("link set lo up\nlink set eth0 up\n");
    let _ = writeln!(s, "addr add {v4}/{} dev eth0", plan::LAN_PREFIX_V4);
    let _ = writeln!(s, "addr add {v6}/64 dev eth0 nodad");
}

fn node_script(ns: &Namespaces, node: &str) -> Result<String, Error> {
    let mut s = String::new();
    let (ip4, ip6, peer4, peer6, peer_cidr4, peer_cidr6) = if node == plan::NODE1 {
        (
            plan::NODE1_IPV4,
            plan::NODE1_IPV6,
            plan::NODE2_IPV4,
            plan::NODE2_IPV6,
            plan::NODE2_POD_CIDR_V4,
            plan::NODE2_POD_CIDR_V6,
        )
    } else {
        (
            plan::NODE2_IPV4,
            plan::NODE2_IPV6,
            plan::NODE1_IPV4,
            plan::NODE1_IPV6,
            plan::NODE1_POD_CIDR_V4,
            plan::NODE1_POD_CIDR_V6,
        )
    };
    lan_side(&mut s, ip4, ip6);
    let _ = writeln!(s, "route add {peer_cidr4} via {peer4}\nroute add {peer_cidr6} via {peer6}");
    let _ =
        writeln!(s, "route add default via {}\nroute add ::/0 via {}", plan::LAN_GATEWAY_IPV4, plan::LAN_GATEWAY_IPV6);
    for pod in PODS.iter().filter(|p| p.node == node) {
        let dev = pod.name;
        let _ = writeln!(s, "link add {dev} type veth peer name eth0 netns {}", ns.of(pod.name)?);
        let _ = writeln!(s, "link set {dev} address {GATEWAY_MAC}\nlink set {dev} up");
        let _ = writeln!(s, "route add {}/32 dev {dev} scope link\nroute add {}/128 dev {dev}", pod.ipv4, pod.ipv6);
    }
    Ok(s)
}

fn client_script(v4: std::net::Ipv4Addr, v6: std::net::Ipv6Addr) -> String {
    let mut s = String::new();
    lan_side(&mut s, v4, v6);
    let via_node1 = [plan::SERVICE_CIDR_V4, plan::LB_RANGE_V4, plan::EXTERNAL_IP_RANGE_V4, plan::NODE1_POD_CIDR_V4];
    for cidr in via_node1 {
        let _ = writeln!(s, "route add {cidr} via {}", plan::NODE1_IPV4);
    }
    let _ = writeln!(s, "route add {} via {}", plan::NODE2_POD_CIDR_V4, plan::NODE2_IPV4);
    for cidr in [plan::SERVICE_CIDR_V6, plan::NODE1_POD_CIDR_V6] {
        let _ = writeln!(s, "route add {cidr} via {}", plan::NODE1_IPV6);
    }
    let _ = writeln!(s, "route add {} via {}", plan::NODE2_POD_CIDR_V6, plan::NODE2_IPV6);
    s
}

fn pod_script(pod: &PodPlan) -> String {
    let mut s = String::from("link set lo up\nlink set eth0 up\n");
    let _ = writeln!(s, "addr add {}/32 dev eth0\naddr add {}/128 dev eth0 nodad", pod.ipv4, pod.ipv6);
    let _ = writeln!(s, "route add {POD_GATEWAY_V4} dev eth0 scope link");
    let _ = writeln!(s, "route add default via {POD_GATEWAY_V4} dev eth0");
    let _ = writeln!(s, "neigh add {POD_GATEWAY_V4} lladdr {GATEWAY_MAC} dev eth0 nud permanent");
    let _ = writeln!(s, "route add ::/0 via {POD_GATEWAY_V6} dev eth0");
    let _ = writeln!(s, "neigh add {POD_GATEWAY_V6} lladdr {GATEWAY_MAC} dev eth0 nud permanent");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_routes_through_the_static_gateway() {
        let s = pod_script(&plan::POD1A);
        assert!(s.contains("addr add 10.0.1.10/32 dev eth0"));
        assert!(s.contains("addr add fd00:10:1::10/128 dev eth0 nodad"));
        assert!(s.contains("neigh add 169.254.1.1 lladdr ee:ee:ee:ee:ee:ee dev eth0 nud permanent"));
    }

    #[test]
    fn clients_route_service_ranges_via_node1() {
        let s = client_script(plan::CLIENT_IPV4, plan::CLIENT_IPV6);
        for line in ["route add 172.30.0.0/16 via 192.168.0.2", "route add 1.2.3.0/24 via 192.168.0.2"] {
            assert!(s.contains(line), "{line}");
        }
        assert!(s.contains("route add fd00:172:30::/112 via fd00:192:168::2"));
        assert!(s.contains("route add 10.0.2.0/24 via 192.168.0.3"));
    }
}
