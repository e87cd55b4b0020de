//! Restarts without a traffic gap, and the deletion of stale entries, against the running
//! kernel: links and maps pinned on a bpf filesystem of the test's own (see
//! `support/bpffs.rs`), a client in a cgroup the test creates (`kpeb-<pid>-<test>`),
//! endpoints and the tc programs in a network namespace it creates (`kpeb<pid>-<test>`).
//! Needs root.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aya::maps::{HashMap, Map, MapData};
use kproxy_core::{Changes, Dataplane, Endpoint, IpFamily, NamespacedName, Protocol, ProxyState};
use kproxy_core::{ServicePort, ServicePortName, SessionAffinity};
use kproxy_ebpf::layout::{KpAddr, KpAffinity, KpAffinityKey, KpCt, KpCtKey};
use kproxy_ebpf::{AyaKernel, EbpfConfig, EbpfDataplane, MapSizes, pins};
use kproxy_testkit::prereq::{Tool, is_root, require};
use support::TestCgroup;
use support::bpffs::{BpfMount, in_private_mount_namespace};

/// The service's ClusterIP and port.
const VIP: &str = "172.30.0.1:80";
/// The node's address (on the namespace's external interface).
const NODE: &str = "192.0.2.1";
/// Two endpoints, answering with their names.
const ENDPOINTS: [(&str, &str); 2] = [("192.0.2.10", "a"), ("192.0.2.11", "b")];

/// A network namespace `kpeb<pid>-<tag>` with a veth pair, `kpeb0` holding the node's and
/// the endpoints' addresses (the external interface) and `kpeb1` (the pods' side); deleted
/// on drop.
struct Namespace(String);

impl Namespace {
    fn create(tag: &str) -> Self {
        let name = format!("kpeb{}-{tag}", std::process::id());
        let ip = |args: &[&str]| {
            let status = Command::new("ip").args(args).status().expect("run ip");
            assert!(status.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let namespace = Self(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        ip(&["-n", &name, "link", "add", "kpeb0", "type", "veth", "peer", "name", "kpeb1"]);
        ip(&["-n", &name, "link", "set", "kpeb0", "up"]);
        ip(&["-n", &name, "link", "set", "kpeb1", "up"]);
        for address in [NODE].into_iter().chain(ENDPOINTS.map(|(ip, _)| ip)) {
            ip(&["-n", &name, "addr", "add", &format!("{address}/32"), "dev", "kpeb0"]);
        }
        namespace
    }

    /// Runs `body` on a thread inside the namespace.
    fn run(&self, body: impl FnOnce() + Send + 'static) {
        let file = std::fs::File::open(format!("/run/netns/{}", self.0)).expect("open netns");
        std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            body();
        })
        .join()
        .expect("the test thread");
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Serves each endpoint: every line a client sends is answered with the endpoint's name.
fn serve_endpoints() {
    for (ip, name) in ENDPOINTS {
        let listener = TcpListener::bind((ip, 8080)).expect("bind an endpoint");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().expect("clone");
                    for line in BufReader::new(stream).lines() {
                        if line.is_err() || writeln!(writer, "{name}").is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
}

/// A client connection.
struct Conn(BufReader<TcpStream>);

impl Conn {
    fn open(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr.parse().expect("address"), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(Self(BufReader::new(stream)))
    }

    /// Which endpoint answers.
    fn ask(&mut self) -> String {
        writeln!(self.0.get_mut(), "who").expect("send");
        let mut line = String::new();
        self.0.read_line(&mut line).expect("an answer");
        line.trim().to_owned()
    }

    /// The peer as the application sees it.
    fn peer(&self) -> SocketAddr {
        self.0.get_ref().peer_addr().expect("getpeername")
    }
}

/// The endpoint a new connection to the service reaches.
fn reached() -> String {
    Conn::open(VIP).expect("connect to the service").ask()
}

/// The service's port name.
fn web() -> ServicePortName {
    ServicePortName::new(NamespacedName::new("ns", "web"), "http", Protocol::Tcp)
}

/// The service on endpoint `endpoint`, the node holding [`NODE`].
fn state(endpoint: &str) -> ProxyState {
    service_on(&[endpoint], SessionAffinity::None)
}

/// The service on `endpoints` with `affinity`, the node holding [`NODE`].
fn service_on(endpoints: &[&str], affinity: SessionAffinity) -> ProxyState {
    let mut state = ProxyState::new("node1");
    state.node.addresses = vec![NODE.parse().expect("address")];
    let vip: SocketAddr = VIP.parse().expect("address");
    let v4 = state.family_mut(IpFamily::V4);
    let port = ServicePort { session_affinity: affinity, ..ServicePort::new(vip.ip(), vip.port(), Protocol::Tcp) };
    v4.services.insert(web(), port);
    let endpoints = endpoints.iter().map(|e| Endpoint::new(e.parse::<IpAddr>().expect("address"), 8080)).collect();
    v4.endpoints.insert(web(), endpoints);
    state
}

/// The program every pinned link runs, by pin name.
fn linked_programs(pin_dir: &Path) -> BTreeMap<String, u32> {
    let entries = std::fs::read_dir(pin_dir).expect("read the pin directory");
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            pins::linked_program(&e.path()).map(|id| (name, id))
        })
        .collect()
}

/// The maps directories in `pin_dir`.
fn map_dirs(pin_dir: &Path) -> Vec<String> {
    let entries = std::fs::read_dir(pin_dir).expect("read the pin directory");
    entries.flatten().filter_map(|e| e.file_name().into_string().ok()).filter(|n| n.starts_with("maps-")).collect()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(future)
}

fn synced(config: &EbpfConfig, state: &ProxyState) -> EbpfDataplane {
    let mut dataplane = EbpfDataplane::new(config.clone());
    block_on(dataplane.sync(state, &Changes::full_sync())).expect("sync");
    dataplane
}

#[test]
#[ignore = "packet test: needs root, ip, unshare and a cgroup2 mount; run by cargo xtask test"]
fn a_restart_keeps_connections_and_balancing_and_replaces_programs_only_for_a_new_version() {
    require(&[Tool::Ip]);
    assert!(is_root(), "needs root");
    if !in_private_mount_namespace(
        "a_restart_keeps_connections_and_balancing_and_replaces_programs_only_for_a_new_version",
    ) {
        return;
    }
    let bpffs = BpfMount::create("restart");
    let namespace = Namespace::create("restart");
    let mut cgroup = TestCgroup::named(&format!("kpeb-{}-restart", std::process::id()));
    let pin_dir = bpffs.path().join("kproxy");
    let config =
        EbpfConfig { cgroup_path: cgroup.path().to_owned(), pin_dir: Some(pin_dir.clone()), ..Default::default() };
    cgroup.enter();
    namespace.run(move || {
        serve_endpoints();
        let first = synced(&config, &state("192.0.2.10"));
        let mut held = Conn::open(VIP).expect("connect to the service");
        assert_eq!(held.ask(), "a");
        assert_eq!(held.peer(), VIP.parse().expect("address"), "getpeername shows the service");
        let programs = linked_programs(&pin_dir);
        let tc = programs.contains_key("tc-kpeb0") && programs.contains_key("tc-kpeb1");
        assert!(programs.len() == 10 && tc, "8 cgroup links and two tc links: {programs:?}");

        drop(first);
        assert_eq!(reached(), "a", "with no kproxy running, the pinned programs keep balancing");

        let second = synced(&config, &state("192.0.2.11"));
        assert_eq!(reached(), "b", "new connections reach the new endpoint at once");
        assert_eq!(held.ask(), "a", "the connection made before the restart still works");
        assert_eq!(held.peer(), VIP.parse().expect("address"), "and still shows the service (the maps were kept)");
        assert_eq!(linked_programs(&pin_dir), programs, "the same version replaces no program");
        assert_eq!(map_dirs(&pin_dir).len(), 1);
        drop(second);

        // Other map sizes: another version.
        let sizes = MapSizes { conntrack: 65_536, ..MapSizes::default() };
        let newer = EbpfConfig { map_sizes: sizes, ..config.clone() };
        let third = synced(&newer, &state("192.0.2.11"));
        assert_eq!(reached(), "b");
        assert_eq!(held.ask(), "a", "a new version leaves established connections alone");
        let replaced = linked_programs(&pin_dir);
        assert_eq!(replaced.len(), 10, "{replaced:?}");
        assert!(replaced.iter().all(|(pin, id)| programs[pin] != *id), "a new version replaces every program");
        let version = AyaKernel::new(newer.clone()).version().to_owned();
        assert_eq!(map_dirs(&pin_dir), [format!("maps-{version}")], "the old version's maps are unpinned");
        drop(third);

        // What `kproxy --cleanup` does: a dataplane that loaded nothing removes every pin.
        block_on(EbpfDataplane::new(newer).cleanup()).expect("cleanup");
        assert!(!pin_dir.exists(), "cleanup removes every pin and the directory");
        assert!(Conn::open(VIP).is_err(), "nothing balances the service any more");
        assert_eq!(held.ask(), "a", "established connections stay");
    });
    drop(cgroup);
    drop(namespace);
    drop(bpffs);
}

/// The map `name` pinned in `dir`.
fn pinned<K: aya::Pod, V: aya::Pod>(dir: &Path, name: &str) -> HashMap<MapData, K, V> {
    let data = MapData::from_pin(dir.join(name)).expect("open a pinned map");
    HashMap::try_from(Map::from_map_data(data).expect("map")).expect("a hash map")
}

/// The conntrack key of a packet from `from` to `to`.
fn tuple(from: KpAddr, to: KpAddr) -> KpCtKey {
    KpCtKey { saddr: from.addr, daddr: to.addr, sport: from.port, dport: to.port, proto: 6, family: 4, pad: 0 }
}

/// Both directions of a flow from outside to the service, as `kp_tc_ingress` records it.
fn track(conntrack: &mut HashMap<MapData, KpCtKey, KpCt>, client: &str, endpoint: KpAddr) {
    let (client, vip) = (KpAddr::new(client.parse().expect("address")), KpAddr::new(VIP.parse().expect("address")));
    conntrack.insert(tuple(client, vip), KpCt { src: client, dst: endpoint }, 0).expect("insert");
    conntrack.insert(tuple(endpoint, client), KpCt { src: vip, dst: client }, 0).expect("insert");
}

#[test]
#[ignore = "packet test: needs root, ip, unshare and a cgroup2 mount; run by cargo xtask test"]
fn a_removed_endpoint_loses_its_affinity_and_conntrack_entries_in_the_kernel() {
    require(&[Tool::Ip]);
    assert!(is_root(), "needs root");
    if !in_private_mount_namespace("a_removed_endpoint_loses_its_affinity_and_conntrack_entries_in_the_kernel") {
        return;
    }
    let bpffs = BpfMount::create("stale");
    let namespace = Namespace::create("stale");
    let mut cgroup = TestCgroup::named(&format!("kpeb-{}-stale", std::process::id()));
    let pin_dir = bpffs.path().join("kproxy");
    let config =
        EbpfConfig { cgroup_path: cgroup.path().to_owned(), pin_dir: Some(pin_dir.clone()), ..Default::default() };
    let maps_dir = pins::maps_dir(&pin_dir, AyaKernel::new(config.clone()).version());
    cgroup.enter();
    namespace.run(move || {
        serve_endpoints();
        let affinity = SessionAffinity::ClientIp { timeout_seconds: 600 };
        let both = ENDPOINTS.map(|(ip, _)| ip);
        let mut dataplane = synced(&config, &service_on(&both, affinity));
        let chosen = reached();
        assert_eq!(reached(), chosen, "ClientIP affinity holds");
        let (gone, kept) = match ENDPOINTS.iter().position(|(_, name)| *name == chosen) {
            Some(0) => (ENDPOINTS[0], ENDPOINTS[1]),
            _ => (ENDPOINTS[1], ENDPOINTS[0]),
        };
        let endpoint = |ip: &str| KpAddr::new(SocketAddr::new(ip.parse().unwrap(), 8080));
        let affine: HashMap<MapData, KpAffinityKey, KpAffinity> = pinned(&maps_dir, "kp_affinity");
        let targets = |map: &HashMap<MapData, KpAffinityKey, KpAffinity>| -> Vec<KpAddr> {
            map.iter().flatten().map(|(_, v)| v.endpoint).collect()
        };
        assert_eq!(targets(&affine), [endpoint(gone.0)], "the connect made an affinity entry");
        let mut conntrack: HashMap<MapData, KpCtKey, KpCt> = pinned(&maps_dir, "kp_conntrack");
        track(&mut conntrack, "198.51.100.1:40000", endpoint(gone.0));
        track(&mut conntrack, "198.51.100.2:40000", endpoint(kept.0));

        let mut changes = Changes::default();
        changes.family_mut(IpFamily::V4).service_ports.insert(web());
        block_on(dataplane.sync(&service_on(&[kept.0], affinity), &changes)).expect("sync");
        assert!(targets(&affine).is_empty(), "the affinity entry to the removed endpoint is gone");
        let flows: Vec<(KpCtKey, KpCt)> = conntrack.iter().flatten().collect();
        assert_eq!(flows.len(), 2, "only the flow to the remaining endpoint is left: {flows:?}");
        let to_gone = |(k, v): &(KpCtKey, KpCt)| v.dst == endpoint(gone.0) || k.saddr == endpoint(gone.0).addr;
        assert!(!flows.iter().any(to_gone), "{flows:?}");
        assert_eq!(reached(), kept.1, "new connections reach the remaining endpoint");
        block_on(dataplane.cleanup()).expect("cleanup");
    });
    drop(cgroup);
    drop(namespace);
    drop(bpffs);
}
