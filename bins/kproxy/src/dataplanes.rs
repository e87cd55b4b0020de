//! The dataplanes compiled into this binary, each behind the Cargo feature named after its mode.

use std::process::ExitCode;

use kproxy_core::Dataplane;
use kproxy_runtime::config::{ConfigError, ProxyConfig, ProxyMode};

/// Builds the dataplane of `config.mode`.
pub fn build(config: &ProxyConfig) -> Result<Box<dyn Dataplane>, ConfigError> {
    match config.mode {
        #[cfg(feature = "nftables")]
        ProxyMode::Nftables => nftables::build_serving(config),
        #[cfg(feature = "iptables")]
        ProxyMode::Iptables => Ok(Box::new(iptables::build(config))),
        #[cfg(feature = "userspace")]
        ProxyMode::Userspace => Ok(Box::new(userspace::build(config)?)),
        #[cfg(feature = "ebpf")]
        ProxyMode::Ebpf => Ok(Box::new(ebpf::build(config)?)),
        #[allow(unreachable_patterns, reason = "reachable when a dataplane feature is off")]
        mode => Err(ConfigError::ModeNotCompiled { mode: mode.name(), feature: mode.name() }),
    }
}

/// Every compiled-in dataplane, for `--cleanup`.
fn all(config: &ProxyConfig) -> Vec<Box<dyn Dataplane>> {
    [nftables_dataplane(config), iptables_dataplane(config), userspace_dataplane(config), ebpf_dataplane(config)]
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(feature = "nftables")]
fn nftables_dataplane(config: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    Some(Box::new(nftables::build(config)))
}

#[cfg(not(feature = "nftables"))]
fn nftables_dataplane(_: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    None
}

#[cfg(feature = "iptables")]
fn iptables_dataplane(config: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    Some(Box::new(iptables::build(config)))
}

#[cfg(not(feature = "iptables"))]
fn iptables_dataplane(_: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    None
}

#[cfg(feature = "userspace")]
fn userspace_dataplane(config: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    match userspace::build(config) {
        Ok(dataplane) => Some(Box::new(dataplane)),
        Err(error) => {
            tracing::error!(%error, "cannot clean up the userspace mode");
            None
        }
    }
}

#[cfg(not(feature = "userspace"))]
fn userspace_dataplane(_: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    None
}

#[cfg(feature = "ebpf")]
fn ebpf_dataplane(config: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    Some(Box::new(ebpf::build_for_cleanup(config)))
}

#[cfg(not(feature = "ebpf"))]
fn ebpf_dataplane(_: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    None
}

/// `--cleanup`: removes what every compiled-in mode installed.
pub async fn cleanup_all(config: &ProxyConfig) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for mut dataplane in all(config) {
        match dataplane.cleanup().await {
            Ok(()) => tracing::info!(mode = dataplane.name(), "cleaned up"),
            Err(error) => {
                tracing::error!(mode = dataplane.name(), %error, "cleanup failed");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}

/// How pod traffic is recognised, for the netfilter dataplanes.
#[cfg(any(feature = "nftables", feature = "iptables", feature = "userspace"))]
fn local_detect(config: &ProxyConfig) -> kproxy_netfilter::LocalDetect {
    use kproxy_netfilter::LocalDetect;
    use kproxy_runtime::config::DetectLocalMode;
    match &config.detect_local_mode {
        DetectLocalMode::ClusterCidr => LocalDetect::ClusterCidr,
        // Resolved by each dataplane from the Node object at every sync.
        DetectLocalMode::NodeCidr => LocalDetect::NodeCidr,
        DetectLocalMode::BridgeInterface(name) => LocalDetect::BridgeInterface(name.clone()),
        DetectLocalMode::InterfaceNamePrefix(prefix) => LocalDetect::InterfaceNamePrefix(prefix.clone()),
    }
}

/// The addresses that accept node ports, for the netfilter dataplanes.
#[cfg(any(feature = "nftables", feature = "iptables"))]
fn nodeport_addresses(config: &ProxyConfig) -> kproxy_netfilter::NodePortAddresses {
    use kproxy_netfilter::NodePortAddresses;
    use kproxy_runtime::config::NodePortAddresses as Configured;
    match &config.nodeport_addresses {
        Configured::Cidrs(cidrs) => NodePortAddresses::Cidrs(cidrs.clone()),
        // Resolved by each dataplane from the Node object at every sync.
        Configured::All => NodePortAddresses::All,
        Configured::Primary => NodePortAddresses::Primary,
    }
}

#[cfg(feature = "nftables")]
mod nftables {
    use kproxy_core::Dataplane;
    use kproxy_nftables::{NftablesConfig, NftablesDataplane};
    use kproxy_runtime::config::{ConfigError, ProxyConfig};
    use kproxy_userspace::{LocalhostNodePorts, WithLocalhostNodePorts};

    /// The nftables dataplane the daemon runs: with `--nftables-localhost-nodeports`, also
    /// serving TCP node ports on loopback (relay threads started here, in the daemon's
    /// namespace).
    pub fn build_serving(config: &ProxyConfig) -> Result<Box<dyn Dataplane>, ConfigError> {
        let dataplane = build(config);
        if !config.nftables_localhost_nodeports {
            return Ok(Box::new(dataplane));
        }
        let localhost = LocalhostNodePorts::new(LocalhostNodePorts::default_relay()).map_err(|e| {
            ConfigError::Invalid(format!("nftables-localhost-nodeports: cannot start the relay's threads: {e}"))
        })?;
        Ok(Box::new(WithLocalhostNodePorts::new(dataplane, localhost)))
    }

    /// The nftables dataplane configured from the daemon's configuration.
    pub fn build(config: &ProxyConfig) -> NftablesDataplane {
        NftablesDataplane::new(NftablesConfig {
            cluster_cidrs: config.cluster_cidrs.clone(),
            local_detect: super::local_detect(config),
            masquerade_all: config.masquerade_all,
            masquerade_mark: config.masquerade_mark(),
            nodeport_addresses: super::nodeport_addresses(config),
            localhost_nodeports_served: config.nftables_localhost_nodeports,
            conntrack_tcp_liberal: config.conntrack.tcp_be_liberal,
            ..NftablesConfig::default()
        })
    }
}

#[cfg(feature = "iptables")]
mod iptables {
    use kproxy_iptables::{IptablesConfig, IptablesDataplane};
    use kproxy_runtime::config::ProxyConfig;

    /// The iptables dataplane configured from the daemon's configuration; the flavour
    /// (legacy or nft) is the one the node uses, detected on the first sync.
    pub fn build(config: &ProxyConfig) -> IptablesDataplane {
        IptablesDataplane::new(IptablesConfig {
            cluster_cidrs: config.cluster_cidrs.clone(),
            local_detect: super::local_detect(config),
            masquerade_all: config.masquerade_all,
            masquerade_mark: config.masquerade_mark(),
            localhost_nodeports: config.localhost_nodeports,
            nodeport_addresses: super::nodeport_addresses(config),
            conntrack_tcp_liberal: config.conntrack.tcp_be_liberal,
            ..IptablesConfig::default()
        })
    }
}

#[cfg(feature = "userspace")]
mod userspace {
    use kproxy_runtime::config::{ConfigError, ProxyConfig};
    use kproxy_userspace::{UserspaceConfig, UserspaceDataplane};

    /// The userspace dataplane configured from the daemon's configuration (listener ports
    /// chosen by the kernel; relay threads started here, in the daemon's namespace).
    pub fn build(config: &ProxyConfig) -> Result<UserspaceDataplane, ConfigError> {
        UserspaceDataplane::new(UserspaceConfig {
            cluster_cidrs: config.cluster_cidrs.clone(),
            local_detect: super::local_detect(config),
            ..UserspaceConfig::default()
        })
        .map_err(|e| ConfigError::Invalid(format!("userspace relay: cannot start its threads: {e}")))
    }
}

#[cfg(feature = "ebpf")]
mod ebpf {
    use kproxy_ebpf::{EbpfConfig, EbpfDataplane, MapSizes, netns_cookie};
    use kproxy_runtime::config::{self, ConfigError, ProxyConfig};

    /// The eBPF dataplane configured from the daemon's configuration; `--ebpf-netns` is
    /// resolved to netns cookies here (a namespace that cannot be read is a configuration
    /// error). Nothing else touches the kernel until its first sync.
    pub fn build(config: &ProxyConfig) -> Result<EbpfDataplane, ConfigError> {
        let netns_cookies = config
            .ebpf_netns
            .iter()
            .map(|path| {
                netns_cookie(path)
                    .map_err(|e| ConfigError::Invalid(format!("ebpf-netns: cannot read {}: {e}", path.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EbpfDataplane::new(EbpfConfig { netns_cookies, ..ebpf_config(config) }))
    }

    /// The dataplane `--cleanup` builds only to remove its pins: no namespace is read.
    pub fn build_for_cleanup(config: &ProxyConfig) -> EbpfDataplane {
        EbpfDataplane::new(ebpf_config(config))
    }

    fn ebpf_config(config: &ProxyConfig) -> EbpfConfig {
        let defaults = EbpfConfig::default();
        EbpfConfig {
            cgroup_path: config.ebpf_cgroup_path.clone().unwrap_or(defaults.cgroup_path),
            pin_dir: config.ebpf_pin_path.clone(),
            interfaces: config.ebpf_interfaces.clone(),
            map_sizes: map_sizes(&config.ebpf_map_sizes),
            nodeport_addresses: match &config.nodeport_addresses {
                config::NodePortAddresses::Cidrs(cidrs) => kproxy_core::NodePortAddresses::Cidrs(cidrs.clone()),
                config::NodePortAddresses::All => kproxy_core::NodePortAddresses::All,
                config::NodePortAddresses::Primary => kproxy_core::NodePortAddresses::Primary,
            },
            ..defaults
        }
    }

    /// `--ebpf-map-sizes` over the dataplane's defaults.
    fn map_sizes(given: &config::EbpfMapSizes) -> MapSizes {
        let defaults = MapSizes::default();
        MapSizes {
            services: given.services.unwrap_or(defaults.services),
            endpoints: given.endpoints.unwrap_or(defaults.endpoints),
            reverse_nat: given.reverse_nat.unwrap_or(defaults.reverse_nat),
            affinity: given.affinity.unwrap_or(defaults.affinity),
            conntrack: given.conntrack.unwrap_or(defaults.conntrack),
            source_ranges: given.source_ranges.unwrap_or(defaults.source_ranges),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn each_map_size_flag_sets_its_own_map_and_names_it_back() {
            for name in config::EBPF_MAPS {
                let given = config::EbpfMapSizes::parse(&format!("{name}=7")).expect("a known map");
                let sizes = map_sizes(&given);
                let set = [
                    (sizes.services, "kp_services"),
                    (sizes.endpoints, "kp_endpoints"),
                    (sizes.reverse_nat, "kp_revnat"),
                    (sizes.affinity, "kp_affinity"),
                    (sizes.conntrack, "kp_conntrack"),
                    (sizes.source_ranges, "kp_ranges"),
                ];
                let maps: Vec<&str> = set.iter().filter(|(size, _)| *size == 7).map(|(_, map)| *map).collect();
                assert_eq!(maps.len(), 1, "{name} sets one map: {maps:?}");
                assert_eq!(MapSizes::flag_name(maps[0]), Some(name), "the error for a full {} names {name}", maps[0]);
            }
        }
    }
}
