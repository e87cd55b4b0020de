//! How the eBPF dataplane is set up.

use std::path::{Path, PathBuf};

use kproxy_core::NodePortAddresses;

/// Where kproxy pins its links and maps by default (see [`crate::pins`]).
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/kproxy";

/// Entries of each map (the kernel allocates hash maps as they fill, LRU maps up front).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSizes {
    /// Service addresses (ClusterIPs, external IPs, LB IPs, node ports × node addresses).
    pub services: u32,
    /// Endpoint slots over every endpoint set.
    pub endpoints: u32,
    /// Sockets whose peer shows as the service address (LRU).
    pub reverse_nat: u32,
    /// Clients with session affinity (LRU), per kind (node clients, clients outside).
    pub affinity: u32,
    /// Tracked flows from outside the node, two entries each (LRU).
    pub conntrack: u32,
    /// Source ranges over every load-balancer service.
    pub source_ranges: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        Self {
            services: 65_536,
            endpoints: 262_144,
            reverse_nat: 65_536,
            affinity: 65_536,
            conntrack: 131_072,
            source_ranges: 16_384,
        }
    }
}

impl MapSizes {
    /// How `--ebpf-map-sizes` names the size of map `map` (`kp_endpoints`: `endpoints`).
    pub fn flag_name(map: &str) -> Option<&'static str> {
        Some(match map {
            "kp_services" | "kp_external" => "services",
            "kp_endpoints" => "endpoints",
            "kp_revnat" => "reverse-nat",
            "kp_affinity" | "kp_client_affinity" => "affinity",
            "kp_conntrack" => "conntrack",
            "kp_ranges" => "source-ranges",
            _ => return None,
        })
    }
}

/// The eBPF dataplane's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbpfConfig {
    /// The cgroup (v2) whose processes are balanced, with every cgroup below it.
    pub cgroup_path: PathBuf,
    /// Where links and maps are pinned so a restart keeps traffic flowing (on a bpf
    /// filesystem); `None`: not pinned (the programs detach when kproxy exits).
    pub pin_dir: Option<PathBuf>,
    /// Map sizes.
    pub map_sizes: MapSizes,
    /// Which of the node's addresses balance node ports (`--nodeport-addresses`: all, those
    /// inside CIDRs, or the Node's primary IPs, taken from the Node at every sync).
    pub nodeport_addresses: NodePortAddresses,
    /// The external interfaces, where traffic from outside the node is balanced by the tc
    /// programs (`--ebpf-interfaces`); empty: the interfaces holding the node's addresses.
    pub interfaces: Vec<String>,
    /// Whether to attach the tc programs at all (traffic from outside the node).
    pub tc: bool,
    /// Balance only sockets of these network namespaces (netns cookies, see
    /// [`netns_cookie`](crate::netns_cookie); `--ebpf-netns`); empty: all. For hosts that
    /// run several nodes on one kernel, and tests whose clients share the cgroup.
    pub netns_cookies: Vec<u64>,
}

impl Default for EbpfConfig {
    fn default() -> Self {
        Self {
            cgroup_path: cgroup2_root().unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")),
            pin_dir: Some(PathBuf::from(DEFAULT_PIN_DIR)),
            map_sizes: MapSizes::default(),
            nodeport_addresses: NodePortAddresses::All,
            interfaces: Vec::new(),
            tc: true,
            netns_cookies: Vec::new(),
        }
    }
}

/// The mount point of the cgroup v2 hierarchy (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on hybrid hosts), from `/proc/mounts`.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    cgroup2_root_in(&mounts)
}

/// [`cgroup2_root`] of a `/proc/mounts` text: the first `cgroup2` mount.
pub fn cgroup2_root_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, mount_point, fs_type) = (fields.next()?, fields.next()?, fields.next()?);
        (fs_type == "cgroup2").then(|| Path::new(&unescape(mount_point)).to_owned())
    })
}

/// `/proc/mounts` writes spaces, tabs and backslashes as octal escapes.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_on_hybrid_and_unified_hosts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(cgroup2_root_in(hybrid), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        let unified = "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(cgroup2_root_in(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup2_root_in("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"), None);
        assert_eq!(cgroup2_root_in("none /mnt/my\\040cg cgroup2 rw 0 0\n"), Some(PathBuf::from("/mnt/my cg")));
    }
}
