//! The `KubeProxyConfiguration` file (`kubeproxy.config.k8s.io/v1alpha1`), as upstream
//! defines it (`pkg/proxy/apis/config/types.go`). Unknown fields are an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layers::PartialConfig;

/// The API version kproxy reads.
pub const API_VERSION: &str = "kubeproxy.config.k8s.io/v1alpha1";

/// A `KubeProxyConfiguration` document. Fields kproxy has no use for are accepted (so an
/// existing kube-proxy file loads) but ignored; see the README for which ones take effect.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs, reason = "field names and meanings are upstream's")]
pub struct KubeProxyConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<BTreeMap<String, bool>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_connection: Option<ClientConnection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname_override: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthz_bind_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_bind_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_address_hard_fail: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_profiling: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_hidden_metrics_for_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iptables: Option<ProxierSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipvs: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nftables: Option<ProxierSection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winkernel: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_local_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_local: Option<DetectLocal>,
    #[serde(rename = "clusterCIDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_cidr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port_addresses: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<Conntrack>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_sync_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_range: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub windows_run_as_service: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_sync_period: Option<String>,
}

/// `clientConnection`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs, reason = "field names and meanings are upstream's")]
pub struct ClientConnection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_content_types: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<i32>,
}

/// `iptables` and `nftables` sections.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs, reason = "field names and meanings are upstream's")]
pub struct ProxierSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masquerade_bit: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masquerade_all: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub localhost_node_ports: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_sync_period: Option<String>,
}

/// `detectLocal`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs, reason = "field names and meanings are upstream's")]
pub struct DetectLocal {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bridge_interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_name_prefix: Option<String>,
}

/// `conntrack`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(missing_docs, reason = "field names and meanings are upstream's")]
pub struct Conntrack {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_per_core: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_established_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_close_wait_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_be_liberal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_stream_timeout: Option<String>,
}

impl KubeProxyConfiguration {
    /// Parses a YAML (or JSON) document; the kind and version, when given, must be upstream's.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let config: Self = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if let Some(kind) = config.kind.as_deref().filter(|k| *k != "KubeProxyConfiguration") {
            return Err(format!("kind {kind:?} is not KubeProxyConfiguration"));
        }
        if let Some(version) = config.api_version.as_deref().filter(|v| *v != API_VERSION) {
            return Err(format!("apiVersion {version:?} is not supported (expected {API_VERSION})"));
        }
        Ok(config)
    }

    /// The settings this file makes, as a layer. The sync periods and masquerade settings
    /// come from the section of the mode in force (`mode` of this file, or `mode_hint`
    /// when the file does not say), the `iptables` section standing in for modes without one.
    pub fn to_layer(&self, mode_hint: Option<&str>) -> PartialConfig {
        let mode = self.mode.as_deref().filter(|m| !m.is_empty()).or(mode_hint);
        let section = match mode {
            Some("nftables" | "nft") => self.nftables.as_ref().or(self.iptables.as_ref()),
            _ => self.iptables.as_ref(),
        };
        let section = section.cloned().unwrap_or_default();
        let client = self.client_connection.clone().unwrap_or_default();
        let detect_local = self.detect_local.clone().unwrap_or_default();
        PartialConfig {
            mode: self.mode.clone().filter(|m| !m.is_empty()),
            kubeconfig: client.kubeconfig.filter(|k| !k.is_empty()),
            hostname_override: self.hostname_override.clone().filter(|h| !h.is_empty()),
            bind_address: self.bind_address.clone(),
            healthz_bind_address: self.healthz_bind_address.clone(),
            metrics_bind_address: self.metrics_bind_address.clone(),
            cluster_cidr: self.cluster_cidr.clone(),
            nodeport_addresses: self.node_port_addresses.as_ref().map(|a| a.join(",")),
            masquerade_all: section.masquerade_all,
            masquerade_bit: section.masquerade_bit,
            localhost_nodeports: self.iptables.as_ref().and_then(|s| s.localhost_node_ports),
            nftables_localhost_nodeports: self.nftables.as_ref().and_then(|s| s.localhost_node_ports),
            sync_period: self.sync_period.clone().or(section.sync_period),
            min_sync_period: self.min_sync_period.clone().or(section.min_sync_period),
            detect_local_mode: self.detect_local_mode.clone().filter(|m| !m.is_empty()),
            pod_bridge_interface: detect_local.bridge_interface.filter(|b| !b.is_empty()),
            pod_interface_name_prefix: detect_local.interface_name_prefix.filter(|p| !p.is_empty()),
            config_sync_period: self.config_sync_period.clone(),
            ..self.conntrack.as_ref().map(Conntrack::to_layer).unwrap_or_default()
        }
    }
}
