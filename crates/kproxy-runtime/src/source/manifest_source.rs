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

/// Follows a manifest directory: emits the complete sets at start and after every change,
/// as relists in pieces (the objects are parsed from the files' texts as they are sent, so
/// a large directory is never held as objects whole).
pub struct ManifestSource {
    dir: PathBuf,
    node_name: String,
    poll_interval: Duration,
}

/// Objects per piece of a relist.
const PIECE: usize = 256;

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
            if (reader.read_changes(&self.dir) || first) && !self.send_all(&reader, &events).await {
                return;
            }
            first = false;
            tokio::select! {
                () = tokio::time::sleep(self.poll_interval) => {}
                () = events.closed() => return,
            }
        }
    }

    /// Every object of `reader`'s files as one relist per kind; false when nobody listens.
    async fn send_all(&self, reader: &DirReader, events: &mpsc::Sender<SourceEvent>) -> bool {
        for event in list_marks(false) {
            if events.send(event).await.is_err() {
                return false;
            }
        }
        let mut piece = ManifestSet::default();
        for object in reader.objects() {
            piece.add(object);
            piece.nodes.retain(|n| n.metadata.name.as_deref() == Some(self.node_name.as_str()));
            if piece.len() >= PIECE && !send_piece(events, std::mem::take(&mut piece)).await {
                return false;
            }
        }
        if !send_piece(events, piece).await {
            return false;
        }
        for event in list_marks(true) {
            if events.send(event).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// The start (or `end`) of a relist of every kind.
fn list_marks(end: bool) -> [SourceEvent; 4] {
    fn mark<K>(end: bool) -> ObjectEvent<K> {
        if end { ObjectEvent::ListEnd } else { ObjectEvent::ListStart }
    }
    [
        SourceEvent::Service(mark(end)),
        SourceEvent::EndpointSlice(mark(end)),
        SourceEvent::Node(mark(end)),
        SourceEvent::ServiceCidr(mark(end)),
    ]
}

/// Sends the non-empty kinds of `piece` as pieces of the relists in progress.
async fn send_piece(events: &mpsc::Sender<SourceEvent>, piece: ManifestSet) -> bool {
    let undecodable = |kind: ObjectKind| -> Vec<ConversionError> {
        piece.undecodable.iter().filter(|e| e.kind == kind).cloned().collect()
    };
    let listed = [
        SourceEvent::Service(ObjectEvent::Listed {
            undecodable: undecodable(ObjectKind::Service),
            objects: piece.services,
        }),
        SourceEvent::EndpointSlice(ObjectEvent::Listed {
            undecodable: undecodable(ObjectKind::EndpointSlice),
            objects: piece.slices,
        }),
        SourceEvent::Node(ObjectEvent::Listed { undecodable: undecodable(ObjectKind::Node), objects: piece.nodes }),
        SourceEvent::ServiceCidr(ObjectEvent::Listed {
            undecodable: undecodable(ObjectKind::ServiceCidr),
            objects: piece.service_cidrs,
        }),
    ];
    for event in listed.into_iter().filter(|e| !is_empty_piece(e)) {
        if events.send(event).await.is_err() {
            return false;
        }
    }
    true
}

fn is_empty_piece(event: &SourceEvent) -> bool {
    fn empty<K>(event: &ObjectEvent<K>) -> bool {
        matches!(event, ObjectEvent::Listed { objects, undecodable } if objects.is_empty() && undecodable.is_empty())
    }
    match event {
        SourceEvent::Service(e) => empty(e),
        SourceEvent::EndpointSlice(e) => empty(e),
        SourceEvent::Node(e) => empty(e),
        SourceEvent::ServiceCidr(e) => empty(e),
    }
}

/// Reads every manifest of `dir` once (reporting problems, skipping what does not parse).
pub fn read_manifests(dir: &Path) -> ManifestSet {
    let mut reader = DirReader::default();
    reader.read_changes(dir);
    let mut set = ManifestSet::default();
    reader.objects().for_each(|o| set.add(o));
    set
}

/// One object of a manifest, or one that does not fit its kind.
#[expect(clippy::large_enum_variant, reason = "each is moved once into its piece; boxing buys nothing")]
enum Object {
    Service(Service),
    Slice(EndpointSlice),
    Node(Node),
    ServiceCidr(ServiceCIDR),
    Undecodable(ConversionError),
}

impl ManifestSet {
    fn add(&mut self, object: Object) {
        match object {
            Object::Service(o) => self.services.push(o),
            Object::Slice(o) => self.slices.push(o),
            Object::Node(o) => self.nodes.push(o),
            Object::ServiceCidr(o) => self.service_cidrs.push(o),
            Object::Undecodable(e) => self.undecodable.push(e),
        }
    }

    fn len(&self) -> usize {
        self.services.len() + self.slices.len() + self.nodes.len() + self.service_cidrs.len() + self.undecodable.len()
    }
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
    /// Rereads changed files; whether the objects of any changed (a file added, removed,
    /// or holding other objects than before).
    fn read_changes(&mut self, dir: &Path) -> bool {
        let files = manifest_files(dir).unwrap_or_else(|e| {
            self.report(format!("cannot read manifest directory {}: {e}", dir.display()));
            Vec::new()
        });
        let before = self.files.len();
        self.files.retain(|path, _| files.contains(path));
        let mut changed = self.files.len() != before;
        for path in &files {
            changed |= self.read_file(path);
        }
        changed
    }

    /// Rereads `path` if it changed; whether its objects changed. A file that does not
    /// parse keeps its last good text (and so its objects).
    fn read_file(&mut self, path: &Path) -> bool {
        let stamp = std::fs::metadata(path).map(|m| (m.modified().ok(), m.len())).unwrap_or_default();
        if self.files.get(path).is_some_and(|f| f.stamp == stamp) {
            return false;
        }
        let read = std::fs::read_to_string(path).map_err(|e| e.to_string());
        let checked = read.and_then(|text| check_file(&text).map(|()| text));
        let known = self.files.contains_key(path);
        let file = self.files.entry(path.to_owned()).or_default();
        file.stamp = stamp;
        match checked {
            Ok(text) => {
                // Rewritten text with the same objects changes nothing.
                let changed = !known || (text != file.text && parse_file(&file.text) != parse_file(&text));
                file.text = text;
                changed
            }
            Err(e) => {
                self.report(format!("manifest {}: {e}; keeping its previous objects", path.display()));
                false
            }
        }
    }

    /// Every object of every file, in file order, parsed from the files' last good texts
    /// one document at a time.
    fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        self.files.values().flat_map(|file| split_documents(&file.text)).flat_map(|document| {
            let mut objects = Vec::new();
            // Every text kept parsed before.
            if let Ok(doc) = serde_saphyr::from_str::<Value>(document) {
                add_document(&mut objects, doc);
            }
            objects
        })
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

/// Checks that every document of a file parses as YAML (a document that does not fit its
/// kind is no error of the file); nothing is kept.
fn check_file(text: &str) -> Result<(), String> {
    for document in split_documents(text) {
        serde_saphyr::from_str::<Value>(document).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every object of a file (for comparing two texts of it).
fn parse_file(text: &str) -> ManifestSet {
    let mut set = ManifestSet::default();
    for document in split_documents(text) {
        let mut objects = Vec::new();
        if let Ok(doc) = serde_saphyr::from_str::<Value>(document) {
            add_document(&mut objects, doc);
        }
        objects.into_iter().for_each(|o| set.add(o));
    }
    set
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
fn add_document(out: &mut Vec<Object>, doc: Value) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    match kind.as_str() {
        "Service" => out.push(decode(&doc, ObjectKind::Service, Object::Service)),
        "EndpointSlice" => out.push(decode(&doc, ObjectKind::EndpointSlice, Object::Slice)),
        "Node" => out.push(decode(&doc, ObjectKind::Node, Object::Node)),
        "ServiceCIDR" => out.push(decode(&doc, ObjectKind::ServiceCidr, Object::ServiceCidr)),
        "List" => {
            let items = doc.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            for item in items {
                add_document(out, item);
            }
        }
        _ => {
            let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<unnamed>");
            tracing::debug!(kind, name, "manifest document of another kind ignored");
        }
    }
}

fn decode<K: DeserializeOwned>(doc: &Value, kind: ObjectKind, wrap: fn(K) -> Object) -> Object {
    match Lenient::<K>::decode(doc) {
        Lenient::Decoded(object) => wrap(object),
        Lenient::Undecodable(undecodable) => Object::Undecodable(undecodable.error(kind)),
    }
}

#[cfg(test)]
#[path = "manifest_source_tests.rs"]
mod tests;
