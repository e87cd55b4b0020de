//! Service → [`ServiceInfo`] → per-family [`ServicePort`]s (upstream's `newBaseServiceInfo`).

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Service, ServicePort as ApiServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::fields::FieldParser;
use super::validation::NameRule;
use super::{LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME};
use crate::error::{ConversionError, Invalid, ObjectKind};
use crate::names::{IpFamily, NamespacedName, Protocol, ServicePortName};
use crate::service_port::{DEFAULT_STICKY_MAX_AGE_SECONDS, MAX_STICKY_MAX_AGE_SECONDS, ServicePort, SessionAffinity};

/// Why a well-formed Service is not proxied (upstream's `ShouldSkipService`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `type: ExternalName`: DNS only.
    ExternalName,
    /// `clusterIP: None`, or labelled `service.kubernetes.io/headless` (which upstream's
    /// informers filter out).
    Headless,
    /// No cluster IP assigned (or no spec at all).
    NoClusterIp,
    /// Labelled `service.kubernetes.io/service-proxy-name`: another proxy's.
    OtherProxy,
}

/// One port entry of a Service spec.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortSpec {
    name: String,
    port: u16,
    protocol: Protocol,
    node_port: Option<u16>,
}

/// A validated, proxied Service, for every IP family at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The Service's namespace and name.
    pub name: NamespacedName,
    cluster_ips: Vec<IpAddr>,
    ports: Vec<PortSpec>,
    external_ips: Vec<IpAddr>,
    load_balancer_vips: Vec<IpAddr>,
    source_ranges: Vec<IpNet>,
    session_affinity: SessionAffinity,
    external_policy_local: bool,
    internal_policy_local: bool,
    health_check_node_port: Option<u16>,
    traffic_distribution: Option<String>,
    created: Option<std::time::SystemTime>,
}

/// The object name of any API object, `default` standing in for an absent namespace.
pub(crate) fn object_name(meta: &ObjectMeta) -> NamespacedName {
    NamespacedName::new(meta.namespace.as_deref().unwrap_or("default"), meta.name.as_deref().unwrap_or_default())
}

impl ServiceInfo {
    /// Why `service` is not proxied, if it is not.
    ///
    /// Upstream never sees Services labelled `service.kubernetes.io/service-proxy-name` or
    /// `service.kubernetes.io/headless`: its informers select on the absence of both labels.
    pub fn skip_reason(service: &Service) -> Option<SkipReason> {
        let labels = service.metadata.labels.as_ref();
        if labels.is_some_and(|l| l.contains_key(LABEL_SERVICE_PROXY_NAME)) {
            return Some(SkipReason::OtherProxy);
        }
        if labels.is_some_and(|l| l.contains_key(LABEL_HEADLESS)) {
            return Some(SkipReason::Headless);
        }
        // A Service without a spec has no cluster IP; `from_service` skips it too.
        let Some(spec) = service.spec.as_ref() else {
            return Some(SkipReason::NoClusterIp);
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            return Some(SkipReason::ExternalName);
        }
        match primary_cluster_ip(spec) {
            None | Some("") => Some(SkipReason::NoClusterIp),
            Some("None") => Some(SkipReason::Headless),
            Some(_) => None,
        }
    }

    /// Validates `service`. `Ok(None)` means it is well formed but not proxied
    /// (see [`ServiceInfo::skip_reason`]); a Service without a spec is skipped too.
    pub fn from_service(service: &Service) -> Result<Option<Self>, ConversionError> {
        let name = object_name(&service.metadata);
        let p = FieldParser { kind: ObjectKind::Service, object: &name };
        p.name("metadata.name", &name.name, NameRule::Dns1035Label)?;
        p.name("metadata.namespace", &name.namespace, NameRule::Dns1123Label)?;
        let Some(spec) = service.spec.as_ref() else {
            return Ok(None);
        };
        let type_ = service_type(&p, spec)?;
        if Self::skip_reason(service).is_some() {
            return Ok(None);
        }
        let external_ips = parse_ips(&p, "spec.externalIPs", spec.external_ips.as_deref())?;
        // The value is validated whatever the type; it only counts for externally accessible
        // Services (upstream's `apiservice.ExternalPolicyLocal`).
        let external_local = traffic_policy(&p, "spec.externalTrafficPolicy", &spec.external_traffic_policy)?;
        let accessible = type_ != "ClusterIP" || !external_ips.is_empty();
        let external_policy_local = accessible && external_local;
        let needs_health_check = type_ == "LoadBalancer" && external_policy_local;
        Ok(Some(Self {
            cluster_ips: cluster_ips(&p, spec)?,
            ports: ports(&p, spec)?,
            external_ips,
            load_balancer_vips: load_balancer_vips(&p, service)?,
            source_ranges: source_ranges(&p, spec)?,
            session_affinity: session_affinity(&p, spec)?,
            external_policy_local,
            internal_policy_local: traffic_policy(&p, "spec.internalTrafficPolicy", &spec.internal_traffic_policy)?,
            health_check_node_port: match needs_health_check {
                true => p.optional_port("spec.healthCheckNodePort", spec.health_check_node_port)?,
                false => None,
            },
            traffic_distribution: traffic_distribution(spec),
            created: service.metadata.creation_timestamp.as_ref().and_then(|t| system_time(t.0)),
            name,
        }))
    }

    /// The cluster IP of `family`, if the Service has one.
    pub fn cluster_ip(&self, family: IpFamily) -> Option<IpAddr> {
        self.cluster_ips.iter().copied().find(|ip| IpFamily::of(ip) == family)
    }

    /// The Service's ports as seen in `family`; empty when it has no cluster IP of that family.
    pub fn ports(&self, family: IpFamily) -> BTreeMap<ServicePortName, ServicePort> {
        let Some(cluster_ip) = self.cluster_ip(family) else {
            return BTreeMap::new();
        };
        let of_family =
            |ips: &[IpAddr]| ips.iter().copied().filter(|ip| IpFamily::of(ip) == family).collect::<Vec<_>>();
        let ranges: Vec<IpNet> =
            self.source_ranges.iter().copied().filter(|net| IpFamily::of(&net.addr()) == family).collect();
        self.ports
            .iter()
            .map(|spec| {
                let name = ServicePortName::new(self.name.clone(), spec.name.clone(), spec.protocol);
                let port = ServicePort {
                    node_port: spec.node_port,
                    external_ips: of_family(&self.external_ips),
                    load_balancer_vips: of_family(&self.load_balancer_vips),
                    load_balancer_source_ranges: ranges.clone(),
                    session_affinity: self.session_affinity,
                    external_policy_local: self.external_policy_local,
                    internal_policy_local: self.internal_policy_local,
                    health_check_node_port: self.health_check_node_port,
                    traffic_distribution: self.traffic_distribution.clone(),
                    created: self.created,
                    ..ServicePort::new(cluster_ip, spec.port, spec.protocol)
                };
                (name, port)
            })
            .collect()
    }
}

/// A timestamp as a `SystemTime`; `None` before the epoch (no real object is that old).
fn system_time(t: k8s_openapi::jiff::Timestamp) -> Option<std::time::SystemTime> {
    let seconds = u64::try_from(t.as_second()).ok()?;
    let nanos = u32::try_from(t.subsec_nanosecond()).unwrap_or(0);
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::new(seconds, nanos))
}

fn primary_cluster_ip(spec: &ServiceSpec) -> Option<&str> {
    match spec.cluster_ips.as_deref() {
        Some([first, ..]) => Some(first.as_str()),
        _ => spec.cluster_ip.as_deref(),
    }
}

fn service_type<'s>(p: &FieldParser<'_>, spec: &'s ServiceSpec) -> Result<&'s str, ConversionError> {
    match spec.type_.as_deref() {
        None | Some("") => Ok("ClusterIP"),
        Some(t @ ("ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName")) => Ok(t),
        Some(other) => Err(p.error("spec.type", Invalid::Value(other.to_owned()))),
    }
}

fn cluster_ips(p: &FieldParser<'_>, spec: &ServiceSpec) -> Result<Vec<IpAddr>, ConversionError> {
    match spec.cluster_ips.as_deref() {
        Some(ips) if !ips.is_empty() => parse_ips(p, "spec.clusterIPs", Some(ips)),
        _ => {
            let ip = spec.cluster_ip.as_deref().unwrap_or_default();
            Ok(vec![p.ip("spec.clusterIP", ip)?])
        }
    }
}

fn parse_ips(p: &FieldParser<'_>, field: &str, ips: Option<&[String]>) -> Result<Vec<IpAddr>, ConversionError> {
    let ips = ips.unwrap_or_default();
    ips.iter().enumerate().map(|(i, ip)| p.ip(format!("{field}[{i}]"), ip)).collect()
}

fn ports(p: &FieldParser<'_>, spec: &ServiceSpec) -> Result<Vec<PortSpec>, ConversionError> {
    let ports = spec.ports.as_deref().unwrap_or_default();
    let specs = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            Ok(PortSpec {
                name: port_name(p, i, port, ports.len())?,
                port: p.port(format!("spec.ports[{i}].port"), port.port)?,
                protocol: p.protocol(format!("spec.ports[{i}].protocol"), port.protocol.as_deref())?,
                node_port: p.optional_port(format!("spec.ports[{i}].nodePort"), port.node_port)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_ports(p, &specs)?;
    Ok(specs)
}

/// `spec.ports[i].name`: a DNS-1123 label, required when the Service has more than one port.
fn port_name(p: &FieldParser<'_>, i: usize, port: &ApiServicePort, count: usize) -> Result<String, ConversionError> {
    let name = port.name.as_deref().unwrap_or_default();
    let field = format!("spec.ports[{i}].name");
    match name.is_empty() {
        true if count > 1 => Err(p.error(field, Invalid::Missing)),
        true => Ok(String::new()),
        false => p.name(field, name, NameRule::Dns1123Label).map(|()| name.to_owned()),
    }
}

/// The apiserver's uniqueness rules within one Service: port names, (port, protocol) pairs
/// and (node port, protocol) pairs.
fn check_unique_ports(p: &FieldParser<'_>, ports: &[PortSpec]) -> Result<(), ConversionError> {
    let mut names = HashSet::new();
    let mut numbers = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !port.name.is_empty() && !names.insert(port.name.as_str()) {
            return Err(p.error(format!("spec.ports[{i}].name"), Invalid::Duplicate(port.name.clone())));
        }
        if !numbers.insert((port.port, port.protocol)) {
            let pair = format!("{}/{}", port.port, port.protocol);
            return Err(p.error(format!("spec.ports[{i}]"), Invalid::Duplicate(pair)));
        }
        if let Some(node_port) = port.node_port
            && !node_ports.insert((node_port, port.protocol))
        {
            let pair = format!("{node_port}/{}", port.protocol);
            return Err(p.error(format!("spec.ports[{i}].nodePort"), Invalid::Duplicate(pair)));
        }
    }
    Ok(())
}

/// The `spec.trafficDistribution` values the API defines.
const TRAFFIC_DISTRIBUTIONS: [&str; 3] = ["PreferClose", "PreferSameZone", "PreferSameNode"];

/// `spec.trafficDistribution` when it holds a value the API defines, absent otherwise.
/// kube-proxy takes topology from endpoint hints alone and proxies a Service whatever this
/// field says, so an unknown value is dropped rather than made an error.
fn traffic_distribution(spec: &ServiceSpec) -> Option<String> {
    spec.traffic_distribution.as_deref().filter(|v| TRAFFIC_DISTRIBUTIONS.contains(v)).map(str::to_owned)
}

fn load_balancer_vips(p: &FieldParser<'_>, service: &Service) -> Result<Vec<IpAddr>, ConversionError> {
    let ingress = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or_default();
    let mut vips = Vec::new();
    for (i, ing) in ingress.iter().enumerate() {
        let Some(ip) = ing.ip.as_deref().filter(|ip| !ip.is_empty()) else {
            continue;
        };
        match ing.ip_mode.as_deref() {
            None | Some("VIP") => vips.push(p.ip(format!("status.loadBalancer.ingress[{i}].ip"), ip)?),
            Some("Proxy") => {}
            Some(other) => {
                return Err(
                    p.error(format!("status.loadBalancer.ingress[{i}].ipMode"), Invalid::Value(other.to_owned()))
                );
            }
        }
    }
    Ok(vips)
}

fn source_ranges(p: &FieldParser<'_>, spec: &ServiceSpec) -> Result<Vec<IpNet>, ConversionError> {
    let ranges = spec.load_balancer_source_ranges.as_deref().unwrap_or_default();
    ranges.iter().enumerate().map(|(i, r)| p.cidr(format!("spec.loadBalancerSourceRanges[{i}]"), r)).collect()
}

fn session_affinity(p: &FieldParser<'_>, spec: &ServiceSpec) -> Result<SessionAffinity, ConversionError> {
    match spec.session_affinity.as_deref() {
        None | Some("") | Some("None") => Ok(SessionAffinity::None),
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            let timeout_seconds = match timeout {
                None => DEFAULT_STICKY_MAX_AGE_SECONDS,
                Some(t) => {
                    u32::try_from(t).ok().filter(|t| (1..=MAX_STICKY_MAX_AGE_SECONDS).contains(t)).ok_or_else(|| {
                        let range =
                            Invalid::Range { value: i64::from(t), min: 1, max: i64::from(MAX_STICKY_MAX_AGE_SECONDS) };
                        p.error("spec.sessionAffinityConfig.clientIP.timeoutSeconds", range)
                    })?
                }
            };
            Ok(SessionAffinity::ClientIp { timeout_seconds })
        }
        Some(other) => Err(p.error("spec.sessionAffinity", Invalid::Value(other.to_owned()))),
    }
}

/// `true` for `Local`, `false` for `Cluster` or absent.
fn traffic_policy(p: &FieldParser<'_>, field: &str, value: &Option<String>) -> Result<bool, ConversionError> {
    match value.as_deref() {
        None | Some("") | Some("Cluster") => Ok(false),
        Some("Local") => Ok(true),
        Some(other) => Err(p.error(field, Invalid::Value(other.to_owned()))),
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
