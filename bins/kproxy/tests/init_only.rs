//! `kproxy --init-only` makes upstream's kernel settings, in a network namespace this test
//! creates (the conntrack timeouts and `route_localnet` are per namespace), and nothing in
//! the machine's. A packet test: it needs root and `ip`, so a plain `cargo test` ignores
//! it; `cargo xtask test` runs it.

use std::process::Command;

use kproxy_testkit::netns::Netns;
use kproxy_testkit::prereq::{Tool, require};

const ESTABLISHED: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established";
const UDP: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout";
const BE_LIBERAL: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal";
const ROUTE_LOCALNET: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

fn read(netns: &Netns, path: &str) -> String {
    netns.run_ok("cat", &[path], "").trim().to_owned()
}

#[test]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
fn init_only_sets_conntrack_and_route_localnet_in_its_namespace() {
    require(&[Tool::Ip]);
    let netns = Netns::create("kpio", "node").expect("create a namespace");
    let machine = std::fs::read_to_string(ESTABLISHED).unwrap_or_default();
    let args = [
        "--init-only",
        "--proxy-mode=iptables",
        "--conntrack-tcp-timeout-established=2h",
        "--conntrack-udp-timeout=45s",
        "--conntrack-tcp-be-liberal",
        // nf_conntrack_max is the host's alone: outside its namespace it cannot be set,
        // which is a warning, not a failure.
        "--conntrack-min=131072",
    ];
    let output = Command::new("ip")
        .args(["netns", "exec", &netns.name, env!("CARGO_BIN_EXE_kproxy")])
        .args(args)
        .output()
        .expect("run kproxy --init-only");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(read(&netns, ESTABLISHED), "7200");
    assert_eq!(read(&netns, UDP), "45");
    assert_eq!(read(&netns, BE_LIBERAL), "1");
    assert_eq!(read(&netns, ROUTE_LOCALNET), "1");
    assert_eq!(
        std::fs::read_to_string(ESTABLISHED).unwrap_or_default(),
        machine,
        "the machine's namespace is untouched"
    );
}
