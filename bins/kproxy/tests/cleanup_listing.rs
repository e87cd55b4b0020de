//! `kproxy --cleanup` removes everything kproxy installed and nothing else, in every
//! netfilter mode: in a namespace this test creates, with foreign rules of its own in
//! nftables, iptables-legacy and iptables-nft, the daemon programs a NodePort Service, is
//! killed, and `kproxy --cleanup` must bring every listing back to what it was before the
//! daemon first started. A packet test: it needs root, `ip`, `nft` and iptables, so a
//! plain `cargo test` ignores it; `cargo xtask test` runs it.

mod support;

use std::process::Stdio;

use kproxy_testkit::netns::Netns;
use kproxy_testkit::prereq::{Tool, require};
use support::{Daemon, TempDir, in_netns, wait_for};

/// A NodePort Service with endpoints, and node1.
const MANIFESTS: &str = include_str!("fixtures/explain.yaml");

/// Rules that are not kproxy's: they must survive its cleanup.
fn add_foreign_rules(netns: &Netns) {
    let foreign = "table inet foreign {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\ttcp dport 22 accept\n\t}\n}\n";
    netns.run_ok("nft", &["-f", "-"], foreign);
    netns.run_ok("iptables-legacy", &["-N", "FOREIGN"], "");
    netns.run_ok("iptables-legacy", &["-A", "INPUT", "-j", "FOREIGN"], "");
    netns.run_ok("iptables-legacy", &["-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-j", "MASQUERADE"], "");
    netns.run_ok("ip6tables-legacy", &["-A", "INPUT", "-s", "fd00:99::/64", "-j", "ACCEPT"], "");
    netns.run_ok("iptables-nft", &["-A", "FORWARD", "-s", "10.98.0.0/16", "-j", "ACCEPT"], "");
}

/// Every ruleset of the namespace, without comments and counters. A legacy table that
/// holds nothing (its built-in chains only, empty, accepting) is left out: once touched, an
/// x_tables table stays registered in the namespace, and it carries no rule.
fn listing(netns: &Netns) -> String {
    let mut out = format!("== nft\n{}", normalized_text(&netns.run_ok("nft", &["list", "ruleset"], "")));
    for tool in ["iptables-legacy-save", "ip6tables-legacy-save"] {
        out.push_str(&format!("== {tool}\n"));
        let text = normalized_text(&netns.run_ok(tool, &[], ""));
        for table in text.split_inclusive("COMMIT\n").filter(|t| holds_something(t)) {
            out.push_str(table);
        }
    }
    out
}

fn normalized_text(text: &str) -> String {
    text.lines().filter(|l| !l.starts_with('#')).map(|l| normalized(l) + "\n").collect()
}

/// An `iptables-save` table with a rule, a chain of its own or a policy other than ACCEPT.
fn holds_something(table: &str) -> bool {
    table.lines().any(|l| l.starts_with("-A ") || (l.starts_with(':') && !l.contains(" ACCEPT ")))
}

/// `line` with its packet counters zeroed (`[12:720]`, `packets 12 bytes 720`).
fn normalized(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    let mut previous = "";
    for word in words {
        let counter = word.starts_with('[') && word.ends_with(']') && word.contains(':');
        let value = matches!(previous, "packets" | "bytes") && word.parse::<u64>().is_ok();
        out.push(if counter {
            "[0:0]"
        } else if value {
            "0"
        } else {
            word
        });
        previous = word;
    }
    out.join(" ")
}

fn cleanup_restores_the_listing(mode: &str) {
    let netns = Netns::create("kpcl", mode).expect("create a namespace");
    netns.run_ok("ip", &["link", "set", "lo", "up"], "");
    add_foreign_rules(&netns);
    let before = listing(&netns);
    let dir = TempDir::new(&format!("cleanup-{mode}"));
    std::fs::write(dir.0.join("objects.yaml"), MANIFESTS).expect("manifests");
    let manifests = dir.0.display().to_string();
    let mode_flag = format!("--mode={mode}");
    let args = [
        mode_flag.as_str(),
        "--manifests",
        &manifests,
        "--hostname-override=node1",
        "--cluster-cidr=10.244.0.0/16",
        "--healthz-bind-address=",
        "--metrics-bind-address=",
        "--ebpf-pin-path=",
    ];
    let child = in_netns(&netns, &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let daemon = Daemon(child.expect("start the daemon"));
    wait_for(&format!("{mode}: rules programmed"), || listing(&netns) != before);
    // Let the sync finish (every family), then stop as a crash would.
    std::thread::sleep(std::time::Duration::from_secs(1));
    drop(daemon);
    let cleanup = in_netns(&netns, &["--cleanup", "--ebpf-pin-path="]).output().expect("run kproxy --cleanup");
    assert!(cleanup.status.success(), "{mode}: {cleanup:?}");
    let after = listing(&netns);
    assert_eq!(after, before, "{mode}: the listing after --cleanup differs from the one before kproxy started");
}

#[test]
#[ignore = "packet test: needs root, ip, nft and iptables; run by cargo xtask test"]
fn cleanup_leaves_the_listing_it_found_in_every_netfilter_mode() {
    require(&[Tool::Ip, Tool::Nft, Tool::IptablesLegacy, Tool::IptablesNft]);
    for mode in ["nftables", "iptables", "userspace"] {
        cleanup_restores_the_listing(mode);
    }
}
