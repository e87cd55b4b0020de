//! Log setup: level and format from the configuration; `RUST_LOG` refines it.

use std::io::IsTerminal;

use kproxy_runtime::config::{LogFormat, ProxyConfig};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(config: &ProxyConfig) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log_level));
    // Colours only for a person at a terminal: log collectors get plain lines.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
