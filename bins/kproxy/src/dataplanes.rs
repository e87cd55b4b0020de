//! The dataplanes compiled into this binary, each behind the Cargo feature named after its mode.

use std::process::ExitCode;

use kproxy_core::Dataplane;
use kproxy_runtime::config::{ConfigError, ProxyConfig, ProxyMode};

/// Builds the dataplane of `config.mode`.
pub fn build(config: &ProxyConfig) -> Result<Box<dyn Dataplane>, ConfigError> {
    match config.mode {
        #[cfg(feature = "nftables")]
        ProxyMode::Nftables => Ok(Box::new(nftables::build(config))),
        mode => Err(ConfigError::ModeNotCompiled { mode: mode.name(), feature: mode.name() }),
    }
}

/// Every compiled-in dataplane, for `--cleanup`.
fn all(config: &ProxyConfig) -> Vec<Box<dyn Dataplane>> {
    [nftables_dataplane(config)].into_iter().flatten().collect()
}

#[cfg(feature = "nftables")]
fn nftables_dataplane(config: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
    Some(Box::new(nftables::build(config)))
}

#[cfg(not(feature = "nftables"))]
fn nftables_dataplane(_: &ProxyConfig) -> Option<Box<dyn Dataplane>> {
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

#[cfg(feature = "nftables")]
mod nftables {
    use kproxy_nftables::{NftablesConfig, NftablesDataplane, NodePortAddresses};
    use kproxy_runtime::config::{self, ProxyConfig};

    /// The nftables dataplane configured from the daemon's configuration.
    pub fn build(config: &ProxyConfig) -> NftablesDataplane {
        NftablesDataplane::new(NftablesConfig {
            cluster_cidrs: config.cluster_cidrs.clone(),
            masquerade_all: config.masquerade_all,
            masquerade_mark: config.masquerade_mark(),
            nodeport_addresses: match &config.nodeport_addresses {
                config::NodePortAddresses::Cidrs(cidrs) => NodePortAddresses::Cidrs(cidrs.clone()),
                // `primary` narrows to the node's IPs upstream; kproxy accepts every local address.
                config::NodePortAddresses::All | config::NodePortAddresses::Primary => NodePortAddresses::All,
            },
            ..NftablesConfig::default()
        })
    }
}
