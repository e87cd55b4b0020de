//! Objects from a directory of YAML manifests, followed by polling.
//!
//! Each `*.yaml`, `*.yml` or `*.json` file may hold several documents; documents of kind
//! Service, EndpointSlice and Node are used, others are ignored. A file that does not parse
//! keeps the objects it had before (and is reported once); a document that does not fit
//! its kind is skipped and reported once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{ObjectEvent, SourceEvent};

/// Every object found in a manifest directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    /// Services.
    pub services: Vec<Service>,
    /// EndpointSlices.
    pub slices: Vec<EndpointSlice>,
    /// Nodes.
    pub nodes: Vec<Node>,
}

/// Follows a manifest directory: emits the complete sets at start and after every change.
pub struct ManifestSource {
    dir: PathBuf,
    node_name: String,
    poll_interval: Duration,
}

impl ManifestSource {
    /// Follows `dir`, checking for changes every `poll_interval`; only the Node named
    /// `node_name` is passed on.
    pub fn new(dir: PathBuf, node_name: &str, poll_interval: Duration) -> Self {
        Self { dir, node_name: node_name.to_owned(), poll_interval }
    }

    /// Runs until `events` is closed.
    pub async fn run(self, events: mpsc::Sender<SourceEvent>) {
        let mut reader = DirReader::default();
        let mut last: Option<ManifestSet> = None;
        loop {
            let mut set = reader.read(&self.dir);
            set.nodes.retain(|n| n.metadata.name.as_deref() == Some(self.node_name.as_str()));
            if last.as_ref() != Some(&set) {
                if !send_all(&events, &set).await {
                    return;
                }
                last = Some(set);
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = events.closed() => return,
            }
        }
    }
}

async fn send_all(events: &mpsc::Sender<SourceEvent>, set: &ManifestSet) -> bool {
    let batch = [
        SourceEvent::Service(ObjectEvent::Reset(set.services.clone())),
        SourceEvent::EndpointSlice(ObjectEvent::Reset(set.slices.clone())),
        SourceEvent::Node(ObjectEvent::Reset(set.nodes.clone())),
    ];
    for event in batch {
        if events.send(event).await.is_err() {
            return false;
        }
    }
    true
}

/// Reads every manifest of `dir` once (reporting problems, skipping what does not parse).
pub fn read_manifests(dir: &Path) -> ManifestSet {
    DirReader::default().read(dir)
}

/// Remembers each file's last good documents, and which problems were reported.
#[derive(Default)]
struct DirReader {
    good: BTreeMap<PathBuf, Vec<Value>>,
    reported: HashSet<String>,
}

impl DirReader {
    fn read(&mut self, dir: &Path) -> ManifestSet {
        let files = manifest_files(dir).unwrap_or_else(|e| {
            self.report(format!("cannot read manifest directory {}: {e}", dir.display()));
            Vec::new()
        });
        self.good.retain(|path, _| files.contains(path));
        for path in &files {
            match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| parse_documents(&t)) {
                Ok(docs) => {
                    self.good.insert(path.clone(), docs);
                }
                Err(e) => self.report(format!("manifest {}: {e}; keeping its previous objects", path.display())),
            }
        }
        let mut set = ManifestSet::default();
        let docs: Vec<(PathBuf, Value)> =
            self.good.iter().flat_map(|(p, docs)| docs.iter().map(|d| (p.clone(), d.clone()))).collect();
        for (path, doc) in docs {
            if let Err(e) = add_document(&mut set, doc) {
                self.report(format!("manifest {}: {e}; skipped", path.display()));
            }
        }
        set
    }

    fn report(&mut self, message: String) {
        if self.reported.insert(message.clone()) {
            tracing::warn!("{message}");
        }
    }
}

fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json"))
        .collect();
    files.sort();
    Ok(files)
}

/// A YAML budget sized for clusters: the parser's defaults (1,024 documents, 250,000
/// nodes) are meant for configuration files, and a manifest directory of 10,000 Services
/// with their EndpointSlices is far larger. Aliases and depth keep their safe defaults.
fn manifest_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_documents = 10_000_000;
    budget.max_nodes = 500_000_000;
    budget.max_events = 1_000_000_000;
    budget.max_reader_input_bytes = Some(4 << 30);
    budget.max_total_scalar_bytes = 4 << 30;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, manifest_options()).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn add_document(set: &mut ManifestSet, doc: Value) -> Result<(), String> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>").to_owned();
    let typed = |e: serde_json::Error| format!("{kind} {name}: {e}");
    match kind.as_str() {
        "Service" => set.services.push(serde_json::from_value(doc).map_err(typed)?),
        "EndpointSlice" => set.slices.push(serde_json::from_value(doc).map_err(typed)?),
        "Node" => set.nodes.push(serde_json::from_value(doc).map_err(typed)?),
        "List" => {
            let items = doc.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for item in items {
                add_document(set, item)?;
            }
        }
        _ => tracing::debug!(kind, name, "manifest document of another kind ignored"),
    }
    Ok(())
}

#[cfg(test)]
#[path = "manifest_source_tests.rs"]
mod tests;
