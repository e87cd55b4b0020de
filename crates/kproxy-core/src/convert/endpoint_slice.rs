//! EndpointSlice → [`EndpointSliceInfo`]: a compact, validated copy of what proxies use.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::discovery::v1::{Endpoint as ApiEndpoint, EndpointSlice};

use super::fields::FieldParser;
use super::service::object_name;
use super::validation::NameRule;
use super::{ANNOTATION_LAST_CHANGE_TRIGGER_TIME, LABEL_HEADLESS, LABEL_SERVICE_NAME, LABEL_SERVICE_PROXY_NAME};
use crate::endpoint::HintNames;
use crate::error::{ConversionError, Invalid, ObjectKind};
use crate::names::{IpFamily, NamespacedName, Protocol};

/// One port of a slice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlicePort {
    /// The port's name (matches the Service port's name); empty when unnamed.
    pub name: String,
    /// The target port number.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

/// One endpoint of a slice, before it is combined with a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointInfo {
    /// The first address (upstream uses only that one).
    pub ip: IpAddr,
    /// `nodeName`.
    pub node_name: Option<Arc<str>>,
    /// `zone`.
    pub zone: Option<Arc<str>>,
    /// `conditions.ready`, true when absent.
    pub ready: bool,
    /// `conditions.serving`, true when absent.
    pub serving: bool,
    /// `conditions.terminating`, false when absent.
    pub terminating: bool,
    /// `hints.forZones`.
    pub zone_hints: HintNames,
    /// `hints.forNodes`.
    pub node_hints: HintNames,
}

/// A validated EndpointSlice of an IP address type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointSliceInfo {
    /// The Service the slice belongs to (`kubernetes.io/service-name` label).
    pub service: NamespacedName,
    /// The slice's own name.
    pub slice_name: String,
    /// `addressType`.
    pub family: IpFamily,
    /// The slice's ports.
    pub ports: Vec<SlicePort>,
    /// The slice's endpoints.
    pub endpoints: Vec<EndpointInfo>,
    /// `endpoints.kubernetes.io/last-change-trigger-time`, when present and well formed.
    pub trigger_time: Option<SystemTime>,
}

impl EndpointSliceInfo {
    /// Validates `slice`. `Ok(None)` means it is well formed but not for proxies: an FQDN
    /// slice, one without the `kubernetes.io/service-name` label, or one labelled
    /// `service.kubernetes.io/headless` or `service.kubernetes.io/service-proxy-name`
    /// (upstream's informers filter those out, as they do the Services).
    pub fn from_slice(slice: &EndpointSlice) -> Result<Option<Self>, ConversionError> {
        let name = object_name(&slice.metadata);
        let p = FieldParser { kind: ObjectKind::EndpointSlice, object: &name };
        p.name("metadata.name", &name.name, NameRule::Dns1123Subdomain)?;
        p.name("metadata.namespace", &name.namespace, NameRule::Dns1123Label)?;
        let family = match slice.address_type.as_str() {
            "IPv4" => IpFamily::V4,
            "IPv6" => IpFamily::V6,
            "FQDN" => return Ok(None),
            other => return Err(p.error("addressType", Invalid::Value(other.to_owned()))),
        };
        let labels = slice.metadata.labels.as_ref();
        let Some(service_name) = labels.and_then(|l| l.get(LABEL_SERVICE_NAME)).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        if labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS) || l.contains_key(LABEL_SERVICE_PROXY_NAME)) {
            return Ok(None);
        }
        // A label that is no Service's name could never match one.
        p.name(format!("metadata.labels[{LABEL_SERVICE_NAME}]"), service_name, NameRule::Dns1035Label)?;
        let annotations = slice.metadata.annotations.as_ref();
        let trigger_time = annotations
            .and_then(|a| a.get(ANNOTATION_LAST_CHANGE_TRIGGER_TIME))
            .and_then(|t| humantime::parse_rfc3339_weak(t.trim()).ok());
        Ok(Some(Self {
            service: NamespacedName::new(name.namespace.clone(), service_name.clone()),
            slice_name: name.name.clone(),
            family,
            ports: slice_ports(&p, slice)?,
            endpoints: endpoints(&p, slice, family)?,
            trigger_time,
        }))
    }
}

fn slice_ports(p: &FieldParser<'_>, slice: &EndpointSlice) -> Result<Vec<SlicePort>, ConversionError> {
    let ports = slice.ports.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(ports.len());
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        // Names are checked on every port, as the apiserver does: a DNS-1123 label when set,
        // and unique (the empty name included).
        let name = port.name.as_deref().unwrap_or_default();
        let field = format!("ports[{i}].name");
        if !name.is_empty() {
            p.name(field.as_str(), name, NameRule::Dns1123Label)?;
        }
        if !names.insert(name) {
            return Err(p.error(field, Invalid::Duplicate(name.to_owned())));
        }
        // A slice port without a number means "all ports" and is of no use to a proxy;
        // upstream ignores it, and port 0 with it (`port.Port == nil || *port.Port == 0`),
        // so do we. Other out-of-range numbers are errors.
        let Some(number) = port.port.filter(|n| *n != 0) else { continue };
        out.push(SlicePort {
            name: name.to_owned(),
            port: p.port(format!("ports[{i}].port"), number)?,
            protocol: p.protocol(format!("ports[{i}].protocol"), port.protocol.as_deref())?,
        });
    }
    Ok(out)
}

fn endpoints(
    p: &FieldParser<'_>,
    slice: &EndpointSlice,
    family: IpFamily,
) -> Result<Vec<EndpointInfo>, ConversionError> {
    let endpoints = slice.endpoints.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(endpoints.len());
    for (i, endpoint) in endpoints.iter().enumerate() {
        // An endpoint without addresses is skipped, as upstream does.
        let Some(first) = endpoint.addresses.first() else { continue };
        let field = format!("endpoints[{i}].addresses[0]");
        let ip = p.ip(field.as_str(), first)?;
        if IpFamily::of(&ip) != family {
            return Err(p.error(field, Invalid::Value(format!("{first} is not an {family} address"))));
        }
        out.push(endpoint_info(p, i, ip, endpoint)?);
    }
    Ok(out)
}

fn endpoint_info(
    p: &FieldParser<'_>,
    i: usize,
    ip: IpAddr,
    endpoint: &ApiEndpoint,
) -> Result<EndpointInfo, ConversionError> {
    let conditions = endpoint.conditions.as_ref();
    let hints = endpoint.hints.as_ref();
    if let Some(node) = endpoint.node_name.as_deref() {
        p.name(format!("endpoints[{i}].nodeName"), node, NameRule::Dns1123Subdomain)?;
    }
    let zones = hints.and_then(|h| h.for_zones.as_deref()).unwrap_or_default();
    let nodes = hints.and_then(|h| h.for_nodes.as_deref()).unwrap_or_default();
    let hint_field = |kind: &str, j: usize| format!("endpoints[{i}].hints.{kind}[{j}].name");
    Ok(EndpointInfo {
        ip,
        node_name: endpoint.node_name.as_deref().map(Arc::from),
        // The apiserver does not validate `zone` and kube-proxy never reads it, so a zone
        // that is no label value is dropped rather than made an error.
        zone: endpoint.zone.as_deref().filter(|z| NameRule::LabelValue.accepts(z)).map(Arc::from),
        ready: conditions.and_then(|c| c.ready).unwrap_or(true),
        serving: conditions.and_then(|c| c.serving).unwrap_or(true),
        terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
        // Repeated hints, which the apiserver rejects, are harmless in a set: tolerated.
        zone_hints: hint_names(p, zones.iter().map(|z| z.name.as_str()), NameRule::LabelValue, |j| {
            hint_field("forZones", j)
        })?,
        node_hints: hint_names(p, nodes.iter().map(|n| n.name.as_str()), NameRule::Dns1123Subdomain, |j| {
            hint_field("forNodes", j)
        })?,
    })
}

/// The names of `hints.forZones` or `hints.forNodes`, each satisfying `rule`.
fn hint_names<'n>(
    p: &FieldParser<'_>,
    names: impl Iterator<Item = &'n str>,
    rule: NameRule,
    field: impl Fn(usize) -> String,
) -> Result<HintNames, ConversionError> {
    let names: BTreeSet<String> = names
        .enumerate()
        .map(|(j, name)| p.name(field(j), name, rule).map(|()| name.to_owned()))
        .collect::<Result<_, _>>()?;
    Ok(names.into())
}

#[cfg(test)]
#[path = "endpoint_slice_tests.rs"]
mod tests;
