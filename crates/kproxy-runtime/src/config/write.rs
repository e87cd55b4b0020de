//! The effective configuration as a `KubeProxyConfiguration` file (`--write-config-to`).

use super::duration::format_go_duration;
use super::file::{API_VERSION, ClientConnection, DetectLocal, KubeProxyConfiguration, ProxierSection};
use super::validate::{DetectLocalMode, NodePortAddresses, ProxyConfig, ProxyMode};

impl ProxyConfig {
    /// This configuration as a `KubeProxyConfiguration` that loads back to it (settings
    /// that only flags carry, such as `--manifests` and `--master`, are not in the file).
    pub fn to_file(&self) -> KubeProxyConfiguration {
        let section = ProxierSection {
            masquerade_bit: Some(i32::from(self.masquerade_bit)),
            masquerade_all: Some(self.masquerade_all),
            localhost_node_ports: (self.mode == ProxyMode::Iptables).then_some(self.localhost_nodeports),
            sync_period: Some(format_go_duration(self.sync_period)),
            min_sync_period: Some(format_go_duration(self.min_sync_period)),
        };
        let address = |a: Option<std::net::SocketAddr>| Some(a.map(|a| a.to_string()).unwrap_or_default());
        KubeProxyConfiguration {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some("KubeProxyConfiguration".to_owned()),
            client_connection: Some(ClientConnection {
                kubeconfig: self.kubeconfig.as_ref().map(|k| k.display().to_string()),
                ..ClientConnection::default()
            }),
            hostname_override: self.hostname_override.clone(),
            bind_address: Some(self.bind_address.to_string()),
            healthz_bind_address: address(self.healthz_bind_address),
            metrics_bind_address: address(self.metrics_bind_address),
            mode: Some(self.mode.name().to_owned()),
            iptables: Some(section.clone()),
            nftables: Some(ProxierSection {
                localhost_node_ports: (self.mode == ProxyMode::Nftables).then_some(self.nftables_localhost_nodeports),
                ..section
            }),
            detect_local_mode: Some(self.detect_local_mode.name().to_owned()),
            detect_local: detect_local(&self.detect_local_mode),
            cluster_cidr: Some(self.cluster_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
            node_port_addresses: Some(match &self.nodeport_addresses {
                NodePortAddresses::All => vec!["all".to_owned()],
                NodePortAddresses::Primary => vec!["primary".to_owned()],
                NodePortAddresses::Cidrs(cidrs) => cidrs.iter().map(ToString::to_string).collect(),
            }),
            config_sync_period: Some(format_go_duration(self.config_sync_period)),
            conntrack: Some(self.conntrack.to_file()),
            ..KubeProxyConfiguration::default()
        }
    }

    /// [`to_file`](Self::to_file) as YAML.
    pub fn to_yaml(&self) -> Result<String, String> {
        serde_saphyr::to_string(&self.to_file()).map_err(|e| e.to_string())
    }
}

/// The `detectLocal` section of `mode` (`None` for the CIDR modes).
fn detect_local(mode: &DetectLocalMode) -> Option<DetectLocal> {
    match mode {
        DetectLocalMode::ClusterCidr | DetectLocalMode::NodeCidr => None,
        DetectLocalMode::BridgeInterface(name) => {
            Some(DetectLocal { bridge_interface: Some(name.to_string()), ..DetectLocal::default() })
        }
        DetectLocalMode::InterfaceNamePrefix(prefix) => {
            Some(DetectLocal { interface_name_prefix: Some(prefix.to_string()), ..DetectLocal::default() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::layers::{ConfigLayers, PartialConfig};
    use super::*;

    fn resolved(flags: PartialConfig, file: Option<KubeProxyConfiguration>) -> ProxyConfig {
        ConfigLayers { flags, file, ..ConfigLayers::default() }.resolve().expect("valid")
    }

    #[test]
    fn the_written_file_loads_back_to_the_same_configuration() {
        for mode in ["iptables", "nftables", "userspace"] {
            let flags = PartialConfig {
                mode: Some(mode.to_owned()),
                hostname_override: Some("node7".to_owned()),
                cluster_cidr: Some("10.244.0.0/16,fd00:10::/48".to_owned()),
                nodeport_addresses: Some("192.168.0.0/24".to_owned()),
                masquerade_all: Some(true),
                masquerade_bit: Some(7),
                sync_period: Some("45s".to_owned()),
                min_sync_period: Some("2s".to_owned()),
                detect_local_mode: Some("NodeCIDR".to_owned()),
                healthz_bind_address: Some("127.0.0.1:10299".to_owned()),
                ..PartialConfig::default()
            };
            let config = resolved(flags, None);
            let yaml = config.to_yaml().expect("serializes");
            assert!(yaml.contains("kind: KubeProxyConfiguration"), "{yaml}");
            let file = KubeProxyConfiguration::from_yaml(&yaml).expect("loads back");
            let reloaded = resolved(PartialConfig::default(), Some(file));
            assert_eq!(reloaded, config, "{mode}:\n{yaml}");
        }
    }

    #[test]
    fn interface_detect_local_modes_round_trip() {
        for (mode, field) in
            [("BridgeInterface", "bridgeInterface: cbr0"), ("InterfaceNamePrefix", "interfaceNamePrefix: veth")]
        {
            let flags = PartialConfig {
                detect_local_mode: Some(mode.to_owned()),
                pod_bridge_interface: Some("cbr0".to_owned()),
                pod_interface_name_prefix: Some("veth".to_owned()),
                ..PartialConfig::default()
            };
            let config = resolved(flags, None);
            let yaml = config.to_yaml().expect("serializes");
            assert!(yaml.contains(field), "{yaml}");
            let file = KubeProxyConfiguration::from_yaml(&yaml).expect("loads back");
            assert_eq!(resolved(PartialConfig::default(), Some(file)), config, "{mode}:\n{yaml}");
        }
    }

    #[test]
    fn defaults_round_trip_too() {
        let config = resolved(PartialConfig::default(), None);
        let file = KubeProxyConfiguration::from_yaml(&config.to_yaml().expect("yaml")).expect("loads");
        assert_eq!(resolved(PartialConfig::default(), Some(file)), config);
    }
}
