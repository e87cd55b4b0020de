//! `kproxy render`: what a dataplane would program for a manifest directory (dry run).

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use kproxy_core::{Changes, Dataplane, ObjectEvent, ProxyLoop, ProxyState, SourceEvent, SyncError, SyncStats};
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
    let dataplane = match crate::dataplanes::build(&config) {
        Ok(dataplane) => dataplane,
        Err(error) => {
            eprintln!("kproxy render: {error}");
            return ExitCode::from(2);
        }
    };
    match render(manifests, node, dataplane) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kproxy render: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Feeds the manifests to the daemon's loop as its manifest source would, and syncs it once
/// into `dataplane`'s rendering (nothing touches the kernel).
fn render(dir: &Path, node: &str, dataplane: Box<dyn Dataplane>) -> Result<String, SyncError> {
    let set = read_manifests(dir);
    for error in &set.undecodable {
        eprintln!("kproxy render: skipping malformed object: {error}");
    }
    let own = set.nodes.into_iter().filter(|n| n.metadata.name.as_deref() == Some(node)).collect();
    let mut proxy = ProxyLoop::new(node, SystemTime::now());
    let events = [
        SourceEvent::Service(ObjectEvent::reset(set.services)),
        SourceEvent::EndpointSlice(ObjectEvent::reset(set.slices)),
        SourceEvent::Node(ObjectEvent::reset(own)),
        SourceEvent::ServiceCidr(ObjectEvent::reset(set.service_cidrs)),
    ];
    for event in events {
        for malformed in proxy.on_event(event) {
            eprintln!("kproxy render: skipping malformed object: {}", malformed.error);
        }
    }
    let mut rendering = Rendering { dataplane, text: String::new() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| SyncError::fatal("render", "start the async runtime", e))?;
    let report = runtime.block_on(proxy.sync(&mut rendering, true))?;
    for conflict in report.new_conflicts {
        eprintln!(
            "kproxy render: {} loses {} to {} (the older Service keeps it)",
            conflict.loser, conflict.claim, conflict.winner
        );
    }
    Ok(rendering.text)
}

/// A dataplane's rendering as a [`Dataplane`]: a sync renders the state as text.
struct Rendering {
    dataplane: Box<dyn Dataplane>,
    text: String,
}

#[async_trait::async_trait]
impl Dataplane for Rendering {
    fn name(&self) -> &'static str {
        self.dataplane.name()
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        self.text = self.dataplane.render(state);
        let service_ports = state.families().map(|f| f.services.len()).sum();
        Ok(SyncStats { full: changes.full(), service_ports, touched_service_ports: service_ports, rules: 0 })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}
