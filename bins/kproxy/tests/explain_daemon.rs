//! `kproxy explain --daemon` against a real running daemon: the `kproxy` binary runs in nftables
//! mode inside a network namespace this test creates (objects from a manifest directory), and
//! `kproxy explain` asks it, from the same namespace, over its metrics server. A packet test:
//! it needs root, `ip` and `nft`, so a plain `cargo test` ignores it; `cargo xtask test` runs it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use kproxy_testkit::netns::Netns;
use kproxy_testkit::prereq::{Tool, require};

/// The objects `cli.rs` explains from files: Service ns1/svc1 on cluster IP 172.30.0.41:80.
const MANIFESTS: &str = include_str!("fixtures/explain.yaml");

mod support;

use support::{Daemon, TempDir, in_netns};

#[test]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
fn explain_asks_a_running_daemon() {
    require(&[Tool::Ip, Tool::Nft]);
    let netns = Netns::create("kpx-explain", "daemon").expect("create a namespace");
    netns.run_ok("ip", &["link", "set", "lo", "up"], "");
    let dir = TempDir::new("explain-daemon");
    std::fs::write(dir.0.join("objects.yaml"), MANIFESTS).expect("manifests");
    let manifests = dir.0.display().to_string();
    let daemon_args = [
        "--mode=nftables",
        "--manifests",
        &manifests,
        "--hostname-override=node1",
        "--healthz-bind-address=",
        "--metrics-bind-address=127.0.0.1:10249",
        "--ebpf-pin-path=",
    ];
    let child = in_netns(&netns, &daemon_args).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let _daemon = Daemon(child.expect("start the daemon"));

    let explain = ["explain", "--daemon", "http://127.0.0.1:10249", "--output", "json", "172.30.0.41:80"];
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let output = in_netns(&netns, &explain).output().expect("run kproxy explain");
        let json: Option<serde_json::Value> = serde_json::from_slice(&output.stdout).ok();
        if let Some(json) = json.filter(|j| j["service"]["service_port"] == "ns1/svc1:p80") {
            break json;
        }
        assert!(Instant::now() < deadline, "no answer naming the service: {output:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(answer["mode"], "nftables", "{answer:#}");
    assert_eq!(answer["service"]["matched_by"], "cluster_ip", "{answer:#}");
    assert_eq!(answer["verdict"], "forward", "{answer:#}");
    let rules = answer["rules"].as_array().expect("rules");
    assert!(!rules.is_empty(), "the daemon names what nftables mode programs: {answer:#}");

    // An address no service has is an answer too; a bad one is a usage error.
    let none =
        in_netns(&netns, &["explain", "--daemon", "http://127.0.0.1:10249", "--output", "json", "172.30.0.99:80"])
            .output()
            .expect("run kproxy explain");
    let none: serde_json::Value = serde_json::from_slice(&none.stdout).expect("JSON");
    assert_eq!(none["verdict"], "not_a_service");
    let bad = in_netns(&netns, &["explain", "--daemon", "http://127.0.0.1:10249", "not-an-address"]).output();
    assert_eq!(bad.expect("run kproxy explain").status.code(), Some(2));
}
