//! What this crate's integration tests share beyond kproxy-testkit (objects, namespaces,
//! golden files) and kproxy-conformance (node1's model): its namespace prefix, the kernel
//! it needs, and nft listings in a canonical form.

#![allow(dead_code, reason = "each test binary uses its own part of the support module")]

use kproxy_conformance::OfflineNode;
use kproxy_testkit::golden;
use kproxy_testkit::ip_plan::{POD_CIDR, POD_CIDR_V6};
pub use kproxy_testkit::netns::Netns;
use kproxy_testkit::prereq::{Tool, require};

/// node1's model (zone-a, 192.168.0.2), before any Service.
pub fn node1() -> OfflineNode {
    OfflineNode::new(&golden::node())
}

/// The pod CIDRs of both families (the local-traffic detector).
pub fn pod_cidrs() -> Vec<ipnet::IpNet> {
    [POD_CIDR, POD_CIDR_V6].map(|c| c.parse().expect("pod CIDR")).to_vec()
}

/// Fails the calling test unless it can load rules into a kernel: root, `ip` and `nft`.
#[track_caller]
pub fn require_kernel() {
    require(&[Tool::Ip, Tool::Nft]);
}

/// A network namespace of this crate's tests (`kpg-…`), deleted on drop.
pub fn netns(what: &str) -> Netns {
    Netns::create("kpg", what).expect("a network namespace")
}

/// An `nft list table` text in a canonical form: every set, map and chain by name, set
/// and map elements sorted (the kernel lists them in its own order), rules in order.
pub fn normalize_listing(listing: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    let mut current: Option<(String, Vec<String>, Vec<String>)> = None;
    let mut in_elements = false;
    let mut pending = String::new();
    for raw in listing.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with("table ") {
            continue;
        }
        let Some((_, body, elements)) = current.as_mut() else {
            if ["set ", "map ", "chain "].iter().any(|p| line.starts_with(p)) {
                current = Some((line.to_owned(), Vec::new(), Vec::new()));
            }
            continue;
        };
        if in_elements || line.starts_with("elements = {") {
            let text = line.strip_prefix("elements = {").unwrap_or(line);
            pending.push(' ');
            pending.push_str(text);
            in_elements = !text.trim_end().ends_with('}');
            if !in_elements {
                let all = pending.trim().trim_end_matches('}').to_owned();
                elements.extend(all.split(',').map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()));
                pending.clear();
            }
            continue;
        }
        if line == "}" {
            let (header, body, mut elements) = current.take().expect("inside a block");
            elements.sort();
            blocks.push(format!("{header}\n  {}\n  elements: {}", body.join("\n  "), elements.join(", ")));
            continue;
        }
        body.push(line.to_owned());
    }
    blocks.sort();
    blocks
}
