//! The dataplanes compiled into this binary, each behind the Cargo feature named after its mode.

use std::process::ExitCode;

use kproxy_core::Dataplane;
use kproxy_runtime::config::{ConfigError, ProxyConfig, ProxyMode};

/// Builds the dataplane of `config.mode`.
pub fn build(config: &ProxyConfig) -> Result<Box<dyn Dataplane>, ConfigError> {
    match config.mode {
        mode @ (ProxyMode::Nftables | ProxyMode::Iptables | ProxyMode::Userspace | ProxyMode::Ebpf) => {
            let _ = config;
            Err(ConfigError::ModeNotCompiled { mode: mode.name(), feature: mode.name() })
        }
    }
}

/// `--cleanup`: removes what every compiled-in mode installed.
pub async fn cleanup_all(config: &ProxyConfig) -> ExitCode {
    let _ = config;
    tracing::info!("cleanup: no dataplane is compiled in; nothing to remove");
    ExitCode::SUCCESS
}
