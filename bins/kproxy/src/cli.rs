//! Command-line flags, compatible with kube-proxy's, turned into a configuration layer.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kproxy_runtime::config::PartialConfig;

/// kproxy: a Kubernetes service proxy (kube-proxy replacement).
#[derive(Debug, Parser)]
#[command(name = "kproxy", version, about, long_about = None)]
pub struct Cli {
    /// A subcommand; without one, the daemon runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Daemon flags.
    #[command(flatten)]
    pub flags: Flags,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print what a dataplane would program for the objects of a manifest directory (dry run).
    Render {
        /// The dataplane (iptables, nftables, nft, userspace, ebpf).
        #[arg(long, visible_alias = "proxy-mode", default_value = "nftables")]
        mode: String,
        /// Directory of Service, EndpointSlice and Node manifests.
        #[arg(long)]
        manifests: PathBuf,
        /// This node's name.
        #[arg(long, default_value = "node1")]
        hostname_override: String,
        /// `--cluster-cidr`, as for the daemon.
        #[arg(long)]
        cluster_cidr: Option<String>,
    },
    /// Explain what happens on this node to a packet sent to ADDR:PORT[/PROTO]: the service
    /// port it reaches, the endpoints it may use and why, masquerading, and the rules.
    Explain(ExplainArgs),
}

/// `kproxy explain`'s arguments.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The destination: ADDR:PORT[/PROTO], PROTO tcp (default), udp or sctp; IPv6 as
    /// [ADDR]:PORT.
    pub destination: String,
    /// The packet's source address (a pod, this node, or a client outside).
    #[arg(long)]
    pub from: Option<String>,
    /// Explain from this manifest directory (Services, EndpointSlices, Nodes) instead of a
    /// running daemon.
    #[arg(long, conflicts_with = "daemon")]
    pub manifests: Option<PathBuf>,
    /// Ask the daemon at this URL (default: its metrics address, http://127.0.0.1:10249).
    #[arg(long)]
    pub daemon: Option<String>,
    /// `text` for a person, `json` for tools.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// With --manifests: the dataplane (iptables, nftables, nft, userspace, ebpf).
    #[arg(long, visible_alias = "proxy-mode", default_value = "nftables")]
    pub mode: String,
    /// With --manifests: this node's name.
    #[arg(long, default_value = "node1")]
    pub hostname_override: String,
    /// With --manifests: `--cluster-cidr`, as for the daemon.
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// With --manifests: `--masquerade-all`, as for the daemon.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub masquerade_all: Option<bool>,
    /// With --manifests: `--nodeport-addresses`, as for the daemon.
    #[arg(long)]
    pub nodeport_addresses: Option<String>,
}

/// How `kproxy explain` prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Readable by a person.
    Text,
    /// The documented JSON (the daemon's `/explain` answer).
    Json,
}

/// The daemon's flags. Every one is optional: what is not given comes from the
/// environment (`KPROXY_*`), the `--config` file or the defaults, in that order.
#[derive(Debug, Args)]
pub struct Flags {
    /// Path to a KubeProxyConfiguration (v1alpha1) file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Path to a kubeconfig with authorization and apiserver location.
    #[arg(long)]
    pub kubeconfig: Option<String>,
    /// The apiserver URL (overrides the kubeconfig's server).
    #[arg(long)]
    pub master: Option<String>,
    /// Read objects from this manifest directory instead of an apiserver.
    #[arg(long)]
    pub manifests: Option<String>,
    /// This node's name, instead of the hostname.
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The dataplane: iptables, nftables (or nft), userspace, ebpf.
    #[arg(long = "proxy-mode", visible_alias = "mode")]
    pub mode: Option<String>,
    /// Pod CIDRs (one per family, comma-separated): traffic from elsewhere is masqueraded.
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// CIDRs (comma-separated), `primary` or `all`: which local addresses accept NodePorts.
    #[arg(long)]
    pub nodeport_addresses: Option<String>,
    /// Masquerade all traffic sent to service IPs.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub masquerade_all: Option<bool>,
    /// The fwmark bit marking packets to masquerade (0-31).
    #[arg(long = "iptables-masquerade-bit")]
    pub masquerade_bit: Option<i32>,
    /// The cgroup (v2) whose processes the eBPF mode balances (default: the cgroup v2 root).
    #[arg(long)]
    pub ebpf_cgroup_path: Option<String>,
    /// Where the eBPF mode pins its links so a restart keeps traffic flowing; empty: no pins.
    #[arg(long)]
    pub ebpf_pin_path: Option<String>,
    /// The external interfaces where the eBPF mode balances traffic from outside the node
    /// (comma-separated; default: the interfaces holding the node's addresses).
    #[arg(long)]
    pub ebpf_interfaces: Option<String>,
    /// Balance only sockets of these network namespaces in the eBPF mode (their files,
    /// comma-separated, e.g. /run/netns/NAME or /proc/PID/ns/net; default: all).
    #[arg(long, value_name = "PATH[,PATH]")]
    pub ebpf_netns: Option<String>,
    /// Entries of the eBPF mode's maps (comma-separated MAP=ENTRIES; maps: services,
    /// endpoints, reverse-nat, affinity, conntrack, source-ranges; default 65536, 262144,
    /// 65536, 65536, 131072, 16384).
    #[arg(long, value_name = "MAP=ENTRIES[,MAP=ENTRIES]")]
    pub ebpf_map_sizes: Option<String>,
    /// Accept NodePort traffic to localhost (iptables mode).
    #[arg(long = "iptables-localhost-nodeports", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub localhost_nodeports: Option<bool>,
    /// Also serve TCP NodePorts on 127.0.0.1 and ::1 in nftables mode, through a userspace
    /// relay (off by default; upstream KEP-6032).
    #[arg(long = "nftables-localhost-nodeports", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub nftables_localhost_nodeports: Option<bool>,
    /// Maximum conntrack entries per CPU (0: leave nf_conntrack_max as it is).
    #[arg(long)]
    pub conntrack_max_per_core: Option<i32>,
    /// Least nf_conntrack_max, whatever the CPUs.
    #[arg(long)]
    pub conntrack_min: Option<i32>,
    /// Idle timeout of established TCP connections (0: leave it as it is).
    #[arg(long)]
    pub conntrack_tcp_timeout_established: Option<String>,
    /// Timeout of TCP connections in CLOSE_WAIT (0: leave it as it is).
    #[arg(long)]
    pub conntrack_tcp_timeout_close_wait: Option<String>,
    /// Treat out-of-window TCP packets as valid (and drop no INVALID packets).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub conntrack_tcp_be_liberal: Option<bool>,
    /// Idle timeout of UNREPLIED UDP flows (0: leave it as it is).
    #[arg(long)]
    pub conntrack_udp_timeout: Option<String>,
    /// Idle timeout of ASSURED UDP flows (0: leave it as it is).
    #[arg(long)]
    pub conntrack_udp_timeout_stream: Option<String>,
    /// Least time between syncs (e.g. 1s).
    #[arg(long, visible_alias = "iptables-min-sync-period")]
    pub min_sync_period: Option<String>,
    /// Sync retry and periodic full resync interval (e.g. 30s).
    #[arg(long, visible_alias = "iptables-sync-period")]
    pub sync_period: Option<String>,
    /// The node IP override; 0.0.0.0 means detect.
    #[arg(long)]
    pub bind_address: Option<String>,
    /// `/healthz` and `/livez` address (IP:port); empty disables.
    #[arg(long)]
    pub healthz_bind_address: Option<String>,
    /// `/metrics` address (IP:port); empty disables.
    #[arg(long)]
    pub metrics_bind_address: Option<String>,
    /// How local pod traffic is detected: ClusterCIDR, NodeCIDR, BridgeInterface or
    /// InterfaceNamePrefix.
    #[arg(long)]
    pub detect_local_mode: Option<String>,
    /// The pods' bridge, for `--detect-local-mode BridgeInterface`.
    #[arg(long)]
    pub pod_bridge_interface: Option<String>,
    /// The pods' interface name prefix, for `--detect-local-mode InterfaceNamePrefix`.
    #[arg(long)]
    pub pod_interface_name_prefix: Option<String>,
    /// How often the watches resync (accepted for compatibility).
    #[arg(long)]
    pub config_sync_period: Option<String>,
    /// Write the effective configuration (a KubeProxyConfiguration) to this file and exit.
    #[arg(long)]
    pub write_config_to: Option<PathBuf>,
    /// Do the privileged one-time setup (sysctls the mode needs) and exit: run it as an
    /// init container, so the long-running container needs only NET_ADMIN.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub init_only: Option<bool>,
    /// Remove every rule kproxy installed, in every mode, and exit.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cleanup: Option<bool>,
    /// klog-style verbosity: 0-1 info, 2-4 debug, 5+ trace.
    #[arg(short = 'v', long = "v")]
    pub verbosity: Option<u8>,
    /// Log level: error, warn, info, debug, trace (overrides -v).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log format: text or json.
    #[arg(long, visible_alias = "logging-format")]
    pub log_format: Option<String>,
    /// kube-proxy flags kproxy accepts and ignores (logged at start).
    #[command(flatten)]
    pub ignored: IgnoredFlags,
}

/// Declares the kube-proxy flags kproxy accepts and ignores: `value` ones take an argument,
/// `switch` ones may stand alone (`--profiling` or `--profiling=false`).
macro_rules! ignored_flags {
    ($($kind:ident $field:ident = $name:literal,)*) => {
        /// kube-proxy flags accepted for compatibility that have no effect in kproxy (an
        /// operator's existing kube-proxy arguments must not stop the node's proxy).
        #[derive(Debug, Args, Default)]
        pub struct IgnoredFlags {
            $(
                #[arg(long = $name, hide = true, num_args = ignored_flags!(@args $kind), require_equals = ignored_flags!(@equals $kind), default_missing_value = "true")]
                $field: Option<String>,
            )*
        }

        impl IgnoredFlags {
            /// The names of the ignored flags that were given.
            pub fn given(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $(
                    if self.$field.is_some() {
                        out.push($name);
                    }
                )*
                out
            }
        }
    };
    (@args value) => { 1 };
    (@args switch) => { 0..=1 };
    (@equals value) => { false };
    (@equals switch) => { true };
}

ignored_flags! {
    value oom_score_adj = "oom-score-adj",
    value feature_gates = "feature-gates",
    switch profiling = "profiling",
    switch bind_address_hard_fail = "bind-address-hard-fail",
    value kube_api_qps = "kube-api-qps",
    value kube_api_burst = "kube-api-burst",
    value kube_api_content_type = "kube-api-content-type",
    value healthz_port = "healthz-port",
    value metrics_port = "metrics-port",
    value proxy_port_range = "proxy-port-range",
    value show_hidden_metrics_for_version = "show-hidden-metrics-for-version",
    value ipvs_scheduler = "ipvs-scheduler",
    switch ipvs_strict_arp = "ipvs-strict-arp",
    value ipvs_sync_period = "ipvs-sync-period",
    value ipvs_min_sync_period = "ipvs-min-sync-period",
    value ipvs_exclude_cidrs = "ipvs-exclude-cidrs",
    value ipvs_tcp_timeout = "ipvs-tcp-timeout",
    value ipvs_tcpfin_timeout = "ipvs-tcpfin-timeout",
    value ipvs_udp_timeout = "ipvs-udp-timeout",
    switch windows_service = "windows-service",
    value log_flush_frequency = "log-flush-frequency",
    value log_json_info_buffer_size = "log-json-info-buffer-size",
    switch log_json_split_stream = "log-json-split-stream",
    value log_text_info_buffer_size = "log-text-info-buffer-size",
    switch log_text_split_stream = "log-text-split-stream",
    value vmodule = "vmodule",
}

impl Flags {
    /// The flags as a configuration layer.
    pub fn to_layer(&self) -> PartialConfig {
        PartialConfig {
            mode: self.mode.clone(),
            kubeconfig: self.kubeconfig.clone(),
            master: self.master.clone(),
            manifests: self.manifests.clone(),
            hostname_override: self.hostname_override.clone(),
            bind_address: self.bind_address.clone(),
            healthz_bind_address: self.healthz_bind_address.clone(),
            metrics_bind_address: self.metrics_bind_address.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            nodeport_addresses: self.nodeport_addresses.clone(),
            masquerade_all: self.masquerade_all,
            masquerade_bit: self.masquerade_bit,
            localhost_nodeports: self.localhost_nodeports,
            nftables_localhost_nodeports: self.nftables_localhost_nodeports,
            sync_period: self.sync_period.clone(),
            min_sync_period: self.min_sync_period.clone(),
            detect_local_mode: self.detect_local_mode.clone(),
            pod_bridge_interface: self.pod_bridge_interface.clone(),
            pod_interface_name_prefix: self.pod_interface_name_prefix.clone(),
            config_sync_period: self.config_sync_period.clone(),
            log_level: self.log_level.clone().or_else(|| self.verbosity.map(klog_level)),
            log_format: self.log_format.clone(),
            ebpf_cgroup_path: self.ebpf_cgroup_path.clone(),
            ebpf_pin_path: self.ebpf_pin_path.clone(),
            ebpf_interfaces: self.ebpf_interfaces.clone(),
            ebpf_netns: self.ebpf_netns.clone(),
            ebpf_map_sizes: self.ebpf_map_sizes.clone(),
            conntrack_max_per_core: self.conntrack_max_per_core,
            conntrack_min: self.conntrack_min,
            conntrack_tcp_timeout_established: self.conntrack_tcp_timeout_established.clone(),
            conntrack_tcp_timeout_close_wait: self.conntrack_tcp_timeout_close_wait.clone(),
            conntrack_tcp_be_liberal: self.conntrack_tcp_be_liberal,
            conntrack_udp_timeout: self.conntrack_udp_timeout.clone(),
            conntrack_udp_timeout_stream: self.conntrack_udp_timeout_stream.clone(),
        }
    }
}

/// klog verbosity to a log level.
fn klog_level(v: u8) -> String {
    match v {
        0 | 1 => "info",
        2..=4 => "debug",
        _ => "trace",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kproxy").chain(args.iter().copied()))
    }

    #[test]
    fn accepts_kube_proxy_flags() {
        let cli = parse(&[
            "--proxy-mode=nftables",
            "--kubeconfig",
            "/k",
            "--hostname-override=node1",
            "--cluster-cidr=10.244.0.0/16",
            "--masquerade-all",
            "--iptables-min-sync-period=2s",
            "--v=2",
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-be-liberal",
            "--oom-score-adj=-999",
        ])
        .unwrap();
        let layer = cli.flags.to_layer();
        assert_eq!(layer.mode.as_deref(), Some("nftables"));
        assert_eq!(layer.masquerade_all, Some(true));
        assert_eq!(layer.min_sync_period.as_deref(), Some("2s"));
        assert_eq!(layer.log_level.as_deref(), Some("debug"));
        assert_eq!((layer.conntrack_max_per_core, layer.conntrack_tcp_be_liberal), (Some(0), Some(true)));
        assert_eq!(cli.flags.ignored.given(), vec!["oom-score-adj"]);
    }

    #[test]
    fn mode_alias_and_bool_values() {
        let cli = parse(&["--mode", "iptables", "--masquerade-all=false", "-v", "5"]).unwrap();
        let layer = cli.flags.to_layer();
        assert_eq!(layer.mode.as_deref(), Some("iptables"));
        assert_eq!(layer.masquerade_all, Some(false));
        assert_eq!(layer.log_level.as_deref(), Some("trace"));
    }

    #[test]
    fn unknown_flag_is_a_usage_error_with_status_2() {
        let err = parse(&["--no-such-flag"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
