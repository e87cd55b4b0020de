//! nfnetlink against a real kernel, in a network namespace each test creates: ctnetlink
//! (UDP flows DNATed there are dumped and the stale ones deleted, the others kept) and
//! nfacct (counters created once, fed by an iptables rule, read back). Packet tests: they
//! need root, `ip`, `nft` or iptables, so a plain `cargo test` ignores them; `cargo xtask
//! test` runs them.

use std::net::UdpSocket;
use std::process::Command;

use kproxy_core::IpFamily;
use kproxy_netfilter::{
    Conntrack, FlowFilter, LOCALHOST_NODEPORTS_ACCEPTED, NetlinkConntrack, NetlinkNfacct, Nfacct, named_counter_packets,
};
use kproxy_testkit::prereq::{Tool, require};

/// A namespace named after this process, deleted on drop (also on panic).
struct Netns(String);

impl Netns {
    fn create(prefix: &str) -> Self {
        let name = format!("{prefix}-{}", std::process::id());
        run("ip", &["netns", "add", &name], "");
        let netns = Self(name);
        netns.exec("ip", &["link", "set", "lo", "up"], "");
        netns.exec("ip", &["addr", "add", "172.30.0.10/32", "dev", "lo"], "");
        netns.exec("ip", &["addr", "add", "172.30.0.11/32", "dev", "lo"], "");
        netns
    }

    fn exec(&self, program: &str, args: &[&str], input: &str) {
        let mut full = vec!["netns", "exec", self.0.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full, input);
    }

    /// Sends one UDP datagram from inside the namespace (a thread that enters it).
    fn send_udp(&self, to: &str, from_port: u16) {
        let path = format!("/var/run/netns/{}", self.0);
        let to = to.to_owned();
        std::thread::spawn(move || {
            let file = std::fs::File::open(path).expect("namespace file");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let socket = UdpSocket::bind(("0.0.0.0", from_port)).expect("bind");
            socket.send_to(b"ping", to.as_str()).expect("send");
        })
        .join()
        .expect("sender thread");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(program: &str, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const RULES: &str = "table ip kpct {
    chain output {
        type nat hook output priority -100;
        ip daddr 172.30.0.10 udp dport 53 dnat to 127.0.0.2:8053
        ip daddr 172.30.0.11 udp dport 53 dnat to 127.0.0.3:8053
    }
}
";

#[tokio::test]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn stale_udp_flows_are_deleted_over_netlink_and_others_kept() {
    require(&[Tool::Ip, Tool::Nft]);
    let netns = Netns::create("kpct");
    netns.exec("nft", &["-f", "-"], RULES);
    netns.send_udp("172.30.0.10:53", 40001);
    netns.send_udp("172.30.0.10:53", 40002);
    netns.send_udp("172.30.0.11:53", 40003);
    let conntrack = NetlinkConntrack::new(Some(netns.0.clone()));
    let before = conntrack.udp_flows().await.expect("dump");
    let to = |vip: &str, endpoint: &str| {
        before.iter().filter(|f| f.original.dst.to_string() == vip && f.reply.src.to_string() == endpoint).count()
    };
    assert_eq!((to("172.30.0.10", "127.0.0.2"), to("172.30.0.11", "127.0.0.3")), (2, 1), "{before:?}");
    let stale =
        FlowFilter { service: Some("172.30.0.10".parse().unwrap()), port: 53, endpoint: "127.0.0.2".parse().unwrap() };
    assert_eq!(conntrack.delete_udp_flows(&stale).await.expect("delete"), 2, "both stale flows deleted");
    let after = conntrack.udp_flows().await.expect("dump");
    assert!(!after.iter().any(|f| f.matches(&stale)), "stale flows remain: {after:?}");
    assert_eq!(after.iter().filter(|f| f.reply.src.to_string() == "127.0.0.3").count(), 1, "the other flow is kept");
    // Deleting what is already gone is no error, and deletes nothing.
    assert_eq!(conntrack.delete_udp_flows(&stale).await.expect("delete again"), 0);
}

#[tokio::test]
#[ignore = "packet test: needs root, ip and iptables-legacy; run by cargo xtask test"]
async fn nfacct_counters_are_created_once_and_count_what_a_rule_matches() {
    require(&[Tool::Ip, Tool::IptablesLegacy]);
    let netns = Netns::create("kpna");
    let nfacct = NetlinkNfacct::new(Some(netns.0.clone()));
    assert_eq!(nfacct.packets(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("get"), None, "not there yet");
    nfacct.ensure(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("create");
    assert_eq!(nfacct.packets(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("get"), Some(0));
    let rule =
        ["-A", "OUTPUT", "-p", "udp", "--dport", "53", "-m", "nfacct", "--nfacct-name", LOCALHOST_NODEPORTS_ACCEPTED];
    netns.exec("iptables-legacy", &rule, "");
    netns.send_udp("172.30.0.10:53", 40001);
    netns.send_udp("172.30.0.10:53", 40002);
    netns.send_udp("172.30.0.10:54", 40003);
    assert_eq!(nfacct.packets(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("get"), Some(2), "the rule's packets");
    nfacct.ensure(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("ensure again");
    assert_eq!(nfacct.packets(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("get"), Some(2), "ensuring keeps the count");
    assert!(!nfacct.delete(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("delete"), "a rule still uses it");
    netns.exec("iptables-legacy", &["-F", "OUTPUT"], "");
    assert!(nfacct.delete(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("delete"));
    assert_eq!(nfacct.packets(LOCALHOST_NODEPORTS_ACCEPTED).await.expect("get"), None, "gone");
}

#[tokio::test]
#[ignore = "packet test: needs root, ip and nft; run by cargo xtask test"]
async fn a_named_nft_counter_is_read_without_listing_the_ruleset() {
    require(&[Tool::Ip, Tool::Nft]);
    let netns = Netns::create("kpnc");
    let table = "table ip kpnc {\n\tcounter dns {\n\t}\n\tchain output {\n\t\ttype filter hook output priority 0;\n\t\tudp dport 53 counter name dns\n\t}\n}\n";
    netns.exec("nft", &["-f", "-"], table);
    let read = |name: &'static str, family| named_counter_packets(Some(netns.0.clone()), family, "kpnc", name);
    assert_eq!(read("dns", IpFamily::V4).await.expect("get"), Some(0));
    netns.send_udp("172.30.0.10:53", 40001);
    netns.send_udp("172.30.0.10:53", 40002);
    assert_eq!(read("dns", IpFamily::V4).await.expect("get"), Some(2));
    assert_eq!(read("other", IpFamily::V4).await.expect("get"), None, "no such counter");
    assert_eq!(read("dns", IpFamily::V6).await.expect("get"), None, "no such table in ip6");
}
