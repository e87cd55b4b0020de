//! The conformance suite end to end in eBPF mode: the `kproxy` binary runs inside node1's
//! namespace with `--mode ebpf` and watches the testkit's fake apiserver. A packet test: it
//! needs root (network namespaces, a cgroup, BPF programs), so a plain `cargo test`
//! ignores it; `cargo xtask test` runs it. `KPROXY_CONFORMANCE_FILTER=<part of a case
//! name>` runs a subset.
//!
//! As in kproxy-ebpf's in-process conformance test, the suite's hosts are threads of this
//! process: the test moves itself into a child cgroup it creates (`kpe2-<pid>`), so the
//! daemon it starts and every client socket belong to it, and the daemon attaches there
//! only (`--ebpf-cgroup-path`) and balances node1's namespaces only (`--ebpf-netns`, node1
//! and its pods): node2 and the external clients, in the same cgroup, are left alone. No
//! pins (`--ebpf-pin-path=`): the programs go with the daemon. The cgroup is removed on
//! drop, also after a panic, once the daemon is gone; nothing attaches anywhere else.

#![cfg(feature = "ebpf")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kproxy_conformance::{NodeEnv, netns_path, run_conformance_e2e_with};
use kproxy_testkit::prereq::{Tool, require};

/// Cases this dataplane cannot run, with the reason (as in kproxy-ebpf's own conformance
/// test).
const SKIPS: &[(&str, &str)] = &[
    (
        "hairpin",
        "socket-level balancing connects the pod to itself directly, so its own address is the source: there is no \
         hairpin packet path to masquerade",
    ),
    (
        "localhost-nodeport",
        "the eBPF mode balances node ports on the node's own addresses only (its Node's, narrowed by \
         --nodeport-addresses): 127.0.0.1 and ::1 are not service addresses there, and \
         --nftables-localhost-nodeports is the nftables mode's relay",
    ),
    (
        "masquerade-all",
        "socket-level balancing never rewrites a packet: connections leave from the client's own address, there is \
         nothing to masquerade",
    ),
];

/// A cgroup v2 directory `kpe2-<pid>` that this whole process joins; dropping it moves the
/// process back to the cgroup it came from and removes the directory.
struct TestCgroup {
    path: PathBuf,
    home: PathBuf,
}

impl TestCgroup {
    /// Creates the cgroup under the cgroup2 mount and moves this process into it.
    fn enter() -> Self {
        let root = kproxy_ebpf::cgroup2_root().expect("no cgroup2 mount in /proc/mounts");
        let own = std::fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
        let relative = own.lines().find_map(|l| l.strip_prefix("0::")).expect("a cgroup v2 line in /proc/self/cgroup");
        let home = root.join(relative.trim_start_matches('/'));
        let path = root.join(format!("kpe2-{}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let cgroup = Self { path, home };
        std::fs::write(cgroup.path.join("cgroup.procs"), std::process::id().to_string())
            .unwrap_or_else(|e| panic!("join {}: {e}", cgroup.path.display()));
        cgroup
    }

    /// The cgroup as the daemon sees it: `ip netns exec` mounts a fresh `/sys` without the
    /// cgroup2 mount, so the path goes through this process's root (`/proc/<pid>/root`).
    fn path_for_daemon(&self) -> PathBuf {
        Path::new(&format!("/proc/{}/root", std::process::id())).join(self.path.strip_prefix("/").unwrap_or(&self.path))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(self.home.join("cgroup.procs"), std::process::id().to_string()) {
            eprintln!("conformance_e2e_ebpf: cannot move back to {}: {e}", self.home.display());
        }
        if let Err(e) = std::fs::remove_dir(&self.path) {
            eprintln!("conformance_e2e_ebpf: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The eBPF mode's flags for node1: attach to `cgroup`, balance node1's namespaces only,
/// pin nothing.
fn ebpf_args(cgroup: PathBuf) -> impl Fn(&NodeEnv) -> Vec<String> + Send + Sync {
    move |env: &NodeEnv| {
        let netns: Vec<String> = env.local_netns.iter().map(|n| netns_path(n).display().to_string()).collect();
        vec![
            format!("--ebpf-cgroup-path={}", cgroup.display()),
            format!("--ebpf-netns={}", netns.join(",")),
            "--ebpf-pin-path=".to_owned(),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "packet test: needs root, ip and a cgroup2 mount; run by cargo xtask test"]
async fn conformance_end_to_end_ebpf() {
    require(&[Tool::Ip]);
    let cgroup = TestCgroup::enter();
    let filter = std::env::var("KPROXY_CONFORMANCE_FILTER").ok();
    let binary = Path::new(env!("CARGO_BIN_EXE_kproxy"));
    let args = Arc::new(ebpf_args(cgroup.path_for_daemon()));
    let report = run_conformance_e2e_with(binary, "ebpf", args, SKIPS, filter.as_deref()).await;
    drop(cgroup);
    report.assert_all_passed();
}
