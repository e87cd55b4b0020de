//! One-shot modes: `--write-config-to` and `--init-only`; and the kernel settings the
//! daemon makes when it starts.

use std::path::Path;
use std::process::ExitCode;

use kproxy_runtime::config::ProxyConfig;
use kproxy_runtime::node_setup::{self, ProcFs};

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

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Makes the kernel settings `config` asks for; returns those that could not be made.
fn make_settings(config: &ProxyConfig) -> Vec<node_setup::SetupFailure> {
    node_setup::apply(&node_setup::settings(config, cpus()), &ProcFs)
}

/// Applies the privileged one-time setup and exits (upstream's `--init-only`): status 1
/// when a setting the mode needs could not be made.
pub fn run(config: &ProxyConfig) -> ExitCode {
    let failures = make_settings(config);
    if let Some(failure) = failures.iter().find(|f| f.setting.required) {
        let setting = &failure.setting;
        eprintln!(
            "kproxy --init-only: cannot set {} = {} ({}): {}",
            setting.path, setting.value, setting.why, failure.error
        );
        return ExitCode::FAILURE;
    }
    tracing::info!(mode = config.mode.name(), "initialisation done");
    ExitCode::SUCCESS
}

/// The same settings when the daemon starts; what cannot be made (a container without the
/// privilege, after an init container made them) is logged and the proxy runs on.
pub fn at_start(config: &ProxyConfig) {
    let failures = make_settings(config);
    if !failures.is_empty() {
        tracing::warn!(failed = failures.len(), "some kernel settings were not made; the proxy runs without them");
    }
}
