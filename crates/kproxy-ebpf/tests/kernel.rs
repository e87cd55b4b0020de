//! The programs against the running kernel: they pass the verifier, attach to a cgroup the
//! test creates, take map writes, and leave nothing behind. Needs root.

mod support;

use kproxy_core::Protocol;
use kproxy_ebpf::layout::{KpAddr, KpEndpointKey, KpService, KpServiceKey};
use kproxy_ebpf::{AyaKernel, EbpfConfig, Kernel};
use kproxy_testkit::prereq::{is_root, require};
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
