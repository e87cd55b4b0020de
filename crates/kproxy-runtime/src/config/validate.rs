//! Validation: a merged [`PartialConfig`] becomes an immutable [`ProxyConfig`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
pub use kproxy_core::InterfaceName;

use super::conntrack::ConntrackConfig;
use super::duration::parse_go_duration;
use super::ebpf_maps::EbpfMapSizes;
use super::layers::PartialConfig;

/// A configuration that cannot be used. The daemon prints it and exits with status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that is not valid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The `--config` file cannot be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The mode exists but this binary was built without it.
    #[error("mode {mode:?} was not compiled into this kproxy (build with cargo feature {feature:?})")]
    ModeNotCompiled {
        /// The mode asked for.
        mode: &'static str,
        /// The Cargo feature that provides it.
        feature: &'static str,
    },
}

/// A dataplane, named as `--mode` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyMode {
    /// nftables (`nftables` or `nft`).
    Nftables,
    /// iptables, in upstream's rule shapes.
    Iptables,
    /// A userspace relay.
    Userspace,
    /// eBPF programs.
    Ebpf,
}

impl ProxyMode {
    /// Parses a mode name as kube-proxy's `--proxy-mode` and kproxy's `--mode` accept it.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "nftables" | "nft" => Ok(Self::Nftables),
            "iptables" => Ok(Self::Iptables),
            "userspace" => Ok(Self::Userspace),
            "ebpf" => Ok(Self::Ebpf),
            other => Err(ConfigError::Invalid(format!(
                "mode {other:?}: expected one of iptables, nftables, nft, userspace, ebpf"
            ))),
        }
    }

    /// The canonical name, also the Cargo feature that builds it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nftables => "nftables",
            Self::Iptables => "iptables",
            Self::Userspace => "userspace",
            Self::Ebpf => "ebpf",
        }
    }
}

/// Which addresses accept NodePort traffic (`--nodeport-addresses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Every local address (`all`; the default but in nftables mode).
    All,
    /// The node's primary IPs (`primary`; nftables mode's default).
    Primary,
    /// Local addresses inside these CIDRs.
    Cidrs(Vec<IpNet>),
}

/// How traffic from local pods is recognised (`--detect-local-mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectLocalMode {
    /// Source inside `--cluster-cidr` (no CIDR: nothing is local).
    ClusterCidr,
    /// Source inside this Node's `spec.podCIDRs`.
    NodeCidr,
    /// Arriving on this bridge (`--pod-bridge-interface`, `detectLocal.bridgeInterface`).
    BridgeInterface(InterfaceName),
    /// Arriving on an interface whose name starts with this (`--pod-interface-name-prefix`,
    /// `detectLocal.interfaceNamePrefix`).
    InterfaceNamePrefix(InterfaceName),
}

impl DetectLocalMode {
    /// The name upstream's flag and file use.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ClusterCidr => "ClusterCIDR",
            Self::NodeCidr => "NodeCIDR",
            Self::BridgeInterface(_) => "BridgeInterface",
            Self::InterfaceNamePrefix(_) => "InterfaceNamePrefix",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated, immutable configuration of one daemon run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The dataplane.
    pub mode: ProxyMode,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--master`: the apiserver URL, overriding the kubeconfig's.
    pub master: Option<String>,
    /// `--manifests`: read objects from this directory instead of an apiserver.
    pub manifests: Option<PathBuf>,
    /// `--hostname-override`, else the machine's hostname: this node's name.
    pub hostname_override: Option<String>,
    /// `--bind-address`.
    pub bind_address: IpAddr,
    /// `--healthz-bind-address`; `None` disables the server.
    pub healthz_bind_address: Option<SocketAddr>,
    /// `--metrics-bind-address`; `None` disables the server.
    pub metrics_bind_address: Option<SocketAddr>,
    /// `--cluster-cidr`, at most one per family.
    pub cluster_cidrs: Vec<IpNet>,
    /// `--nodeport-addresses`.
    pub nodeport_addresses: NodePortAddresses,
    /// `--masquerade-all`.
    pub masquerade_all: bool,
    /// `--iptables-masquerade-bit`, 0 to 31.
    pub masquerade_bit: u8,
    /// `--iptables-localhost-nodeports`.
    pub localhost_nodeports: bool,
    /// `--nftables-localhost-nodeports`: the nftables mode also serves TCP node ports on
    /// `127.0.0.1` and `::1`, through a userspace relay.
    pub nftables_localhost_nodeports: bool,
    /// `--sync-period`: retry interval, periodic full resync, half the health timeout.
    pub sync_period: Duration,
    /// `--min-sync-period`: least time between the end of one sync and the next.
    pub min_sync_period: Duration,
    /// `--detect-local-mode`.
    pub detect_local_mode: DetectLocalMode,
    /// `--config-sync-period`.
    pub config_sync_period: Duration,
    /// `--log-level` (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: String,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--ebpf-cgroup-path`: the cgroup (v2) the eBPF mode attaches to; `None`: the cgroup
    /// v2 root, found from the mounts.
    pub ebpf_cgroup_path: Option<PathBuf>,
    /// `--ebpf-pin-path`: where the eBPF mode pins its links; `None` (given empty): not
    /// pinned, a restart detaches the programs.
    pub ebpf_pin_path: Option<PathBuf>,
    /// `--ebpf-interfaces`: the external interfaces where the eBPF mode's tc programs
    /// balance traffic from outside the node; empty: those holding the node's addresses.
    pub ebpf_interfaces: Vec<String>,
    /// `--ebpf-netns`: the eBPF mode balances only sockets of these network namespaces
    /// (their files, e.g. `/run/netns/<name>` or `/proc/<pid>/ns/net`); empty: all. For
    /// hosts that run several nodes on one kernel (kind), which share a cgroup.
    pub ebpf_netns: Vec<PathBuf>,
    /// `--ebpf-map-sizes`: entries of the eBPF mode's maps, for those given.
    pub ebpf_map_sizes: EbpfMapSizes,
    /// `--conntrack-*`: the kernel's conntrack settings, set at start.
    pub conntrack: ConntrackConfig,
}

impl ProxyConfig {
    /// Validates a merged layer; every field has a default, so only bad values fail.
    pub fn validate(c: &PartialConfig) -> Result<Self, ConfigError> {
        let sync_period = duration("sync-period", c.sync_period.as_deref())?;
        let min_sync_period = duration("min-sync-period", c.min_sync_period.as_deref())?;
        if sync_period.is_zero() {
            return Err(invalid("sync-period must be greater than 0"));
        }
        if min_sync_period > sync_period {
            return Err(invalid("min-sync-period must not be greater than sync-period"));
        }
        let mode = ProxyMode::parse(c.mode.as_deref().unwrap_or("nftables"))?;
        Ok(Self {
            mode,
            kubeconfig: non_empty(&c.kubeconfig).map(PathBuf::from),
            master: non_empty(&c.master),
            manifests: non_empty(&c.manifests).map(PathBuf::from),
            hostname_override: non_empty(&c.hostname_override).map(|h| h.to_lowercase()),
            bind_address: ip("bind-address", c.bind_address.as_deref().unwrap_or("0.0.0.0"))?,
            healthz_bind_address: bind("healthz-bind-address", c.healthz_bind_address.as_deref(), 10256)?,
            metrics_bind_address: bind("metrics-bind-address", c.metrics_bind_address.as_deref(), 10249)?,
            cluster_cidrs: cluster_cidrs(c.cluster_cidr.as_deref().unwrap_or_default())?,
            nodeport_addresses: nodeport_addresses(c.nodeport_addresses.as_deref().unwrap_or_default(), mode)?,
            masquerade_all: c.masquerade_all.unwrap_or(false),
            masquerade_bit: masquerade_bit(c.masquerade_bit.unwrap_or(14))?,
            localhost_nodeports: c.localhost_nodeports.unwrap_or(true),
            nftables_localhost_nodeports: c.nftables_localhost_nodeports.unwrap_or(false),
            sync_period,
            min_sync_period,
            detect_local_mode: detect_local_mode(c)?,
            config_sync_period: duration("config-sync-period", c.config_sync_period.as_deref())?,
            log_level: log_level(c.log_level.as_deref().unwrap_or("info"))?,
            log_format: log_format(c.log_format.as_deref().unwrap_or("text"))?,
            ebpf_cgroup_path: non_empty(&c.ebpf_cgroup_path).map(PathBuf::from),
            ebpf_pin_path: non_empty(&c.ebpf_pin_path).map(PathBuf::from),
            ebpf_interfaces: name_list(c.ebpf_interfaces.as_deref().unwrap_or_default()),
            ebpf_netns: name_list(c.ebpf_netns.as_deref().unwrap_or_default()).into_iter().map(PathBuf::from).collect(),
            ebpf_map_sizes: EbpfMapSizes::parse(c.ebpf_map_sizes.as_deref().unwrap_or_default())?,
            conntrack: ConntrackConfig::validate(c)?,
        })
    }

    /// The masquerade mark, `1 << masquerade_bit` (0x4000 by default).
    pub fn masquerade_mark(&self) -> u32 {
        1 << self.masquerade_bit
    }

    /// The address health-check node ports listen on: the bind address (0.0.0.0: all).
    pub fn bind_address_for_health(&self) -> IpAddr {
        self.bind_address
    }

    /// The health timeout: a queued change older than this makes `/healthz` fail.
    pub fn health_timeout(&self) -> Duration {
        2 * self.sync_period
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A comma-separated list of names, blanks dropped.
fn name_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn duration(name: &str, text: Option<&str>) -> Result<Duration, ConfigError> {
    parse_go_duration(text.unwrap_or("0")).map_err(|e| invalid(format!("{name}: {e}")))
}

fn ip(name: &str, text: &str) -> Result<IpAddr, ConfigError> {
    text.trim().parse().map_err(|_| invalid(format!("{name}: {text:?} is not an IP address")))
}

/// `IP:port`, a bare IP (default port), or empty (disabled).
fn bind(name: &str, text: Option<&str>, default_port: u16) -> Result<Option<SocketAddr>, ConfigError> {
    let text = text.unwrap_or_default().trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return match addr.port() {
            0 => Err(invalid(format!("{name}: port must be 1-65535"))),
            _ => Ok(Some(addr)),
        };
    }
    let ip = ip(name, text.trim_start_matches('[').trim_end_matches(']'))?;
    Ok(Some(SocketAddr::new(ip, default_port)))
}

fn cluster_cidrs(text: &str) -> Result<Vec<IpNet>, ConfigError> {
    let cidrs = cidr_list("cluster-cidr", text)?;
    let v4 = cidrs.iter().filter(|c| matches!(c, IpNet::V4(_))).count();
    if cidrs.len() > 2 || v4 > 1 || cidrs.len() - v4 > 1 {
        return Err(invalid("cluster-cidr: at most one CIDR per IP family"));
    }
    Ok(cidrs)
}

fn cidr_list(name: &str, text: &str) -> Result<Vec<IpNet>, ConfigError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<IpNet>().map_err(|_| invalid(format!("{name}: {s:?} is not a CIDR"))))
        .collect()
}

/// `--nodeport-addresses`; unset (or empty) means `primary` in nftables mode and `all` in
/// the others, as upstream's platform defaults have it.
fn nodeport_addresses(text: &str, mode: ProxyMode) -> Result<NodePortAddresses, ConfigError> {
    match text.trim() {
        "" if mode == ProxyMode::Nftables => Ok(NodePortAddresses::Primary),
        "" | "all" => Ok(NodePortAddresses::All),
        "primary" => Ok(NodePortAddresses::Primary),
        list => Ok(NodePortAddresses::Cidrs(cidr_list("nodeport-addresses", list)?)),
    }
}

fn masquerade_bit(bit: i32) -> Result<u8, ConfigError> {
    u8::try_from(bit).ok().filter(|b| *b <= 31).ok_or_else(|| invalid(format!("masquerade-bit {bit}: must be 0-31")))
}

fn detect_local_mode(c: &PartialConfig) -> Result<DetectLocalMode, ConfigError> {
    let interface = |value: &Option<String>, flag: &str, mode: &str| match value.as_deref() {
        None | Some("") => Err(invalid(format!("detect-local-mode {mode} needs --{flag}"))),
        Some(name) => InterfaceName::parse(name).map_err(|e| invalid(format!("{flag}: {e}"))),
    };
    match c.detect_local_mode.as_deref().unwrap_or_default() {
        "" | "ClusterCIDR" => Ok(DetectLocalMode::ClusterCidr),
        "NodeCIDR" => Ok(DetectLocalMode::NodeCidr),
        "BridgeInterface" => interface(&c.pod_bridge_interface, "pod-bridge-interface", "BridgeInterface")
            .map(DetectLocalMode::BridgeInterface),
        "InterfaceNamePrefix" => {
            interface(&c.pod_interface_name_prefix, "pod-interface-name-prefix", "InterfaceNamePrefix")
                .map(DetectLocalMode::InterfaceNamePrefix)
        }
        other => Err(invalid(format!(
            "detect-local-mode {other:?}: expected ClusterCIDR, NodeCIDR, BridgeInterface or InterfaceNamePrefix"
        ))),
    }
}

fn log_level(text: &str) -> Result<String, ConfigError> {
    match text {
        "error" | "warn" | "info" | "debug" | "trace" => Ok(text.to_owned()),
        other => Err(invalid(format!("log-level {other:?}: expected error, warn, info, debug or trace"))),
    }
}

fn log_format(text: &str) -> Result<LogFormat, ConfigError> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(invalid(format!("log-format {other:?}: expected text or json"))),
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
