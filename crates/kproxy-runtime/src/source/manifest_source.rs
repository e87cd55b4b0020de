//! Objects from a directory of YAML manifests, followed by polling.
//!
//! Each `*.yaml`, `*.yml` or `*.json` file may hold several documents; documents of kind
//! Service, EndpointSlice, Node and ServiceCIDR are used, others are ignored. A file that does not parse
//! keeps the objects it had before (and is reported once); a document that does not fit
//! its kind is skipped and reported once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::{ConversionError, ObjectKind};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;

use super::lenient::Lenient;
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
    /// ServiceCIDRs (networking.k8s.io/v1).
    pub service_cidrs: Vec<ServiceCIDR>,
    /// Documents of those kinds that do not decode as their kind (a field of the wrong
    /// type), each reported and counted like a malformed object.
    pub undecodable: Vec<ConversionError>,
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
        let mut first = true;
        loop {
            if let Some(mut set) = reader.read_changes(&self.dir).or_else(|| first.then(ManifestSet::default)) {
                set.nodes.retain(|n| n.metadata.name.as_deref() == Some(self.node_name.as_str()));
                if !send_all(&events, set).await {
                    return;
                }
                first = false;
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = events.closed() => return,
            }
        }
    }
}

async fn send_all(events: &mpsc::Sender<SourceEvent>, set: ManifestSet) -> bool {
    let undecodable = |kind: ObjectKind| set.undecodable.iter().filter(|e| e.kind == kind).cloned().collect();
    let batch = [
        SourceEvent::Service(ObjectEvent::Reset {
            undecodable: undecodable(ObjectKind::Service),
            objects: set.services,
        }),
        SourceEvent::EndpointSlice(ObjectEvent::Reset {
            undecodable: undecodable(ObjectKind::EndpointSlice),
            objects: set.slices,
        }),
        SourceEvent::Node(ObjectEvent::Reset { undecodable: undecodable(ObjectKind::Node), objects: set.nodes }),
        SourceEvent::ServiceCidr(ObjectEvent::Reset {
            undecodable: undecodable(ObjectKind::ServiceCidr),
            objects: set.service_cidrs,
        }),
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
    DirReader::default().read_changes(dir).unwrap_or_default()
}

/// When a file was last seen changed: its modification time and length.
type Stamp = (Option<std::time::SystemTime>, u64);

/// What is remembered of one file: when it last changed, and the text that last parsed.
/// Only the text is kept, not its objects (API objects take several times its size): the
/// objects are parsed again from it when another file changes.
#[derive(Default)]
struct FileText {
    stamp: Stamp,
    /// The last text that parsed; empty (no objects) before any did.
    text: String,
}

/// Remembers each file's last text that parsed, and which problems were reported. Only
/// files whose modification time or length changed are read again.
#[derive(Default)]
struct DirReader {
    files: BTreeMap<PathBuf, FileText>,
    reported: HashSet<String>,
}

impl DirReader {
    /// Rereads changed files; returns every object when anything changed.
    fn read_changes(&mut self, dir: &Path) -> Option<ManifestSet> {
        let files = manifest_files(dir).unwrap_or_else(|e| {
            self.report(format!("cannot read manifest directory {}: {e}", dir.display()));
            Vec::new()
        });
        let before = self.files.len();
        self.files.retain(|path, _| files.contains(path));
        let mut changed = self.files.len() != before;
        let mut fresh = BTreeMap::new();
        for path in &files {
            if let Some((set, file_changed)) = self.read_file(path) {
                changed |= file_changed;
                fresh.insert(path.clone(), set);
            }
        }
        changed.then(|| self.merged(fresh))
    }

    /// Rereads `path` if it changed: its objects, and whether they differ from the last
    /// ones; `None` when the file did not change or does not parse (it keeps its objects).
    fn read_file(&mut self, path: &Path) -> Option<(ManifestSet, bool)> {
        let stamp = std::fs::metadata(path).map(|m| (m.modified().ok(), m.len())).unwrap_or_default();
        if self.files.get(path).is_some_and(|f| f.stamp == stamp) {
            return None;
        }
        let read = std::fs::read_to_string(path).map_err(|e| e.to_string());
        let parsed = read.and_then(|text| parse_file(&text).map(|set| (text, set)));
        let known = self.files.contains_key(path);
        let file = self.files.entry(path.to_owned()).or_default();
        file.stamp = stamp;
        match parsed {
            Ok((text, set)) => {
                let changed = !known || (text != file.text && parse_file(&file.text).unwrap_or_default() != set);
                file.text = text;
                Some((set, changed))
            }
            Err(e) => {
                self.report(format!("manifest {}: {e}; keeping its previous objects", path.display()));
                None
            }
        }
    }

    /// Every object of every file, in file order: `fresh` holds the files just parsed, the
    /// others are parsed again from their last good text.
    fn merged(&self, mut fresh: BTreeMap<PathBuf, ManifestSet>) -> ManifestSet {
        let mut set = ManifestSet::default();
        for (path, file) in &self.files {
            let file = match fresh.remove(path) {
                Some(parsed) => parsed,
                // A text that parsed before parses again.
                None => parse_file(&file.text).unwrap_or_default(),
            };
            append(&mut set.services, file.services);
            append(&mut set.slices, file.slices);
            append(&mut set.nodes, file.nodes);
            append(&mut set.service_cidrs, file.service_cidrs);
            append(&mut set.undecodable, file.undecodable);
        }
        set.services.shrink_to_fit();
        set.slices.shrink_to_fit();
        set
    }

    fn report(&mut self, message: String) {
        if self.reported.insert(message.clone()) {
            tracing::warn!("{message}");
        }
    }
}

/// Appends `more` to `into`, taking `more` whole when `into` is empty (no copy of the
/// objects of a directory's only file).
fn append<T>(into: &mut Vec<T>, mut more: Vec<T>) {
    if into.is_empty() {
        *into = more;
    } else {
        into.append(&mut more);
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

/// Parses a file one document at a time (so memory stays bounded by the largest
/// document): a YAML error fails the file; a document that does not fit its kind is
/// kept as undecodable (reported and counted by the daemon's event handler).
fn parse_file(text: &str) -> Result<ManifestSet, String> {
    let mut set = ManifestSet::default();
    for document in split_documents(text) {
        let doc: Value = serde_saphyr::from_str(document).map_err(|e| e.to_string())?;
        if doc.is_null() {
            continue;
        }
        add_document(&mut set, doc);
    }
    Ok(set)
}

/// The documents of a YAML stream: the text between lines starting with `---`.
fn split_documents(text: &str) -> Vec<&str> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") {
            documents.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    documents.push(&text[start..]);
    documents.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

/// Adds one document (each item of a `List` on its own): an object that does not decode
/// as its kind is kept as undecodable, never failing its siblings.
fn add_document(set: &mut ManifestSet, doc: Value) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    match kind.as_str() {
        "Service" => decode_into(&doc, ObjectKind::Service, &mut set.services, &mut set.undecodable),
        "EndpointSlice" => decode_into(&doc, ObjectKind::EndpointSlice, &mut set.slices, &mut set.undecodable),
        "Node" => decode_into(&doc, ObjectKind::Node, &mut set.nodes, &mut set.undecodable),
        "ServiceCIDR" => decode_into(&doc, ObjectKind::ServiceCidr, &mut set.service_cidrs, &mut set.undecodable),
        "List" => {
            let items = doc.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for item in items {
                add_document(set, item);
            }
        }
        _ => {
            let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>");
            tracing::debug!(kind, name, "manifest document of another kind ignored");
        }
    }
}

fn decode_into<K: DeserializeOwned>(doc: &Value, kind: ObjectKind, out: &mut Vec<K>, bad: &mut Vec<ConversionError>) {
    match Lenient::<K>::decode(doc) {
        Lenient::Decoded(object) => out.push(object),
        Lenient::Undecodable(undecodable) => bad.push(undecodable.error(kind)),
    }
}

#[cfg(test)]
#[path = "manifest_source_tests.rs"]
mod tests;
