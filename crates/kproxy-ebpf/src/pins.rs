//! What kproxy keeps on the bpf filesystem, under the pin directory (`--ebpf-pin-path`):
//!
//! - `<program>` (e.g. `kp_connect4`): the cgroup links, one per socket program;
//! - `tc-<interface>`: the tc links;
//! - `maps-<version>/<map>`: the maps of the programs of that version.
//!
//! The version is a hash of the embedded object, the map sizes and the cgroup the programs
//! attach to: what a new kproxy could not take over if it differed. A new kproxy of the same
//! version opens the maps its predecessor pinned (so the service entries, the reverse-NAT
//! entries of open sockets, affinity and the tc conntrack carry over) and keeps the links
//! whose programs use them: nothing is replaced. One of another version creates fresh maps
//! under its own version, attaches its programs next to the old links, and then unpins
//! those and the old maps (both run for an instant, so traffic never goes unbalanced).

use std::path::{Path, PathBuf};

use aya::programs::links::{FdLink, PinnedLink};

use crate::config::MapSizes;
use crate::kernel::KernelError;

/// Every map of the object, by name (each is also its pin's file name).
pub const MAP_NAMES: [&str; 10] = [
    "kp_services",
    "kp_endpoints",
    "kp_revnat",
    "kp_affinity",
    "kp_config",
    "kp_netns",
    "kp_external",
    "kp_ranges",
    "kp_conntrack",
    "kp_client_affinity",
];

/// Prefix of the maps directories.
const MAPS_PREFIX: &str = "maps-";

/// The version of programs built from `object` with `sizes`, attached to `cgroup`: 16 hex
/// digits of a 64-bit FNV-1a hash (stable across builds and Rust versions).
pub fn version(object: &[u8], sizes: &MapSizes, cgroup: &Path) -> String {
    let mut hash = Fnv::new();
    hash.write(object);
    let MapSizes { services, endpoints, reverse_nat, affinity, conntrack, source_ranges } = *sizes;
    for size in [services, endpoints, reverse_nat, affinity, conntrack, source_ranges] {
        hash.write(&size.to_le_bytes());
    }
    hash.write(cgroup.as_os_str().as_encoded_bytes());
    format!("{:016x}", hash.0)
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The directory of the maps of `version` under `pin_dir`.
pub fn maps_dir(pin_dir: &Path, version: &str) -> PathBuf {
    pin_dir.join(format!("{MAPS_PREFIX}{version}"))
}

/// Whether `dir` is on a bpf filesystem (pins can live there).
pub fn on_bpffs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir).is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::BPF_FS_MAGIC)
}

/// Unpins the maps of every version but `keep` (`None`: all). Programs still running
/// keep their maps; the maps go when the last of those does.
pub fn remove_map_dirs(pin_dir: &Path, keep: Option<&str>) -> Result<(), KernelError> {
    let Ok(entries) = std::fs::read_dir(pin_dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(version) = name.to_str().and_then(|n| n.strip_prefix(MAPS_PREFIX)) else { continue };
        if Some(version) == keep {
            continue;
        }
        std::fs::remove_dir_all(entry.path())
            .map_err(|e| KernelError::transient("remove old maps", format!("{}: {e}", entry.path().display())))?;
    }
    Ok(())
}

/// The id of the program the link pinned at `path` runs, if there is such a link.
pub fn linked_program(path: &Path) -> Option<u32> {
    let link: FdLink = PinnedLink::from_pin(path).ok()?.into();
    link.info().ok().map(|info| info.program_id())
}

/// Whether program `id` is called `name` and uses one of the maps `map_ids`.
pub fn program_matches(id: u32, name: &str, map_ids: &[u32]) -> bool {
    aya::programs::loaded_programs().flatten().any(|info| info.id() == id && uses(&info, name, map_ids))
}

/// Whether `info` is called `name` and uses one of the maps `map_ids` (every program uses
/// some of the maps; a map directory belongs to one version).
pub fn uses(info: &aya::programs::ProgramInfo, name: &str, map_ids: &[u32]) -> bool {
    let used = info.map_ids().ok().flatten().unwrap_or_default();
    info.name_as_str() == Some(name) && used.iter().any(|id| map_ids.contains(id))
}

/// The ids of the maps pinned in `dir`.
pub fn map_ids(dir: &Path) -> Vec<u32> {
    MAP_NAMES.iter().filter_map(|name| aya::maps::MapInfo::from_pin(dir.join(name)).ok()).map(|i| i.id()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_follows_the_object_the_map_sizes_and_the_cgroup() {
        let sizes = MapSizes::default();
        let cgroup = Path::new("/sys/fs/cgroup");
        let base = version(b"object", &sizes, cgroup);
        assert_eq!(base.len(), 16);
        assert_eq!(base, version(b"object", &sizes, cgroup), "stable");
        assert_ne!(base, version(b"object2", &sizes, cgroup));
        assert_ne!(base, version(b"object", &MapSizes { conntrack: 1, ..sizes }, cgroup));
        assert_ne!(base, version(b"object", &sizes, Path::new("/sys/fs/cgroup/kubepods")));
    }

    #[test]
    fn only_other_versions_maps_are_removed() {
        let dir = std::env::temp_dir().join(format!("kproxy-ebpf-pins-{}", std::process::id()));
        for name in ["maps-aaaa", "maps-bbbb", "kp_connect4"] {
            std::fs::create_dir_all(dir.join(name).join("inner")).unwrap();
        }
        remove_map_dirs(&dir, Some("bbbb")).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["kp_connect4", "maps-bbbb"]);
        remove_map_dirs(&dir, None).unwrap();
        assert!(!dir.join("maps-bbbb").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
