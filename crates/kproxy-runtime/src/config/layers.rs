//! Layering: compiled-in defaults < config file < `KPROXY_*` environment < flags, with figment.

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Serialize};

use super::file::KubeProxyConfiguration;
use super::validate::{ConfigError, ProxyConfig};

/// Every setting as text, each optional: one layer of configuration. Keys are the flag
/// names with `_` for `-`; the environment variable of a key is `KPROXY_` + its upper case
/// (e.g. `KPROXY_SYNC_PERIOD=10s`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs, reason = "each field is the flag of the same name")]
pub struct PartialConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifests: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_override: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthz_bind_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_bind_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodeport_addresses: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masquerade_all: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masquerade_bit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_nodeports: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nftables_localhost_nodeports: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_sync_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_local_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_bridge_interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_interface_name_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_sync_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_cgroup_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_pin_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_interfaces: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_netns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_map_sizes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_max_per_core: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_min: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_tcp_timeout_established: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_tcp_timeout_close_wait: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_tcp_be_liberal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_udp_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack_udp_timeout_stream: Option<String>,
}

impl PartialConfig {
    /// The compiled-in defaults (upstream's, with nftables as the default mode).
    pub fn defaults() -> Self {
        Self {
            mode: Some("nftables".to_owned()),
            bind_address: Some("0.0.0.0".to_owned()),
            healthz_bind_address: Some("0.0.0.0:10256".to_owned()),
            metrics_bind_address: Some("127.0.0.1:10249".to_owned()),
            masquerade_all: Some(false),
            masquerade_bit: Some(14),
            localhost_nodeports: Some(true),
            nftables_localhost_nodeports: Some(false),
            sync_period: Some("30s".to_owned()),
            min_sync_period: Some("1s".to_owned()),
            detect_local_mode: Some("ClusterCIDR".to_owned()),
            config_sync_period: Some("15m0s".to_owned()),
            log_level: Some("info".to_owned()),
            log_format: Some("text".to_owned()),
            ebpf_pin_path: Some("/sys/fs/bpf/kproxy".to_owned()),
            ..Self::default()
        }
    }
}

/// The layers of one start-up, merged and validated by [`ConfigLayers::resolve`].
#[derive(Debug, Clone, Default)]
pub struct ConfigLayers {
    /// The `--config` file, already read.
    pub file: Option<KubeProxyConfiguration>,
    /// `KPROXY_*` variables (normally the process environment; tests pass their own).
    pub env: Vec<(String, String)>,
    /// The flags given on the command line.
    pub flags: PartialConfig,
}

impl ConfigLayers {
    /// Merges the layers and validates the result.
    pub fn resolve(&self) -> Result<ProxyConfig, ConfigError> {
        let merged = self.merge()?;
        ProxyConfig::validate(&merged)
    }

    /// Merges the layers without validating.
    pub fn merge(&self) -> Result<PartialConfig, ConfigError> {
        let mode_hint = self.flags.mode.clone().or_else(|| self.env_value("MODE"));
        let file_layer = self.file.as_ref().map(|f| f.to_layer(mode_hint.as_deref())).unwrap_or_default();
        let env_layer = self.env_layer()?;
        Figment::from(Serialized::defaults(PartialConfig::defaults()))
            .merge(Serialized::defaults(file_layer))
            .merge(Serialized::defaults(env_layer))
            .merge(Serialized::defaults(&self.flags))
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    fn env_value(&self, key: &str) -> Option<String> {
        let wanted = format!("KPROXY_{key}");
        self.env.iter().find(|(k, _)| *k == wanted).map(|(_, v)| v.clone())
    }

    /// Reads the `KPROXY_*` variables into a layer; an unknown `KPROXY_` key is an error.
    fn env_layer(&self) -> Result<PartialConfig, ConfigError> {
        let mut figment = Figment::new();
        for (key, value) in self.env.iter().filter(|(k, _)| k.starts_with("KPROXY_")) {
            let name = key["KPROXY_".len()..].to_lowercase();
            figment = figment.merge(Serialized::default(&name, env_value(&name, value)?));
        }
        figment.extract().map_err(|e| ConfigError::Invalid(format!("KPROXY_* environment: {e}")))
    }
}

/// An environment value typed as its key wants it.
fn env_value(key: &str, value: &str) -> Result<figment::value::Value, ConfigError> {
    use figment::value::Value;
    let bad = || ConfigError::Invalid(format!("KPROXY_{}={value:?}: not a valid value", key.to_uppercase()));
    Ok(match key {
        "masquerade_all" | "localhost_nodeports" | "nftables_localhost_nodeports" => {
            Value::from(value.parse::<bool>().map_err(|_| bad())?)
        }
        "masquerade_bit" | "conntrack_max_per_core" | "conntrack_min" => {
            Value::from(value.parse::<i32>().map_err(|_| bad())?)
        }
        "conntrack_tcp_be_liberal" => Value::from(value.parse::<bool>().map_err(|_| bad())?),
        _ => Value::from(value.to_owned()),
    })
}
