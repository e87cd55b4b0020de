//! `kproxy explain`: what happens on this node to a packet sent to a destination, from a
//! manifest directory (`--manifests`, loaded as `kproxy render` loads it) or from a running
//! daemon (`--daemon`, its `/explain` answer). Both answers come from
//! [`kproxy_core::explain::explain`].

mod daemon;
mod text;

use std::net::IpAddr;
use std::process::ExitCode;

use kproxy_core::explain::{Destination, Explanation, Query};
use kproxy_runtime::config::{ConfigError, PartialConfig, ProxyConfig};

use crate::cli::{ExplainArgs, OutputFormat};

const WHO: &str = "kproxy explain";
/// Exit status for bad input.
const EXIT_USAGE: u8 = 2;

/// Runs `kproxy explain`; `config` loads the daemon's configuration (for its metrics
/// address) when neither `--manifests` nor `--daemon` is given.
pub fn run(args: &ExplainArgs, config: impl FnOnce() -> Result<ProxyConfig, ConfigError>) -> ExitCode {
    let query = match query(args) {
        Ok(query) => query,
        Err(message) => return usage(&message),
    };
    let answer = match &args.manifests {
        Some(dir) => from_manifests(args, dir, &query),
        None => {
            let url = match &args.daemon {
                Some(url) => url.clone(),
                None => match config() {
                    Ok(config) => match daemon::default_url(&config) {
                        Some(url) => url,
                        None => return usage("the metrics server is disabled; give --daemon URL or --manifests DIR"),
                    },
                    Err(error) => return usage(&error.to_string()),
                },
            };
            daemon::ask(&url, &query)
        }
    };
    match answer {
        Ok(explanation) => print(&explanation, args.output),
        Err(failure) => failure.report(),
    }
}

/// Why no explanation came.
#[derive(Debug)]
pub enum Failure {
    /// Bad input (exit 2).
    Usage(String),
    /// Anything else: the daemon unreachable, the manifests unloadable (exit 1).
    Other(String),
    /// Already reported, with this status.
    Reported(ExitCode),
}

impl Failure {
    fn report(self) -> ExitCode {
        match self {
            Self::Usage(message) => usage(&message),
            Self::Other(message) => {
                eprintln!("{WHO}: {message}");
                ExitCode::FAILURE
            }
            Self::Reported(code) => code,
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("{WHO}: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// The destination and source of the arguments.
fn query(args: &ExplainArgs) -> Result<Query, String> {
    let destination: Destination = args.destination.parse().map_err(|e| format!("{e}"))?;
    let source = match &args.from {
        Some(from) => Some(from.parse::<IpAddr>().map_err(|_| format!("invalid --from {from:?}: not an IP address"))?),
        None => None,
    };
    Ok(Query { destination, source })
}

fn from_manifests(args: &ExplainArgs, dir: &std::path::Path, query: &Query) -> Result<Explanation, Failure> {
    let flags = PartialConfig {
        mode: Some(args.mode.clone()),
        hostname_override: Some(args.hostname_override.clone()),
        cluster_cidr: args.cluster_cidr.clone(),
        masquerade_all: args.masquerade_all,
        nodeport_addresses: args.nodeport_addresses.clone(),
        ..Default::default()
    };
    let dataplane = crate::render::dataplane(WHO, flags).map_err(Failure::Reported)?;
    let loaded =
        crate::render::load(dir, &args.hostname_override, dataplane, WHO).map_err(|e| Failure::Other(e.to_string()))?;
    Ok(kproxy_core::explain_with(loaded.dataplane.as_ref(), loaded.state(), query))
}

fn print(explanation: &Explanation, output: OutputFormat) -> ExitCode {
    match output {
        OutputFormat::Text => print!("{}", text::render(explanation)),
        OutputFormat::Json => match serde_json::to_string_pretty(explanation) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("{WHO}: cannot write JSON: {error}");
                return ExitCode::FAILURE;
            }
        },
    }
    ExitCode::SUCCESS
}
