//! `slice(ns, service, name)`: a builder for discovery/v1 EndpointSlices.

use std::collections::BTreeMap;

use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort, EndpointSlice, ForNode, ForZone,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Starts an IPv4 EndpointSlice of Service `service`, labelled `kubernetes.io/service-name`.
pub fn slice(namespace: &str, service: &str, name: &str) -> SliceBuilder {
    let labels = BTreeMap::from([("kubernetes.io/service-name".to_owned(), service.to_owned())]);
    SliceBuilder {
        slice: EndpointSlice {
            address_type: "IPv4".to_owned(),
            endpoints: Some(Vec::new()),
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                labels: Some(labels),
                ..ObjectMeta::default()
            },
            ports: Some(Vec::new()),
        },
    }
}

/// Builds an EndpointSlice step by step; see [`slice`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SliceBuilder {
    slice: EndpointSlice,
}

impl SliceBuilder {
    /// Sets `addressType` (`IPv4`, `IPv6` or `FQDN`).
    pub fn address_type(mut self, address_type: &str) -> Self {
        self.slice.address_type = address_type.to_owned();
        self
    }

    /// Adds a port.
    pub fn port(mut self, name: &str, port: i32, protocol: &str) -> Self {
        self.slice.ports.get_or_insert_with(Vec::new).push(EndpointPort {
            name: Some(name.to_owned()),
            port: Some(port),
            protocol: Some(protocol.to_owned()),
            app_protocol: None,
        });
        self
    }

    /// Adds a TCP port.
    pub fn tcp(self, name: &str, port: i32) -> Self {
        self.port(name, port, "TCP")
    }

    /// Adds a UDP port.
    pub fn udp(self, name: &str, port: i32) -> Self {
        self.port(name, port, "UDP")
    }

    /// Adds an endpoint with one address, shaped by `f`.
    pub fn endpoint(mut self, ip: &str, f: impl FnOnce(EndpointBuilder) -> EndpointBuilder) -> Self {
        let built = f(EndpointBuilder { endpoint: Endpoint { addresses: vec![ip.to_owned()], ..Endpoint::default() } });
        self.slice.endpoints.get_or_insert_with(Vec::new).push(built.endpoint);
        self
    }

    /// Adds a ready endpoint on no particular node.
    pub fn ready(self, ip: &str) -> Self {
        self.endpoint(ip, |e| e)
    }

    /// Sets the `endpoints.kubernetes.io/last-change-trigger-time` annotation (RFC 3339).
    pub fn trigger_time(mut self, rfc3339: &str) -> Self {
        self.slice
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert("endpoints.kubernetes.io/last-change-trigger-time".to_owned(), rfc3339.to_owned());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.slice.metadata.labels.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), value.to_owned());
        self
    }

    /// Changes the slice with a closure, for fields the builder has no method for.
    pub fn with(mut self, f: impl FnOnce(&mut EndpointSlice)) -> Self {
        f(&mut self.slice);
        self
    }

    /// The EndpointSlice.
    pub fn build(self) -> EndpointSlice {
        self.slice
    }
}

/// Shapes one endpoint of a slice; see [`SliceBuilder::endpoint`].
#[derive(Debug, Clone)]
#[must_use]
pub struct EndpointBuilder {
    endpoint: Endpoint,
}

impl EndpointBuilder {
    fn conditions(&mut self) -> &mut EndpointConditions {
        self.endpoint.conditions.get_or_insert_with(EndpointConditions::default)
    }

    fn hints(&mut self) -> &mut EndpointHints {
        self.endpoint.hints.get_or_insert_with(EndpointHints::default)
    }

    /// Sets `nodeName`.
    pub fn node(mut self, node: &str) -> Self {
        self.endpoint.node_name = Some(node.to_owned());
        self
    }

    /// Sets `zone`.
    pub fn zone(mut self, zone: &str) -> Self {
        self.endpoint.zone = Some(zone.to_owned());
        self
    }

    /// Sets `conditions.ready`.
    pub fn ready(mut self, ready: bool) -> Self {
        self.conditions().ready = Some(ready);
        self
    }

    /// Sets `conditions.serving`.
    pub fn serving(mut self, serving: bool) -> Self {
        self.conditions().serving = Some(serving);
        self
    }

    /// Sets `conditions.terminating`.
    pub fn terminating(mut self, terminating: bool) -> Self {
        self.conditions().terminating = Some(terminating);
        self
    }

    /// Sets all three conditions at once.
    pub fn conditions_rst(self, ready: bool, serving: bool, terminating: bool) -> Self {
        self.ready(ready).serving(serving).terminating(terminating)
    }

    /// Sets `hints.forZones`.
    pub fn zone_hints(mut self, zones: &[&str]) -> Self {
        self.hints().for_zones = Some(zones.iter().map(|z| ForZone { name: (*z).to_owned() }).collect());
        self
    }

    /// Sets `hints.forNodes`.
    pub fn node_hints(mut self, nodes: &[&str]) -> Self {
        self.hints().for_nodes = Some(nodes.iter().map(|n| ForNode { name: (*n).to_owned() }).collect());
        self
    }

    /// Adds another address (only the first is used by proxies).
    pub fn address(mut self, ip: &str) -> Self {
        self.endpoint.addresses.push(ip.to_owned());
        self
    }
}
