//! The manifests in `deploy/` parse as typed Kubernetes objects (with no field the types do
//! not know), grant exactly the privileges kproxy needs, and carry a valid configuration.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kproxy_runtime::config::{ConfigLayers, KubeProxyConfiguration, ProxyMode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kproxy";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every document of every `deploy/*.yaml`, as JSON, by file name.
fn documents() -> BTreeMap<String, Vec<Value>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(deploy_dir()).expect("read deploy/") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        files.insert(name, docs.into_iter().filter(|d| !d.is_null()).collect());
    }
    files
}

/// The only document of `file`, typed, via serde-saphyr; its serialization must give back the
/// document (so no field is misspelt or unknown to the type).
fn typed<T: DeserializeOwned + Serialize>(file: &str) -> T {
    let path = deploy_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut objects: Vec<T> = serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(objects.len(), 1, "{file}: one object per file");
    let object = objects.remove(0);
    let document: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    let round_trip = serde_json::to_value(&object).expect("serializable");
    assert_eq!(round_trip, document[0], "{file}: fields the type does not know, or misspelt");
    object
}

#[test]
fn every_document_is_a_known_typed_object() {
    let files = documents();
    let expected =
        ["clusterrole.yaml", "clusterrolebinding.yaml", "configmap.yaml", "daemonset.yaml", "serviceaccount.yaml"];
    assert_eq!(files.keys().map(String::as_str).collect::<Vec<_>>(), expected);
    for (file, docs) in &files {
        assert_eq!(docs.len(), 1, "{file}: one object per file");
        let kind = docs[0]["kind"].as_str().unwrap_or_default();
        match kind {
            "ServiceAccount" => drop(typed::<ServiceAccount>(file)),
            "ClusterRole" => drop(typed::<ClusterRole>(file)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(file)),
            "ConfigMap" => drop(typed::<ConfigMap>(file)),
            "DaemonSet" => drop(typed::<DaemonSet>(file)),
            other => panic!("{file}: unexpected kind {other:?}"),
        }
        assert_eq!(docs[0]["metadata"]["name"], NAME, "{file}");
    }
}

#[test]
fn service_account_lives_in_kube_system() {
    let account: ServiceAccount = typed("serviceaccount.yaml");
    assert_eq!(account.metadata.namespace.as_deref(), Some(NAMESPACE));
}

#[test]
fn cluster_role_grants_exactly_what_kproxy_needs() {
    let role: ClusterRole = typed("clusterrole.yaml");
    assert!(role.aggregation_rule.is_none());
    let mut granted = BTreeSet::new();
    for rule in role.rules.expect("rules") {
        assert!(rule.resource_names.is_none() && rule.non_resource_urls.is_none(), "{rule:?}");
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    assert!(granted.insert((group.clone(), resource.clone(), verb.clone())), "granted twice: {rule:?}");
                }
            }
        }
    }
    let mut expected = BTreeSet::new();
    let watched = [
        ("", "services"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
        ("networking.k8s.io", "servicecidrs"),
    ];
    for (group, resource) in watched {
        for verb in ["get", "list", "watch"] {
            expected.insert((group.to_owned(), resource.to_owned(), verb.to_owned()));
        }
    }
    for group in ["", "events.k8s.io"] {
        for verb in ["create", "patch"] {
            expected.insert((group.to_owned(), "events".to_owned(), verb.to_owned()));
        }
    }
    assert_eq!(granted, expected);
}

#[test]
fn cluster_role_binding_binds_the_service_account() {
    let binding: ClusterRoleBinding = typed("clusterrolebinding.yaml");
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, NAME);
    assert_eq!(binding.role_ref.api_group.as_deref(), Some("rbac.authorization.k8s.io"));
    let subjects = binding.subjects.expect("subjects");
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, NAME);
    assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
}

#[test]
fn config_map_holds_a_valid_nftables_configuration() {
    let map: ConfigMap = typed("configmap.yaml");
    assert_eq!(map.metadata.namespace.as_deref(), Some(NAMESPACE));
    let data = map.data.expect("data");
    let text = data.get("config.yaml").expect("config.yaml key");
    let file = KubeProxyConfiguration::from_yaml(text).expect("a valid KubeProxyConfiguration");
    assert_eq!(file.api_version.as_deref(), Some("kubeproxy.config.k8s.io/v1alpha1"));
    assert_eq!(file.kind.as_deref(), Some("KubeProxyConfiguration"));
    assert_eq!(file.mode.as_deref(), Some("nftables"));
    let config = ConfigLayers { file: Some(file), ..ConfigLayers::default() }.resolve().expect("validates");
    assert_eq!(config.mode, ProxyMode::Nftables);
    assert!(!config.cluster_cidrs.is_empty(), "clusterCIDR placeholder set");
    assert_eq!(config.kubeconfig, None, "in-cluster credentials");
}

#[test]
fn daemon_set_runs_kproxy_on_every_node_like_kube_proxy() {
    let set: DaemonSet = typed("daemonset.yaml");
    assert_eq!(set.metadata.namespace.as_deref(), Some(NAMESPACE));
    let spec = set.spec;
    let template_labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone()).expect("template labels");
    for (key, value) in spec.selector.match_labels.clone().expect("selector") {
        assert_eq!(template_labels.get(&key), Some(&value), "the selector matches the template");
    }
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
    let tolerations = pod.tolerations.expect("tolerations");
    assert!(
        tolerations.iter().any(|t| t.operator.as_deref() == Some("Exists") && t.key.is_none() && t.effect.is_none()),
        "tolerates every taint: {tolerations:?}"
    );

    assert_eq!(pod.containers.len(), 1);
    let container = &pod.containers[0];
    assert_eq!(
        container.args.as_deref(),
        Some(&["--config=/var/lib/kproxy/config.yaml".to_owned(), "--hostname-override=$(NODE_NAME)".to_owned()][..])
    );
    let env = container.env.as_ref().expect("env");
    let node_name = env.iter().find(|e| e.name == "NODE_NAME").expect("NODE_NAME");
    let field = node_name.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).expect("downward API");
    assert_eq!(field.field_path, "spec.nodeName");
    let security = container.security_context.as_ref().expect("security context");
    assert_eq!(security.privileged, Some(false), "the long-running container is not privileged");
    let added = security.capabilities.as_ref().and_then(|c| c.add.clone()).unwrap_or_default();
    assert!(added.iter().any(|c| c == "NET_ADMIN") && added.iter().any(|c| c == "NET_RAW"), "{added:?}");

    // The privileged one-time setup runs in an init container, as upstream's --init-only.
    let init = pod.init_containers.as_ref().and_then(|c| c.first()).expect("an init container");
    let init_args = init.args.clone().unwrap_or_default();
    assert!(init_args.iter().any(|a| a == "--init-only"), "{init_args:?}");
    assert!(init_args.iter().any(|a| a == "--config=/var/lib/kproxy/config.yaml"), "{init_args:?}");
    assert_eq!(init.security_context.as_ref().and_then(|s| s.privileged), Some(true));

    let mounts: BTreeMap<&str, (&str, bool)> = container
        .volume_mounts
        .as_ref()
        .expect("mounts")
        .iter()
        .map(|m| (m.mount_path.as_str(), (m.name.as_str(), m.read_only == Some(true))))
        .collect();
    let volumes: BTreeMap<&str, &k8s_openapi::api::core::v1::Volume> =
        pod.volumes.as_ref().expect("volumes").iter().map(|v| (v.name.as_str(), v)).collect();
    let host_path = |mount: &str| {
        let (name, _) = mounts.get(mount).unwrap_or_else(|| panic!("{mount} mounted"));
        volumes[name].host_path.as_ref().unwrap_or_else(|| panic!("{mount} from the host")).clone()
    };
    assert!(mounts["/lib/modules"].1, "/lib/modules read-only");
    assert_eq!(host_path("/lib/modules").path, "/lib/modules");
    let lock = host_path("/run/xtables.lock");
    assert_eq!((lock.path.as_str(), lock.type_.as_deref()), ("/run/xtables.lock", Some("FileOrCreate")));

    let (config_volume, read_only) = mounts["/var/lib/kproxy"];
    assert!(read_only);
    let config_map = volumes[config_volume].config_map.as_ref().expect("config from the ConfigMap");
    assert_eq!(config_map.name, NAME);
    let items = config_map.items.as_ref().expect("items");
    assert!(items.iter().any(|i| i.key == "config.yaml" && i.path == "config.yaml"), "/var/lib/kproxy/config.yaml");
}
