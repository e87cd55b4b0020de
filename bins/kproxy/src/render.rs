//! `kproxy render`: what a dataplane would program for a manifest directory (dry run). The
//! loading is shared with `kproxy explain --manifests`.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use kproxy_core::{Changes, Dataplane, ObjectEvent, ProxyLoop, ProxyState, SourceEvent, SyncError, SyncStats};
use kproxy_runtime::config::{ConfigLayers, PartialConfig, ProxyConfig};
use kproxy_runtime::source::read_manifests;

/// Reads the manifests into a state and prints the dataplane's rendering of it.
pub fn run(mode: &str, manifests: &Path, node: &str, cluster_cidr: Option<&str>) -> ExitCode {
    let flags = PartialConfig {
        mode: Some(mode.to_owned()),
        hostname_override: Some(node.to_owned()),
        cluster_cidr: cluster_cidr.map(str::to_owned),
        ..Default::default()
    };
    let dataplane = match dataplane("kproxy render", flags) {
        Ok(dataplane) => dataplane,
        Err(code) => return code,
    };
    match load(manifests, node, dataplane, "kproxy render") {
        Ok(loaded) => {
            print!("{}", loaded.text);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kproxy render: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The dataplane of the configuration `flags` make; a bad value or a mode not compiled in
/// is reported as `who: …` and exits 2.
pub fn dataplane(who: &str, flags: PartialConfig) -> Result<Box<dyn Dataplane>, ExitCode> {
    let config: ProxyConfig = ConfigLayers { flags, ..Default::default() }.resolve().map_err(|error| {
        eprintln!("{who}: {error}");
        ExitCode::from(2)
    })?;
    // Problems reading the manifests are logged; show them on standard error.
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("warn").try_init();
    crate::dataplanes::build(&config).map_err(|error| {
        eprintln!("{who}: {error}");
        ExitCode::from(2)
    })
}

/// A manifest directory synced once through the daemon's loop into a dataplane's rendering.
pub struct Loaded {
    /// The loop, holding the programmed state.
    pub proxy: ProxyLoop,
    /// The dataplane (it touched nothing: only its rendering ran).
    pub dataplane: Box<dyn Dataplane>,
    /// Its rendering of the state.
    pub text: String,
}

impl Loaded {
    /// The state as programmed.
    pub fn state(&self) -> &ProxyState {
        self.proxy.state()
    }
}

/// Feeds the manifests to the daemon's loop as its manifest source would, and syncs it once
/// into `dataplane`'s rendering (nothing touches the kernel); problems are reported as
/// `who: …` on standard error.
pub fn load(dir: &Path, node: &str, dataplane: Box<dyn Dataplane>, who: &str) -> Result<Loaded, SyncError> {
    let set = read_manifests(dir);
    for error in &set.undecodable {
        eprintln!("{who}: skipping malformed object: {error}");
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
            eprintln!("{who}: skipping malformed object: {}", malformed.error);
        }
    }
    let mut rendering = Rendering { dataplane, text: String::new() };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| SyncError::fatal("render", "start the async runtime", e))?;
    let report = runtime.block_on(proxy.sync(&mut rendering, true))?;
    for conflict in report.new_conflicts {
        eprintln!(
            "{who}: {} loses {} to {} (the older Service keeps it)",
            conflict.loser, conflict.claim, conflict.winner
        );
    }
    Ok(Loaded { proxy, dataplane: rendering.dataplane, text: rendering.text })
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
        Ok(SyncStats {
            full: changes.full(),
            service_ports,
            touched_service_ports: service_ports,
            ..SyncStats::default()
        })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}
