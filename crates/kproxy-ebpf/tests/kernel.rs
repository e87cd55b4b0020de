//! The programs against the running kernel: they pass the verifier, attach to a cgroup and
//! to interfaces of a namespace the test creates, take map writes, and leave nothing
//! behind. Needs root.

mod support;

use aya::programs::{SchedClassifier, TcAttachType};
use kproxy_core::Protocol;
use kproxy_ebpf::interfaces::{TcAttachment, choose};
use kproxy_ebpf::layout::{KpAddr, KpEndpointKey, KpService, KpServiceKey};
use kproxy_ebpf::{AyaKernel, EbpfConfig, Kernel};
use kproxy_testkit::prereq::{Tool, is_root, require};
use support::TestCgroup;

#[test]
#[ignore = "packet test: needs root and a cgroup2 mount; run by cargo xtask test"]
fn programs_load_attach_and_detach_in_a_test_cgroup() {
    require(&[]);
    assert!(is_root(), "needs root");
    let cgroup = TestCgroup::create("load");
    let config = EbpfConfig { cgroup_path: cgroup.path().to_owned(), pin_dir: None, ..EbpfConfig::default() };
    let mut kernel = AyaKernel::new(config);
    let mut maps = kernel.load().expect("the verifier accepts every program");
    let key = KpServiceKey::new("172.30.0.1".parse().unwrap(), 80, Protocol::Tcp);
    maps.put_endpoint(&KpEndpointKey { service_id: 1, slot: 0 }, &KpAddr::new("10.0.1.10:8080".parse().unwrap()))
        .unwrap();
    maps.put_service(&key, &KpService { id: 1, count: 1, flags: 0, affinity_secs: 0 }).unwrap();
    maps.delete_service(&key).unwrap();
    maps.delete_service(&key).expect("removing an absent key succeeds");
    kernel.attach().expect("attach to the test cgroup");
    kernel.cleanup().expect("cleanup");
}

/// A network namespace `kpt<pid>-tc` with a veth pair `kpt0` (holding 192.0.2.1) and
/// `kpt1`; deleted on drop.
struct TcNamespace(String);

impl TcNamespace {
    fn create() -> Self {
        let name = format!("kpt{}-tc", std::process::id());
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip").args(args).status().expect("run ip");
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let namespace = Self(name.clone());
        ip(&["-n", &name, "link", "add", "kpt0", "type", "veth", "peer", "name", "kpt1"]);
        ip(&["-n", &name, "addr", "add", "192.0.2.1/24", "dev", "kpt0"]);
        namespace
    }
}

impl Drop for TcNamespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// How many tcx programs run on `dev`'s ingress.
fn tcx_programs(dev: &str) -> usize {
    SchedClassifier::query_tcx(dev, TcAttachType::Ingress).map(|(_, programs)| programs.len()).unwrap_or(0)
}

#[test]
#[ignore = "packet test: needs root and ip; run by cargo xtask test"]
fn tc_programs_attach_to_the_chosen_interfaces_follow_changes_and_detach() {
    require(&[Tool::Ip]);
    assert!(is_root(), "needs root");
    let namespace = TcNamespace::create();
    let file = std::fs::File::open(format!("/run/netns/{}", namespace.0)).expect("open netns");
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let config = EbpfConfig { pin_dir: None, ..EbpfConfig::default() };
        let mut kernel = AyaKernel::new(config);
        let _maps = kernel.load().expect("the verifier accepts the tc programs");
        let present = kernel.interfaces().expect("list interfaces");
        let attachment = choose(&[], &["192.0.2.1".parse().unwrap()], &present);
        assert_eq!(attachment, TcAttachment { external: vec!["kpt0".into()], pod_side: vec!["kpt1".into()] });
        kernel.attach_tc(&attachment).expect("attach");
        kernel.attach_tc(&attachment).expect("attaching again changes nothing");
        assert_eq!((tcx_programs("kpt0"), tcx_programs("kpt1")), (1, 1));
        kernel.attach_tc(&TcAttachment { pod_side: Vec::new(), ..attachment }).expect("shrink");
        assert_eq!((tcx_programs("kpt0"), tcx_programs("kpt1")), (1, 0), "an interface no longer chosen is detached");
        kernel.cleanup().expect("cleanup");
        assert_eq!(tcx_programs("kpt0"), 0, "cleanup detaches");
    })
    .join()
    .expect("the test thread");
}
