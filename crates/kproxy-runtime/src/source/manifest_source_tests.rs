use super::*;

fn read(reader: &mut DirReader, dir: &Path) -> ManifestSet {
    reader.read_changes(dir);
    set_of(reader)
}

fn set_of(reader: &DirReader) -> ManifestSet {
    let mut set = ManifestSet::default();
    reader.objects().for_each(|o| set.add(o));
    set
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: [10.244.1.2]
    nodeName: node1
---
apiVersion: v1
kind: Node
metadata: {name: node1, labels: {topology.kubernetes.io/zone: z1}}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: kubernetes}
spec: {cidrs: [10.96.0.0/12, "fd00:10:96::/112"]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kproxy-manifests-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn reads_multi_document_files() {
    let dir = temp_dir("multi");
    std::fs::write(dir.join("demo.yaml"), MANIFEST).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a manifest").unwrap();
    let set = read_manifests(&dir);
    assert_eq!(set.services.len(), 1);
    assert_eq!(set.slices.len(), 1);
    assert_eq!(set.nodes.len(), 1);
    assert_eq!(set.service_cidrs.len(), 1);
    let cidrs = set.service_cidrs[0].spec.as_ref().and_then(|s| s.cidrs.clone());
    assert_eq!(cidrs, Some(vec!["10.96.0.0/12".to_owned(), "fd00:10:96::/112".to_owned()]));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_service_cidr_of_the_wrong_shape_is_reported_as_a_service_cidr() {
    let dir = temp_dir("cidr-shape");
    let doc = "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: odd}\nspec: {cidrs: 7}\n";
    std::fs::write(dir.join("cidr.yaml"), doc).unwrap();
    let set = read_manifests(&dir);
    assert!(set.service_cidrs.is_empty());
    assert_eq!(set.undecodable.len(), 1);
    assert_eq!(set.undecodable[0].kind, ObjectKind::ServiceCidr);
    assert_eq!(set.undecodable[0].object, kproxy_core::NamespacedName::new("", "odd"));
    assert_eq!(set.undecodable[0].field, "spec.cidrs");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn only_a_change_of_objects_counts_and_other_files_keep_theirs() {
    let dir = temp_dir("rewritten");
    let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
    std::fs::write(&a, MANIFEST).unwrap();
    std::fs::write(&b, "kind: Service\nmetadata: {name: other, namespace: demo}\nspec: {ports: [{port: 81}]}\n")
        .unwrap();
    let mut reader = DirReader::default();
    assert!(reader.read_changes(&dir));
    assert_eq!(set_of(&reader).services.len(), 2);
    std::fs::write(&a, format!("# the same objects, written differently\n{MANIFEST}")).unwrap();
    assert!(!reader.read_changes(&dir), "new text, same objects: nothing to send");
    std::fs::write(&a, "kind: Service\nmetadata: {name: web, namespace: demo}\nspec: {ports: [{port: 82}]}\n").unwrap();
    assert!(reader.read_changes(&dir), "a changed object is sent");
    let set = set_of(&reader);
    let ports: Vec<i32> = set
        .services
        .iter()
        .flat_map(|s| s.spec.iter().flat_map(|p| p.ports.iter().flatten()))
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [82, 81], "every file's objects, the unchanged file's parsed again from its text");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn broken_file_keeps_previous_objects_and_bad_document_is_skipped() {
    let dir = temp_dir("broken");
    let path = dir.join("demo.yaml");
    std::fs::write(&path, MANIFEST).unwrap();
    let mut reader = DirReader::default();
    assert_eq!(read(&mut reader, &dir).services.len(), 1);
    std::fs::write(&path, "kind: Service\nmetadata: [unclosed\n").unwrap();
    assert_eq!(read(&mut reader, &dir).services.len(), 1, "a file that does not parse keeps its objects");
    std::fs::write(&path, "kind: Service\nmetadata: {name: x}\nspec: {ports: [{port: notanumber}]}\n").unwrap();
    assert_eq!(read(&mut reader, &dir).services.len(), 0, "a document that does not fit its kind is skipped");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(read(&mut reader, &dir), ManifestSet::default(), "a removed file removes its objects");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The events of one relist of every kind, up to the last kind's end, as
/// `(kind, objects listed)` per kind in the order the ends came.
async fn one_relist(rx: &mut mpsc::Receiver<SourceEvent>) -> Vec<(ObjectKind, usize)> {
    fn count<K>(event: &ObjectEvent<K>) -> Option<usize> {
        match event {
            ObjectEvent::Listed { objects, .. } => Some(objects.len()),
            _ => None,
        }
    }
    let mut counts: std::collections::HashMap<ObjectKind, usize> = std::collections::HashMap::new();
    let mut ended = Vec::new();
    while ended.len() < 4 {
        let event = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        let kind = event.kind();
        let (listed, end) = match &event {
            SourceEvent::Service(e) => (count(e), matches!(e, ObjectEvent::ListEnd)),
            SourceEvent::EndpointSlice(e) => (count(e), matches!(e, ObjectEvent::ListEnd)),
            SourceEvent::Node(e) => (count(e), matches!(e, ObjectEvent::ListEnd)),
            SourceEvent::ServiceCidr(e) => (count(e), matches!(e, ObjectEvent::ListEnd)),
        };
        *counts.entry(kind).or_default() += listed.unwrap_or(0);
        if end {
            ended.push((kind, counts.get(&kind).copied().unwrap_or(0)));
        }
    }
    ended
}

#[tokio::test]
async fn source_emits_relists_at_start_and_on_change() {
    let dir = temp_dir("follow");
    std::fs::write(dir.join("demo.yaml"), MANIFEST).unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    let source = ManifestSource::new(dir.clone(), "node1", Duration::from_millis(20));
    let task = tokio::spawn(source.run(tx));
    let first = one_relist(&mut rx).await;
    let all = [ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::Node, ObjectKind::ServiceCidr];
    assert_eq!(first, all.map(|k| (k, 1)));
    std::fs::remove_file(dir.join("demo.yaml")).unwrap();
    assert_eq!(one_relist(&mut rx).await, all.map(|k| (k, 0)), "everything is gone");
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `count` ClusterIP Services of namespace `big`, one YAML document each.
fn many_services(count: usize) -> String {
    let doc = |i: usize| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: big}}\nspec:\n  clusterIP: 10.96.{}.{}\n  ports: [{{port: 80}}]\n---\n",
            i / 250,
            i % 250 + 1
        )
    };
    (0..count).map(doc).collect()
}

#[tokio::test]
async fn a_large_directory_is_sent_in_pieces() {
    let dir = temp_dir("pieces");
    std::fs::write(dir.join("big.yaml"), many_services(1_000)).unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    let task = tokio::spawn(ManifestSource::new(dir.clone(), "node1", Duration::from_secs(60)).run(tx));
    let mut pieces = Vec::new();
    loop {
        match rx.recv().await.unwrap() {
            SourceEvent::Service(ObjectEvent::Listed { objects, .. }) => pieces.push(objects.len()),
            SourceEvent::Service(ObjectEvent::ListEnd) => break,
            _ => {}
        }
    }
    assert_eq!(pieces.iter().sum::<usize>(), 1_000);
    assert!(pieces.iter().all(|n| *n <= PIECE), "{pieces:?}");
    task.abort();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reads_files_with_thousands_of_documents() {
    let dir = temp_dir("large");
    std::fs::write(dir.join("big.yaml"), many_services(3_000)).unwrap();
    assert_eq!(read_manifests(&dir).services.len(), 3_000);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_list_item_of_the_wrong_type_is_undecodable_and_its_siblings_are_kept() {
    let dir = temp_dir("list-item");
    let list = r#"
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: {name: bad, namespace: demo}
    spec: {clusterIP: 10.96.0.11, ports: [{name: http, port: eighty}]}
  - apiVersion: v1
    kind: Service
    metadata: {name: good, namespace: demo}
    spec: {clusterIP: 10.96.0.12, ports: [{name: http, port: 80}]}
"#;
    std::fs::write(dir.join("list.yaml"), list).unwrap();
    let set = read(&mut DirReader::default(), &dir);
    let names: Vec<_> = set.services.iter().filter_map(|s| s.metadata.name.clone()).collect();
    assert_eq!(names, ["good"]);
    assert_eq!(set.undecodable.len(), 1);
    let error = &set.undecodable[0];
    assert_eq!(
        (error.kind, error.object.name.as_str(), error.field.as_str()),
        (ObjectKind::Service, "bad", "spec.ports[0].port")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
