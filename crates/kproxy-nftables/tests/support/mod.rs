//! What the integration tests share: fixtures built the way the daemon builds its state
//! (testkit objects through a `ChangeTracker`), and throwaway network namespaces for the
//! tests that load rules into a real kernel.

#![allow(dead_code, reason = "each test binary uses its own part of the support module")]

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::UNIX_EPOCH;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_core::{ChangeTracker, Changes, ProxyState};
use kproxy_testkit::ip_plan::{NODE_IP, NODE_NAME, POD_CIDR};
use kproxy_testkit::node;
use kproxy_testkit::prereq::{Tool, require};

/// This node's zone.
pub const ZONE: &str = "zone-a";
/// Another zone.
pub const OTHER_ZONE: &str = "zone-b";

/// A tracker for node1 (zone-a) with its Node object seen, and the state it checks out into.
pub struct Cluster {
    pub tracker: ChangeTracker,
    pub state: ProxyState,
}

impl Cluster {
    pub fn new() -> Self {
        let mut tracker = ChangeTracker::new(NODE_NAME, UNIX_EPOCH);
        let node = node(NODE_NAME).zone(ZONE).internal_ip(NODE_IP).pod_cidr("10.0.1.0/24").build();
        tracker.on_node_update(&node).expect("node converts");
        Self { tracker, state: ProxyState::new(NODE_NAME) }
    }

    /// A state holding `services` and `slices`.
    pub fn with(services: &[Service], slices: &[EndpointSlice]) -> Self {
        let mut cluster = Self::new();
        cluster.apply(services, slices);
        cluster.checkout();
        cluster
    }

    pub fn apply(&mut self, services: &[Service], slices: &[EndpointSlice]) {
        for service in services {
            self.tracker.on_service_update(service).expect("service converts");
        }
        for slice in slices {
            self.tracker.on_slice_update(slice).expect("slice converts");
        }
    }

    pub fn checkout(&mut self) -> Changes {
        self.tracker.checkout_into(&mut self.state)
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

/// The pod CIDR of the IPv4 family, parsed.
pub fn pod_cidr_v4() -> ipnet::IpNet {
    POD_CIDR.parse().expect("pod CIDR")
}

/// The pod CIDR of the IPv6 family.
pub fn pod_cidr_v6() -> ipnet::IpNet {
    "fd00:10::/64".parse().expect("pod CIDR")
}

/// Fails the calling test unless it can load rules into a kernel: root, `ip` and `nft`.
#[track_caller]
pub fn require_kernel() {
    require(&[Tool::Ip, Tool::Nft]);
}

/// A network namespace this test created (`kpg-<pid>-<n>-<what>` unless another prefix is
/// given), deleted on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Creates a namespace, or says why it cannot.
    pub fn create(what: &str) -> Result<Self, String> {
        Self::create_with_prefix("kpg", what)
    }

    /// Creates a namespace named `<prefix>-<pid>-<n>-<what>` (tests that may run beside
    /// others use their own prefix), or says why it cannot.
    pub fn create_with_prefix(prefix: &str, what: &str) -> Result<Self, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}-{what}", std::process::id());
        let output = Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Self { name })
    }

    /// Runs `nft ARGS` in the namespace, with `input` on standard input.
    pub fn nft(&self, args: &[&str], input: &str) -> Output {
        self.run("nft", args, input)
    }

    /// Runs `program ARGS` in the namespace, with `input` on standard input.
    pub fn run(&self, program: &str, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec runs");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("the tool reads its input");
        }
        child.wait_with_output().expect("the tool finishes")
    }

    /// `nft ARGS` that must succeed; returns its standard output.
    pub fn nft_ok(&self, args: &[&str], input: &str) -> String {
        let output = self.nft(args, input);
        assert!(
            output.status.success(),
            "nft {} failed in {}: {}",
            args.join(" "),
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "delete", &self.name]).status();
    }
}

/// A line diff of `expected` and `actual` in unified style (3 lines of context).
pub fn unified_diff(expected: &str, actual: &str, expected_name: &str, actual_name: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // Longest common subsequence table, from the ends.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    // Edit script: (' ' | '-' | '+', line index in a, line index in b, text).
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', i, j, a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i, j, a[i]));
            i += 1;
        } else {
            ops.push(('+', i, j, b[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 3;
    let mut out = format!("--- {expected_name}\n+++ {actual_name}\n");
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, op)| op.0 != ' ').map(|(k, _)| k).collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 2 * CONTEXT + 1 {
            end = changed[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let old_len = hunk.iter().filter(|op| op.0 != '+').count();
        let new_len = hunk.iter().filter(|op| op.0 != '-').count();
        out.push_str(&format!("@@ -{},{old_len} +{},{new_len} @@\n", hunk[0].1 + 1, hunk[0].2 + 1));
        for (tag, _, _, text) in hunk {
            out.push_str(&format!("{tag}{text}\n"));
        }
    }
    out
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
