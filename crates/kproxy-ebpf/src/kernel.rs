//! The kernel side: loading the embedded object with aya, the real [`Maps`], attaching to
//! the cgroup and (through [`crate::tc_links`]) to interfaces, pinning links and maps, and
//! removing our pins.
//!
//! [`Kernel`] is the seam: [`AyaKernel`] does the work, tests use a fake. With a pin
//! directory on a bpf filesystem ([`crate::pins`]), loading opens the maps a previous
//! kproxy of the same version pinned (or creates and pins fresh ones), and attaching keeps
//! that kproxy's links when their programs use those maps: a restart replaces nothing. A
//! kproxy of another version attaches its programs next to the old links and only then
//! removes those and their maps (both run for a moment: the first rewrites, the second sees
//! an endpoint address and lets it be), so no restart has a gap.

use std::fs::File;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use aya::{Ebpf, EbpfLoader};

use aya::maps::lpm_trie::{Key as LpmKey, LpmTrie};

use crate::config::{EbpfConfig, MapSizes};
use crate::interfaces::{Interface, TcAttachment};
use crate::layout::{
    CFG_NETNS_FILTER, KpAddr, KpAffinity, KpAffinityKey, KpClientKey, KpConfig, KpCt, KpCtKey, KpEndpointKey,
    KpExternal, KpRangeKey, KpService, KpServiceKey,
};
use crate::maps::{Contents, Forgotten, InUse, MapError, Maps, Stale, doomed_flows, family_index};
use crate::pins::{self, MAP_NAMES};
use crate::tc_links::{self, TcLinks};

/// The compiled programs (`bpf/kproxy.c`, built by `build.rs`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/kproxy.o"));

/// Every program, by function name; each is also its pin's file name.
pub const PROGRAMS: [&str; 8] = [
    "kp_connect4",
    "kp_connect6",
    "kp_sendmsg4",
    "kp_sendmsg6",
    "kp_recvmsg4",
    "kp_recvmsg6",
    "kp_getpeername4",
    "kp_getpeername6",
];

/// A failure of the kernel side.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct KernelError {
    /// What was being done.
    pub step: &'static str,
    /// Why it failed.
    pub message: String,
    /// Trying again cannot help (a missing kernel feature, no permission).
    pub fatal: bool,
}

impl KernelError {
    pub(crate) fn fatal(step: &'static str, error: impl std::fmt::Display) -> Self {
        Self { step, message: error.to_string(), fatal: true }
    }

    pub(crate) fn transient(step: &'static str, error: impl std::fmt::Display) -> Self {
        Self { step, message: error.to_string(), fatal: false }
    }
}

/// `error` with its causes, `a: b: c`.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}

/// What the dataplane needs of the kernel.
pub trait Kernel: Send {
    /// Loads the programs and creates fresh maps; nothing is attached yet.
    fn load(&mut self) -> Result<Box<dyn Maps>, KernelError>;
    /// Attaches the loaded programs, replacing links a previous kproxy pinned.
    fn attach(&mut self) -> Result<(), KernelError>;
    /// The node's network interfaces (in the calling thread's namespace).
    fn interfaces(&self) -> Result<Vec<Interface>, KernelError>;
    /// Attaches the tc programs to exactly the interfaces of `attachment` (after
    /// [`Kernel::load`]); interfaces no longer listed lose theirs.
    fn attach_tc(&mut self, attachment: &TcAttachment) -> Result<(), KernelError>;
    /// Detaches and unpins everything of ours (also what a previous kproxy pinned).
    fn cleanup(&mut self) -> Result<(), KernelError>;
}

/// [`Kernel`] through aya.
pub struct AyaKernel {
    config: EbpfConfig,
    /// The version of our programs ([`pins::version`]).
    version: String,
    ebpf: Option<Ebpf>,
    /// The pin directory, when it is usable (decided at load).
    pin_dir: Option<PathBuf>,
    /// The ids of the loaded maps when they are pinned: a pinned link whose program uses
    /// one of them runs this version.
    map_ids: Option<Vec<u32>>,
    /// Links pinned by this process or kept from a previous one (closing them leaves them
    /// attached).
    pinned: Vec<PinnedLink>,
    /// The tc links.
    tc: TcLinks,
    /// The loader, made once with the kernel side: making one parses the kernel's BTF
    /// (20 MiB at its peak). Made before the daemon holds any state, that memory is reused
    /// for it; made at the first sync, it came on top of 10k services' state. The BTF
    /// itself is dropped at once: the programs use no CO-RE relocations.
    loader: EbpfLoader<'static>,
    /// The maps directory the loader's pin paths point into.
    loader_pins: Option<PathBuf>,
}

impl AyaKernel {
    /// A kernel side for `config`; nothing happens until [`Kernel::load`].
    pub fn new(config: EbpfConfig) -> Self {
        let version = pins::version(OBJECT, &config.map_sizes, &config.cgroup_path);
        let loader = loader(&config.map_sizes);
        Self {
            config,
            version,
            ebpf: None,
            pin_dir: None,
            map_ids: None,
            pinned: Vec::new(),
            tc: TcLinks::default(),
            loader,
            loader_pins: None,
        }
    }

    /// The version of the programs this kernel side loads ([`pins::version`]).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The directory for this load's maps, made if needed; `None` without a pin directory.
    fn maps_dir(&self) -> Option<PathBuf> {
        let dir = pins::maps_dir(self.pin_dir.as_deref()?, &self.version);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot pin maps; a restart starts with fresh maps");
                None
            }
        }
    }

    /// Whether every cgroup link pinned in `dir` runs our program on our maps.
    fn links_current(dir: &Path, map_ids: &[u32]) -> bool {
        PROGRAMS.iter().all(|name| {
            pins::linked_program(&dir.join(name)).is_some_and(|id| pins::program_matches(id, name, map_ids))
        })
    }
}

impl std::fmt::Debug for AyaKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AyaKernel")
            .field("config", &self.config)
            .field("version", &self.version)
            .field("loaded", &self.ebpf.is_some())
            .finish()
    }
}

/// Program `name` of `ebpf`, one of the cgroup socket-address programs.
fn sock_program<'e>(ebpf: &'e mut Ebpf, name: &str) -> Result<&'e mut CgroupSockAddr, KernelError> {
    ebpf.program_mut(name)
        .ok_or_else(|| KernelError::fatal("find program", name))?
        .try_into()
        .map_err(|e| KernelError::fatal("program type", e))
}

/// Map `name` of `ebpf`, taken out of it as its typed handle.
fn take_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M, KernelError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| KernelError::fatal("find map", name))?;
    M::try_from(map).map_err(|e| KernelError::fatal("map", e))
}

/// A loader for maps of `sizes`, without the kernel's BTF (see [`AyaKernel::loader`]).
fn loader(sizes: &MapSizes) -> EbpfLoader<'static> {
    let mut loader = EbpfLoader::new();
    loader
        .btf(None)
        .map_max_entries("kp_services", sizes.services)
        .map_max_entries("kp_endpoints", sizes.endpoints)
        .map_max_entries("kp_revnat", sizes.reverse_nat)
        .map_max_entries("kp_affinity", sizes.affinity)
        .map_max_entries("kp_external", sizes.services)
        .map_max_entries("kp_ranges", sizes.source_ranges)
        .map_max_entries("kp_conntrack", sizes.conntrack)
        .map_max_entries("kp_client_affinity", sizes.affinity);
    loader
}

impl Kernel for AyaKernel {
    fn load(&mut self) -> Result<Box<dyn Maps>, KernelError> {
        self.tc.clear(self.ebpf.as_mut());
        self.ebpf = None;
        self.pin_dir = self.config.pin_dir.as_deref().and_then(usable_pin_dir);
        let maps_dir = self.maps_dir();
        if self.loader_pins.is_some() && self.loader_pins != maps_dir {
            // Pin paths cannot be unset: a loader pinning elsewhere is made again.
            self.loader = loader(&self.config.map_sizes);
            self.loader_pins = None;
        }
        if let Some(dir) = &maps_dir {
            // A map pinned there already (same version) is opened instead of created.
            for name in MAP_NAMES {
                self.loader.map_pin_path(name, dir.join(name));
            }
            self.loader_pins = Some(dir.clone());
        }
        let mut ebpf = self.loader.load(OBJECT).map_err(|e| KernelError::fatal("load object", chain(&e)))?;
        self.map_ids = maps_dir.map(|dir| pins::map_ids(&dir)).filter(|ids| !ids.is_empty());
        for name in PROGRAMS {
            let program = sock_program(&mut ebpf, name)?;
            program.load().map_err(|e| KernelError::fatal("load program", format!("{name}: {}", chain(&e))))?;
        }
        tc_links::load(&mut ebpf)?;
        write_config(&mut ebpf, &self.config.netns_cookies)?;
        let services = take_map(&mut ebpf, "kp_services")?;
        let endpoints = take_map(&mut ebpf, "kp_endpoints")?;
        let external = take_map(&mut ebpf, "kp_external")?;
        let ranges = take_map(&mut ebpf, "kp_ranges")?;
        let conntrack = take_map(&mut ebpf, "kp_conntrack")?;
        let affinity = take_map(&mut ebpf, "kp_affinity")?;
        let client_affinity = take_map(&mut ebpf, "kp_client_affinity")?;
        self.ebpf = Some(ebpf);
        let sizes = self.config.map_sizes;
        let scan_limit = 2 * usize::try_from(sizes.conntrack.max(sizes.affinity)).unwrap_or(usize::MAX);
        Ok(Box::new(KernelMaps {
            services,
            endpoints,
            external,
            ranges,
            conntrack,
            affinity,
            client_affinity,
            scan_limit,
        }))
    }

    fn attach(&mut self) -> Result<(), KernelError> {
        let ebpf = self.ebpf.as_mut().ok_or_else(|| KernelError::transient("attach", "nothing loaded"))?;
        let pin_dir = self.pin_dir.clone();
        let current = match (&pin_dir, &self.map_ids) {
            (Some(dir), Some(ids)) => Self::links_current(dir, ids),
            _ => false,
        };
        if let Some(dir) = pin_dir.as_deref().filter(|_| current) {
            for name in PROGRAMS {
                let link = PinnedLink::from_pin(dir.join(name)).map_err(|e| KernelError::transient("open link", e))?;
                self.pinned.push(link);
            }
            tracing::info!(version = %self.version, "kept the programs a previous kproxy of this version attached");
        } else {
            let cgroup = File::open(&self.config.cgroup_path).map_err(|e| {
                KernelError::fatal("open cgroup", format!("{}: {e}", self.config.cgroup_path.display()))
            })?;
            for name in PROGRAMS {
                let program = sock_program(ebpf, name)?;
                // A bpf_link on a cgroup always runs next to other links (the kernel takes no
                // flags for it), which is what replacing a previous kproxy's links needs.
                let id = program
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .map_err(|e| KernelError::fatal("attach", format!("{name}: {}", chain(&e))))?;
                let Some(dir) = &pin_dir else { continue };
                let path = dir.join(name);
                unpin(&path)?;
                let link = program.take_link(id).map_err(|e| KernelError::transient("take link", e))?;
                let link = FdLink::try_from(link).map_err(|e| KernelError::transient("link", e))?;
                let pinned = link.pin(&path).map_err(|e| KernelError::transient("pin link", chain(&e)))?;
                self.pinned.push(pinned);
            }
        }
        if let Some(dir) = &pin_dir {
            // Maps of other versions: their programs are detached now (or go with their
            // process); ours stay.
            pins::remove_map_dirs(dir, self.map_ids.as_ref().map(|_| self.version.as_str()))?;
        }
        Ok(())
    }

    fn interfaces(&self) -> Result<Vec<Interface>, KernelError> {
        crate::interfaces::list().map_err(|e| KernelError::transient("list interfaces", e))
    }

    fn attach_tc(&mut self, attachment: &TcAttachment) -> Result<(), KernelError> {
        let ebpf = self.ebpf.as_mut().ok_or_else(|| KernelError::transient("attach tc", "nothing loaded"))?;
        self.tc.sync(ebpf, attachment, self.pin_dir.as_deref(), self.map_ids.as_deref())
    }

    fn cleanup(&mut self) -> Result<(), KernelError> {
        self.tc.clear(self.ebpf.as_mut());
        self.ebpf = None;
        for link in self.pinned.drain(..) {
            // Unpinned below by path, whoever pinned it.
            drop(link);
        }
        let Some(dir) = &self.config.pin_dir else { return Ok(()) };
        for name in PROGRAMS {
            unpin(&dir.join(name))?;
        }
        tc_links::unpin_all(dir)?;
        pins::remove_map_dirs(dir, None)?;
        match std::fs::remove_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(KernelError::transient("remove pin directory", format!("{}: {e}", dir.display()))),
        }
    }
}

/// The pin directory, made if needed; `None` (links and maps live with this process) when
/// it cannot be or is not on a bpf filesystem.
fn usable_pin_dir(dir: &Path) -> Option<PathBuf> {
    match std::fs::create_dir_all(dir) {
        Ok(()) if pins::on_bpffs(dir) => Some(dir.to_owned()),
        Ok(()) => {
            tracing::warn!(dir = %dir.display(), "not on a bpf filesystem: nothing pinned; a restart detaches the programs");
            None
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot pin links; a restart will detach the programs");
            None
        }
    }
}

/// Removes the link pinned at `path` (detaching it), if there is one.
pub(crate) fn unpin(path: &Path) -> Result<(), KernelError> {
    if !path.exists() {
        return Ok(());
    }
    let link = PinnedLink::from_pin(path).map_err(|e| KernelError::transient("open pinned link", e))?;
    link.unpin().map_err(|e| KernelError::transient("unpin link", e))?;
    Ok(())
}

/// Makes `kp_config` and `kp_netns` say `netns_cookies` (maps opened from pins may hold a
/// previous kproxy's list): cookies no longer listed go, listed ones are added, then the
/// switch is set.
fn write_config(ebpf: &mut Ebpf, netns_cookies: &[u64]) -> Result<(), KernelError> {
    let map = ebpf.map_mut("kp_netns").ok_or_else(|| KernelError::fatal("find map", "kp_netns"))?;
    let mut netns: HashMap<&mut MapData, u64, u32> =
        HashMap::try_from(map).map_err(|e| KernelError::fatal("map", e))?;
    let listed: Vec<u64> = netns.keys().filter_map(Result::ok).collect();
    for cookie in listed.iter().filter(|c| !netns_cookies.contains(c)) {
        removed(netns.remove(cookie), "kp_netns").map_err(|e| KernelError::transient("netns filter", e))?;
    }
    for cookie in netns_cookies {
        netns.insert(cookie, 1, 0).map_err(|e| KernelError::fatal("netns filter", e))?;
    }
    let flags = if netns_cookies.is_empty() { 0 } else { CFG_NETNS_FILTER };
    let map = ebpf.map_mut("kp_config").ok_or_else(|| KernelError::fatal("find map", "kp_config"))?;
    let mut config: Array<&mut MapData, KpConfig> = Array::try_from(map).map_err(|e| KernelError::fatal("map", e))?;
    config.set(0, KpConfig { flags, pad: 0 }, 0).map_err(|e| KernelError::fatal("config", e))
}

/// The real maps.
struct KernelMaps {
    services: HashMap<MapData, KpServiceKey, KpService>,
    endpoints: HashMap<MapData, KpEndpointKey, KpAddr>,
    external: HashMap<MapData, KpServiceKey, KpExternal>,
    ranges: LpmTrie<MapData, RangeData, u32>,
    conntrack: HashMap<MapData, KpCtKey, KpCt>,
    affinity: HashMap<MapData, KpAffinityKey, KpAffinity>,
    client_affinity: HashMap<MapData, KpClientKey, KpAffinity>,
    /// The most entries one read-through of an LRU map visits (the programs change them
    /// meanwhile, and a key evicted under the cursor restarts the kernel's walk).
    scan_limit: usize,
}

/// The keys of `map` whose entries `stale` says go (read first, deleted after).
fn doomed<K: aya::Pod, V: aya::Pod>(
    map: &HashMap<MapData, K, V>,
    limit: usize,
    stale: impl Fn(&K, &V) -> bool,
) -> Vec<K> {
    map.iter().take(limit).filter_map(Result::ok).filter(|(k, v)| stale(k, v)).map(|(k, _)| k).collect()
}

/// Removes `key` from `map` (named `name`); whether it was there.
fn delete<K: aya::Pod, V: aya::Pod>(
    map: &mut HashMap<MapData, K, V>,
    key: &K,
    name: &'static str,
) -> Result<bool, MapError> {
    match map.remove(key) {
        Ok(()) => Ok(true),
        Err(e) if absent(&e) => Ok(false),
        Err(e) => Err(map_error("remove", name, &e)),
    }
}

/// The part of [`KpRangeKey`] after the prefix length, as aya's LPM key carries it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RangeData {
    ranges_id: u32,
    addr: [u32; 4],
}

// SAFETY: `#[repr(C)]`, only integers, no padding (4 + 16 bytes, the tail of kp_range_key).
#[allow(unsafe_code, reason = "aya::Pod for an LPM key's data, as in layout.rs")]
unsafe impl aya::Pod for RangeData {}

fn lpm_key(key: &KpRangeKey) -> LpmKey<RangeData> {
    LpmKey::new(key.prefixlen, RangeData { ranges_id: key.ranges_id, addr: key.addr })
}

fn map_error(op: &'static str, map: &'static str, error: &aya::maps::MapError) -> MapError {
    MapError { op, map, message: error.to_string() }
}

/// Whether `error` says the key was not there.
fn absent(error: &aya::maps::MapError) -> bool {
    match error {
        aya::maps::MapError::KeyNotFound => true,
        aya::maps::MapError::SyscallError(e) => e.io_error.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// The outcome of removing a key from map `map`: a key that is already gone is no error.
fn removed(result: Result<(), aya::maps::MapError>, map: &'static str) -> Result<(), MapError> {
    match result {
        Err(e) if !absent(&e) => Err(map_error("remove", map, &e)),
        _ => Ok(()),
    }
}

impl Maps for KernelMaps {
    fn forget(&mut self, stale: &Stale, in_use: InUse<'_>) -> Result<Forgotten, MapError> {
        let mut forgotten = Forgotten::default();
        if !stale.endpoints.is_empty() {
            let entries = self.conntrack.iter().take(self.scan_limit).filter_map(Result::ok);
            let found = entries.filter_map(|(k, v)| stale.conntrack(&k, &v).map(|e| (k, e))).collect();
            for key in doomed_flows(found, in_use) {
                if delete(&mut self.conntrack, &key, "kp_conntrack")? {
                    forgotten.conntrack[family_index(key.family)] += 1;
                }
            }
        }
        if !stale.members.is_empty() || !stale.sets.is_empty() {
            for key in doomed(&self.affinity, self.scan_limit, |k, v| stale.affinity(k.service_id, v)) {
                forgotten.affinity += u64::from(delete(&mut self.affinity, &key, "kp_affinity")?);
            }
            for key in doomed(&self.client_affinity, self.scan_limit, |k, v| stale.affinity(k.service_id, v)) {
                forgotten.affinity += u64::from(delete(&mut self.client_affinity, &key, "kp_client_affinity")?);
            }
        }
        Ok(forgotten)
    }

    fn put_service(&mut self, key: &KpServiceKey, value: &KpService) -> Result<(), MapError> {
        self.services.insert(key, value, 0).map_err(|e| map_error("insert", "kp_services", &e))
    }

    fn delete_service(&mut self, key: &KpServiceKey) -> Result<(), MapError> {
        removed(self.services.remove(key), "kp_services")
    }

    fn put_endpoint(&mut self, key: &KpEndpointKey, value: &KpAddr) -> Result<(), MapError> {
        self.endpoints.insert(key, value, 0).map_err(|e| map_error("insert", "kp_endpoints", &e))
    }

    fn delete_endpoint(&mut self, key: &KpEndpointKey) -> Result<(), MapError> {
        removed(self.endpoints.remove(key), "kp_endpoints")
    }

    fn put_external(&mut self, key: &KpServiceKey, value: &KpExternal) -> Result<(), MapError> {
        self.external.insert(key, value, 0).map_err(|e| map_error("insert", "kp_external", &e))
    }

    fn delete_external(&mut self, key: &KpServiceKey) -> Result<(), MapError> {
        removed(self.external.remove(key), "kp_external")
    }

    fn put_range(&mut self, key: &KpRangeKey) -> Result<(), MapError> {
        self.ranges.insert(&lpm_key(key), 1, 0).map_err(|e| map_error("insert", "kp_ranges", &e))
    }

    fn delete_range(&mut self, key: &KpRangeKey) -> Result<(), MapError> {
        removed(self.ranges.remove(&lpm_key(key)), "kp_ranges")
    }

    fn contents(&self) -> Result<Contents, MapError> {
        let read = |map: &'static str| move |e: aya::maps::MapError| map_error("read", map, &e);
        let services = self.services.iter().collect::<Result<_, _>>().map_err(read("kp_services"))?;
        let external = self.external.iter().collect::<Result<_, _>>().map_err(read("kp_external"))?;
        let endpoints = self.endpoints.iter().collect::<Result<_, _>>().map_err(read("kp_endpoints"))?;
        let ranges = self
            .ranges
            .keys()
            .map(|key| {
                key.map(|key| {
                    let RangeData { ranges_id, addr } = key.data();
                    KpRangeKey { prefixlen: key.prefix_len(), ranges_id, addr }
                })
            })
            .collect::<Result<_, _>>()
            .map_err(read("kp_ranges"))?;
        Ok(Contents { services, external, endpoints, ranges })
    }
}
