//! What the integration tests share: states built the way the daemon builds them (testkit
//! objects through a `ChangeTracker`), throwaway network namespaces for the tests that load
//! rules into a real kernel, and a line diff.

#![allow(dead_code, reason = "each test binary uses its own part of the support module")]

use std::io::Write;
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

/// A tracker for node1 (zone-a, 192.168.0.2) with its Node object seen, and its state.
pub struct Cluster {
    pub tracker: ChangeTracker,
    pub state: ProxyState,
}

impl Cluster {
    pub fn new() -> Self {
        let mut tracker = ChangeTracker::new(NODE_NAME, UNIX_EPOCH);
        let node = node(NODE_NAME).zone(ZONE).internal_ip(NODE_IP).pod_cidr("10.0.1.0/24").build();
        tracker.on_node_update(&node).expect("node converts");
        let mut cluster = Self { tracker, state: ProxyState::new(NODE_NAME) };
        cluster.checkout();
        cluster
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

/// The pod CIDR of the IPv4 family.
pub fn pod_cidr_v4() -> ipnet::IpNet {
    POD_CIDR.parse().expect("pod CIDR")
}

/// The pod CIDR of the IPv6 family.
pub fn pod_cidr_v6() -> ipnet::IpNet {
    "fd00:10::/64".parse().expect("pod CIDR")
}

/// Fails the calling test unless the dataplane can run against a kernel: root, `ip`, both
/// iptables flavours, `sysctl` (it sets `route_localnet`) (stale UDP flows go over netlink).
#[track_caller]
pub fn require_kernel() {
    require(&[Tool::Ip, Tool::IptablesLegacy, Tool::IptablesNft, Tool::Sysctl]);
}

/// A network namespace this test created (`kpi-<pid>-<n>-<what>`), deleted on drop.
pub struct Netns {
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Creates a namespace, or says why it cannot.
    pub fn create(what: &str) -> Result<Self, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("kpi-{}-{n}-{what}", std::process::id());
        let output = Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(format!("ip netns add {name}: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(Self { name })
    }

    /// Runs `program ARGS` in the namespace with `input` on standard input.
    pub fn run(&self, program: &str, args: &[&str], input: &str) -> Output {
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

    /// `program ARGS` that must succeed; returns its standard output.
    pub fn run_ok(&self, program: &str, args: &[&str], input: &str) -> String {
        let output = self.run(program, args, input);
        assert!(
            output.status.success(),
            "{program} {} failed in {}: {}",
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

/// A line diff of `expected` and `actual` (changed lines with their numbers).
pub fn line_diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                out.push_str(&format!("line {}:\n- {}\n+ {}\n", i + 1, x.unwrap_or(&""), y.unwrap_or(&"")));
            }
        }
        if out.lines().count() > 60 {
            out.push_str("…\n");
            break;
        }
    }
    out
}
