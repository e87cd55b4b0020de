//! Which interfaces the tc programs run on.
//!
//! `kp_tc_ingress` runs on the external interfaces: `--ebpf-interfaces`, or by default the
//! interfaces holding the node's addresses. `kp_tc_reply` runs on every other interface
//! but loopback (the pods' side), where replies of local endpoints come in. The choice is
//! pure ([`choose`]); listing the interfaces is the kernel's ([`list`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// One network interface of the node, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Whether it is a loopback interface.
    pub loopback: bool,
}

/// The interfaces each tc program is attached to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcAttachment {
    /// `kp_tc_ingress`: traffic from outside, to service addresses.
    pub external: Vec<String>,
    /// `kp_tc_reply`: replies of the node's own endpoints.
    pub pod_side: Vec<String>,
}

/// The attachment for `configured` external interfaces (empty: those holding one of
/// `node_addresses`) among `present`. Configured names that are not present are left out.
pub fn choose(configured: &[String], node_addresses: &[IpAddr], present: &[Interface]) -> TcAttachment {
    let external: Vec<String> = present
        .iter()
        .filter(|i| {
            if configured.is_empty() {
                i.addresses.iter().any(|a| node_addresses.contains(a))
            } else {
                configured.contains(&i.name)
            }
        })
        .map(|i| i.name.clone())
        .collect();
    let pod_side =
        present.iter().filter(|i| !i.loopback && !external.contains(&i.name)).map(|i| i.name.clone()).collect();
    TcAttachment { external, pod_side }
}

/// The interfaces of the calling thread's network namespace, with their addresses.
pub fn list() -> std::io::Result<Vec<Interface>> {
    let mut by_name: BTreeMap<String, Interface> = BTreeMap::new();
    for entry in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let interface = by_name.entry(entry.interface_name.clone()).or_insert_with(|| Interface {
            name: entry.interface_name.clone(),
            addresses: Vec::new(),
            loopback: entry.flags.contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK),
        });
        let Some(address) = entry.address else { continue };
        if let Some(v4) = address.as_sockaddr_in() {
            interface.addresses.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = address.as_sockaddr_in6() {
            interface.addresses.push(IpAddr::V6(v6.ip()));
        }
    }
    Ok(by_name.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addresses: &[&str], loopback: bool) -> Interface {
        Interface { name: name.to_owned(), addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(), loopback }
    }

    fn node() -> Vec<Interface> {
        vec![
            iface("lo", &["127.0.0.1", "::1"], true),
            iface("eth0", &["192.168.0.2", "fd00:192:168::2", "fe80::1"], false),
            iface("pod1a", &["fe80::ecee:eeff:feee:eeee"], false),
            iface("pod1b", &[], false),
        ]
    }

    #[test]
    fn by_default_the_interfaces_holding_node_addresses_are_external() {
        let chosen = choose(&[], &["192.168.0.2".parse().unwrap()], &node());
        assert_eq!(chosen.external, ["eth0"]);
        assert_eq!(chosen.pod_side, ["pod1a", "pod1b"], "every other interface but loopback");
    }

    #[test]
    fn configured_interfaces_replace_the_default_and_absent_ones_are_left_out() {
        let chosen = choose(&["pod1b".to_owned(), "eth9".to_owned()], &["192.168.0.2".parse().unwrap()], &node());
        assert_eq!(chosen.external, ["pod1b"]);
        assert_eq!(chosen.pod_side, ["eth0", "pod1a"]);
    }

    #[test]
    fn without_node_addresses_nothing_is_external() {
        assert!(choose(&[], &[], &node()).external.is_empty());
    }
}
