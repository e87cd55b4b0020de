//! Pure rendering of the redirect table: its fixed declarations and chains, its elements
//! (with listener ports filled in), and the scripts that load or patch it.
//!
//! ```text
//! table ip kproxy-userspace
//!   prerouting (nat, dstnat):  no-endpoints → reject; firewall → drop unless allowed;
//!                              internal → dnat to portal; pods: short → dnat; others:
//!                              external → dnat; node ports alike; service-ips → drop
//!   output (nat, -100):        no-endpoints → reject; internal, short → redirect; → drop
//! ```
//!
//! Only the first packet of a connection (or UDP flow) meets these chains; conntrack
//! carries the rest, so a removed listener or rule never cuts a connection in progress.
//!
//! No text from an API object reaches this table: set and chain names are fixed, and
//! elements are made of addresses, protocols and port numbers only. Were a name ever
//! added, it would go through `kproxy_netfilter::quote` as in the other dataplanes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use kproxy_core::IpFamily;
use kproxy_netfilter::nft_text::{Family, element_text, write_chain, write_elements};

use crate::render::plan::{FamilyPlan, ListenerKey, Set};

/// The set, key and value (listener port, for maps) of one element.
pub type Element = (Set, String, Option<u16>);

/// A family's table as it is (to be) loaded: the fixed part and the elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRules {
    /// `ip` or `ip6`.
    pub family: &'static str,
    /// The table's name.
    pub table: String,
    /// Declarations and chains (depend on the family and portal address only).
    pub fixed: String,
    /// Every element.
    pub elements: BTreeSet<Element>,
}

/// Renders `plan`'s table; a map element whose listener has no port in `ports` is left out.
pub fn render(table: &str, plan: &FamilyPlan, ports: &BTreeMap<ListenerKey, u16>) -> TableRules {
    let elements = plan
        .elements
        .iter()
        .filter_map(|((set, key), listener)| match listener {
            None => Some((*set, key.clone(), None)),
            Some(l) => ports.get(l).map(|p| (*set, key.clone(), Some(*p))),
        })
        .collect();
    TableRules { family: Family(plan.family).keyword(), table: table.to_owned(), fixed: fixed(plan), elements }
}

fn set_type(set: Set, addr: &str) -> String {
    let service = format!("{addr} . inet_proto . inet_service");
    match set {
        Set::ClusterCidrs => format!("type {addr}; flags interval;"),
        Set::NoEndpoints | Set::Firewall | Set::ServiceIps => format!("type {service};"),
        Set::FirewallAllowed => format!("type {service} . {addr}; flags interval;"),
        Set::NoEndpointNodePorts | Set::ServiceNodePorts => "type inet_proto . inet_service;".to_owned(),
        Set::Internal | Set::External | Set::Short => format!("type {service} : inet_service;"),
        Set::ExternalNodePorts | Set::ShortNodePorts => "type inet_proto . inet_service : inet_service;".to_owned(),
    }
}

/// The table body without elements.
fn fixed(plan: &FamilyPlan) -> String {
    let (family, portal_ip) = (plan.family, plan.portal_ip);
    let (ip, addr) = (Family(family).keyword(), Family(family).addr_type());
    // The CIDR modes match the (possibly empty) cluster-cidrs set, always declared.
    let local = plan.local_detect.nft_match(ip, Some("cluster-cidrs"), true).unwrap_or_default();
    let mut s = String::new();
    for set in Set::ALL {
        let kind = if set.is_port_map() { "map" } else { "set" };
        let _ = writeln!(s, "\t{kind} {} {{ {} }}", set.name(), set_type(set, addr));
    }
    let dst = format!("{ip} daddr . meta l4proto . th dport");
    let np = "fib daddr type local meta l4proto . th dport";
    let to = match portal_ip {
        Some(IpAddr::V4(v4)) => format!("meta l4proto {{ tcp, udp }} dnat ip to {v4} :"),
        Some(IpAddr::V6(v6)) => format!("meta l4proto {{ tcp, udp }} dnat ip6 to [{v6}] :"),
        None => "meta l4proto { tcp, udp } redirect to :".to_owned(),
    };
    let redirect = "meta l4proto { tcp, udp } redirect to :";
    let reject =
        [format!("{dst} @no-endpoints goto reject-packet"), format!("{np} @no-endpoint-nodeports goto reject-packet")];
    let drop = [format!("{dst} @service-ips drop"), format!("{np} @service-nodeports drop")];
    let icmp = if family == IpFamily::V4 { "icmp port-unreachable" } else { "icmpv6 port-unreachable" };
    write_chain(
        &mut s,
        "reject-packet",
        None,
        ["meta l4proto tcp reject with tcp reset".to_owned(), format!("reject with {icmp}")],
    );
    let prerouting = [
        format!("{dst} @firewall {dst} . {ip} saddr != @firewall-allowed drop"),
        format!("{to} {dst} map @internal"),
        format!("{local} {to} {dst} map @short"),
        format!("{local} fib daddr type local {to} meta l4proto . th dport map @short-nodeports"),
        format!("{to} {dst} map @external"),
        format!("fib daddr type local {to} meta l4proto . th dport map @external-nodeports"),
    ];
    let hook = "type nat hook prerouting priority dstnat; policy accept;";
    write_chain(&mut s, "prerouting", Some(hook), reject.iter().chain(&prerouting).chain(&drop));
    let output = [
        format!("{redirect} {dst} map @internal"),
        format!("{redirect} {dst} map @short"),
        format!("fib daddr type local {redirect} meta l4proto . th dport map @short-nodeports"),
    ];
    let hook = "type nat hook output priority -100; policy accept;";
    write_chain(&mut s, "output", Some(hook), reject.iter().chain(&output).chain(&drop));
    s
}

/// Elements per statement: long enough to be fast, short enough for nft's line buffer.
const CHUNK: usize = 500;

/// `add element` (or `delete element`, keys only) statements for `elements`.
fn element_statements(out: &mut String, verb: &str, head: &str, elements: &[&Element]) {
    let mut by_set: BTreeMap<Set, Vec<String>> = BTreeMap::new();
    for (set, key, value) in elements {
        let text = if verb == "delete" { key.clone() } else { element_text(key, *value) };
        by_set.entry(*set).or_default().push(text);
    }
    for (set, texts) in by_set {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        write_elements(out, verb, head, set.name(), &texts, CHUNK);
    }
}

/// One transaction that replaces the whole table (created if absent).
pub fn full_script(rules: &TableRules) -> String {
    let head = format!("{} {}", rules.family, rules.table);
    let mut s = format!("table {head} {{}}\ndelete table {head}\ntable {head} {{\n{}}}\n", rules.fixed);
    let all: Vec<&Element> = rules.elements.iter().collect();
    element_statements(&mut s, "add", &head, &all);
    s
}

/// One transaction that turns `before`'s elements into `after`'s (same fixed part);
/// `None` when nothing changes.
pub fn patch_script(before: &TableRules, after: &TableRules) -> Option<String> {
    let head = format!("{} {}", after.family, after.table);
    let gone: Vec<&Element> = before.elements.difference(&after.elements).collect();
    let new: Vec<&Element> = after.elements.difference(&before.elements).collect();
    if gone.is_empty() && new.is_empty() {
        return None;
    }
    let mut s = String::new();
    element_statements(&mut s, "delete", &head, &gone);
    element_statements(&mut s, "add", &head, &new);
    Some(s)
}

/// Removes the table of `family` if it exists.
pub fn cleanup_script(family: &str, table: &str) -> String {
    format!("table {family} {table} {{}}\ndelete table {family} {table}\n")
}

/// The table as `nft list` would show it, for `kproxy render`.
pub fn render_text(rules: &TableRules) -> String {
    let mut s = format!("table {} {} {{\n{}}}\n", rules.family, rules.table, rules.fixed);
    let all: Vec<&Element> = rules.elements.iter().collect();
    element_statements(&mut s, "add", &format!("{} {}", rules.family, rules.table), &all);
    s
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
