//! `kproxy render`: what a dataplane would program for a manifest directory (dry run).

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use kproxy_core::{ChangeTracker, ProxyLoop};
use kproxy_runtime::source::read_manifests;

/// Reads the manifests into a state and prints the dataplane's rendering of it.
pub fn run(mode: &str, manifests: &Path, node: &str, cluster_cidr: Option<&str>) -> ExitCode {
    let flags = kproxy_runtime::config::PartialConfig {
        mode: Some(mode.to_owned()),
        hostname_override: Some(node.to_owned()),
        cluster_cidr: cluster_cidr.map(str::to_owned),
        ..Default::default()
    };
    let config = match (kproxy_runtime::config::ConfigLayers { flags, ..Default::default() }).resolve() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kproxy render: {error}");
            return ExitCode::from(2);
        }
    };
    // Problems reading the manifests are logged; show them on standard error.
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").try_init();
    let proxy = loop_from(manifests, node);
    match crate::dataplanes::build(&config) {
        Ok(dataplane) => {
            print!("{}", dataplane.render(proxy.state()));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kproxy render: {error}");
            ExitCode::from(2)
        }
    }
}

/// The daemon's loop, with the state it would reach from these manifests checked out.
fn loop_from(dir: &Path, node: &str) -> ProxyLoop {
    let set = read_manifests(dir);
    let mut tracker = ChangeTracker::new(node, SystemTime::now());
    let errors = set
        .undecodable
        .into_iter()
        .chain(tracker.on_services_reset(&set.services))
        .chain(tracker.on_slices_reset(&set.slices));
    for error in errors {
        eprintln!("kproxy render: skipping malformed object: {error}");
    }
    for n in set.nodes.iter().filter(|n| n.metadata.name.as_deref() == Some(node)) {
        if let Err(error) = tracker.on_node_update(n) {
            eprintln!("kproxy render: skipping malformed object: {error}");
        }
    }
    let mut proxy = ProxyLoop::new(node);
    proxy.checkout(&mut tracker, true);
    for conflict in proxy.state().families().flat_map(|f| f.services.conflicts()) {
        eprintln!(
            "kproxy render: {} loses {} to {} (the older Service keeps it)",
            conflict.loser, conflict.claim, conflict.winner
        );
    }
    proxy
}
