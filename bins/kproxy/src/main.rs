//! The kproxy daemon: parse flags and config, pick the dataplane by mode, run.

mod cli;
mod config_watch;
mod dataplanes;
mod explain;
#[cfg(feature = "heap-profile")]
mod heap_profile;
mod init;
mod logging;
mod render;

use std::process::ExitCode;

use clap::Parser;
use kproxy_runtime::config::{ConfigError, ConfigLayers, KubeProxyConfiguration, ProxyConfig};

/// Exit status for a bad flag or configuration (as clap uses for usage errors).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    #[cfg(feature = "heap-profile")]
    heap_profile::start();
    let code = run();
    #[cfg(feature = "heap-profile")]
    heap_profile::write();
    code
}

fn run() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Some(cli::Command::Render { mode, manifests, hostname_override, cluster_cidr }) = &cli.command {
        return render::run(mode, manifests, hostname_override, cluster_cidr.as_deref());
    }
    if let Some(cli::Command::Explain(args)) = &cli.command {
        return explain::run(args, || load_config(&cli.flags));
    }
    let config = match load_config(&cli.flags) {
        Ok(config) => config,
        Err(error) => return usage_error(&error),
    };
    logging::init(&config);
    if let Some(path) = &cli.flags.write_config_to {
        return init::write_config(&config, path);
    }
    if cli.flags.init_only == Some(true) {
        return init::run(&config);
    }
    let ignored = cli.flags.ignored.given();
    if !ignored.is_empty() {
        tracing::warn!(flags = ?ignored, "kube-proxy flags accepted but without effect in kproxy");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kproxy: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    if cli.flags.cleanup == Some(true) {
        return runtime.block_on(dataplanes::cleanup_all(&config));
    }
    init::at_start(&config);
    #[cfg(feature = "heap-profile")]
    runtime.block_on(async { heap_profile::write_on_signal() });
    let dataplane = match dataplanes::build(&config) {
        Ok(dataplane) => dataplane,
        Err(error) => return usage_error(&error),
    };
    let config_changed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = config_watch::stop_on(shutdown_signal(), cli.flags.config.clone(), config_changed.clone());
    match runtime.block_on(kproxy_runtime::daemon::run(config, dataplane, stop)) {
        // As upstream: a changed configuration file is an error exit, so the proxy is
        // restarted with it.
        Ok(()) if config_changed.load(std::sync::atomic::Ordering::SeqCst) => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "kproxy stopped");
            ExitCode::FAILURE
        }
    }
}

/// Reads `--config`, merges the layers and validates them.
fn load_config(flags: &cli::Flags) -> Result<ProxyConfig, ConfigError> {
    let file = match &flags.config {
        Some(path) => {
            let file_error = |reason: String| ConfigError::File { path: path.display().to_string(), reason };
            let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
            Some(KubeProxyConfiguration::from_yaml(&text).map_err(file_error)?)
        }
        None => None,
    };
    let env = std::env::vars().filter(|(k, _)| k.starts_with("KPROXY_")).collect();
    ConfigLayers { file, env, flags: flags.to_layer() }.resolve()
}

fn usage_error(error: &ConfigError) -> ExitCode {
    eprintln!("kproxy: {error}");
    ExitCode::from(EXIT_USAGE)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down; programmed rules stay in place");
}
