//! The objects of the memory benchmarks: `services` ClusterIP Services of one port with an
//! EndpointSlice of `endpoints` ready endpoints each, and node1's Node; as manifest text
//! (for `--manifests`) or as typed objects (for the fake apiserver).

use std::fmt::Write;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::bench::state::{endpoint_ip, service_ip};

/// The namespace of every object.
const NAMESPACE: &str = "bench";
/// The node the daemon runs as.
pub(super) const NODE: &str = "node1";

/// Every object as one multi-document YAML file.
pub(super) fn manifests(services: usize, endpoints: usize) -> String {
    let mut out = String::new();
    for i in 0..services {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: {NAMESPACE}}}\nspec:\n  clusterIP: {}\n  ports: [{{name: http, port: 80}}]\n---\n",
            service_ip(i)
        );
        let _ = write!(
            out,
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: svc{i}-1, namespace: {NAMESPACE}, labels: {{kubernetes.io/service-name: svc{i}}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n"
        );
        for j in 0..endpoints {
            let _ = writeln!(out, "  - addresses: [{}]", endpoint_ip(i, j, endpoints));
        }
        out.push_str("---\n");
    }
    let _ = writeln!(out, "apiVersion: v1\nkind: Node\nmetadata: {{name: {NODE}}}");
    out
}

/// Service `i`, as [`manifests`] writes it.
pub(super) fn service(i: usize) -> Service {
    kproxy_testkit::service(NAMESPACE, &format!("svc{i}"))
        .cluster_ip(&service_ip(i).to_string())
        .tcp("http", 80)
        .build()
}

/// The EndpointSlice of Service `i`, as [`manifests`] writes it.
pub(super) fn slice(i: usize, endpoints: usize) -> EndpointSlice {
    let builder = kproxy_testkit::slice(NAMESPACE, &format!("svc{i}"), &format!("svc{i}-1")).tcp("http", 8080);
    (0..endpoints).fold(builder, |b, j| b.ready(&endpoint_ip(i, j, endpoints).to_string())).build()
}

/// node1's Node.
pub(super) fn node() -> Node {
    kproxy_testkit::node(NODE).build()
}

/// The EndpointSlice of Service `i` with one ready endpoint, at `ip` (port 8080).
pub(in crate::bench) fn slice_at(i: usize, ip: &str) -> EndpointSlice {
    kproxy_testkit::slice(NAMESPACE, &format!("svc{i}"), &format!("svc{i}-1")).tcp("http", 8080).ready(ip).build()
}
