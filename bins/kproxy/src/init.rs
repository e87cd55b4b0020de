//! One-shot modes: `--write-config-to` and `--init-only`.

use std::path::Path;
use std::process::ExitCode;

use kproxy_runtime::config::{ProxyConfig, ProxyMode};

/// Writes the effective configuration to `path` as a `KubeProxyConfiguration`.
pub fn write_config(config: &ProxyConfig, path: &Path) -> ExitCode {
    let written = config.to_yaml().and_then(|yaml| std::fs::write(path, yaml).map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "configuration written");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kproxy: cannot write the configuration to {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// A kernel setting the mode in force needs, as `/proc/sys` names it.
struct Sysctl {
    path: &'static str,
    value: &'static str,
    why: &'static str,
}

/// What `config` needs set with full privileges before the proxy starts.
fn sysctls(config: &ProxyConfig) -> Vec<Sysctl> {
    let mut out = Vec::new();
    if config.mode == ProxyMode::Iptables && config.localhost_nodeports {
        out.push(Sysctl {
            path: "/proc/sys/net/ipv4/conf/all/route_localnet",
            value: "1",
            why: "NodePorts on 127.0.0.1 (--iptables-localhost-nodeports)",
        });
    }
    out
}

/// Applies the privileged one-time setup and exits (upstream's `--init-only`).
pub fn run(config: &ProxyConfig) -> ExitCode {
    for sysctl in sysctls(config) {
        if let Err(error) = std::fs::write(sysctl.path, sysctl.value) {
            eprintln!("kproxy --init-only: cannot set {} = {} ({}): {error}", sysctl.path, sysctl.value, sysctl.why);
            return ExitCode::FAILURE;
        }
        tracing::info!(sysctl = sysctl.path, value = sysctl.value, why = sysctl.why, "set");
    }
    tracing::info!(mode = config.mode.name(), "initialisation done");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use kproxy_runtime::config::{ConfigLayers, PartialConfig};

    use super::*;

    fn config(mode: &str, localhost: Option<bool>) -> ProxyConfig {
        let flags =
            PartialConfig { mode: Some(mode.to_owned()), localhost_nodeports: localhost, ..PartialConfig::default() };
        ConfigLayers { flags, ..ConfigLayers::default() }.resolve().expect("valid")
    }

    #[test]
    fn only_iptables_with_localhost_node_ports_needs_route_localnet() {
        assert_eq!(sysctls(&config("iptables", Some(true))).len(), 1);
        assert!(sysctls(&config("iptables", Some(false))).is_empty());
        assert!(sysctls(&config("nftables", None)).is_empty());
    }
}
