//! `service(ns, name)`: a builder for core/v1 Services.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, LoadBalancerIngress, LoadBalancerStatus, Service, ServicePort, ServiceSpec, ServiceStatus,
    SessionAffinityConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Starts a ClusterIP Service without ports or cluster IP.
pub fn service(namespace: &str, name: &str) -> ServiceBuilder {
    ServiceBuilder {
        service: Service {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec { type_: Some("ClusterIP".to_owned()), ..ServiceSpec::default() }),
            status: None,
        },
    }
}

/// Builds a Service step by step; see [`service`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ServiceBuilder {
    service: Service,
}

impl ServiceBuilder {
    fn spec(&mut self) -> &mut ServiceSpec {
        self.service.spec.get_or_insert_with(ServiceSpec::default)
    }

    /// Sets `spec.type`.
    pub fn type_(mut self, type_: &str) -> Self {
        self.spec().type_ = Some(type_.to_owned());
        self
    }

    /// Sets the single cluster IP (`clusterIP` and `clusterIPs`).
    pub fn cluster_ip(self, ip: &str) -> Self {
        self.cluster_ips(&[ip])
    }

    /// Sets `clusterIPs` (the first is also `clusterIP`).
    pub fn cluster_ips(mut self, ips: &[&str]) -> Self {
        let spec = self.spec();
        spec.cluster_ip = ips.first().map(|ip| (*ip).to_owned());
        spec.cluster_ips = Some(ips.iter().map(|ip| (*ip).to_owned()).collect());
        self
    }

    /// Adds a port.
    pub fn port(mut self, name: &str, port: i32, protocol: &str, node_port: Option<i32>) -> Self {
        self.spec().ports.get_or_insert_with(Vec::new).push(ServicePort {
            name: Some(name.to_owned()),
            port,
            protocol: Some(protocol.to_owned()),
            node_port,
            ..ServicePort::default()
        });
        self
    }

    /// Adds a TCP port.
    pub fn tcp(self, name: &str, port: i32) -> Self {
        self.port(name, port, "TCP", None)
    }

    /// Adds a UDP port.
    pub fn udp(self, name: &str, port: i32) -> Self {
        self.port(name, port, "UDP", None)
    }

    /// Adds an SCTP port.
    pub fn sctp(self, name: &str, port: i32) -> Self {
        self.port(name, port, "SCTP", None)
    }

    /// Makes it a NodePort Service and adds a TCP port with a node port.
    pub fn node_port(self, name: &str, port: i32, node_port: i32) -> Self {
        self.type_("NodePort").port(name, port, "TCP", Some(node_port))
    }

    /// Sets `spec.externalIPs`.
    pub fn external_ips(mut self, ips: &[&str]) -> Self {
        self.spec().external_ips = Some(ips.iter().map(|ip| (*ip).to_owned()).collect());
        self
    }

    /// Adds a load-balancer ingress IP with the given `ipMode` (None = unset).
    pub fn lb_ingress(mut self, ip: &str, ip_mode: Option<&str>) -> Self {
        let status = self.service.status.get_or_insert_with(ServiceStatus::default);
        let lb = status.load_balancer.get_or_insert_with(LoadBalancerStatus::default);
        lb.ingress.get_or_insert_with(Vec::new).push(LoadBalancerIngress {
            ip: Some(ip.to_owned()),
            ip_mode: ip_mode.map(str::to_owned),
            ..LoadBalancerIngress::default()
        });
        self
    }

    /// Sets `spec.loadBalancerSourceRanges`.
    pub fn source_ranges(mut self, ranges: &[&str]) -> Self {
        self.spec().load_balancer_source_ranges = Some(ranges.iter().map(|r| (*r).to_owned()).collect());
        self
    }

    /// Sets `spec.externalTrafficPolicy`.
    pub fn external_traffic_policy(mut self, policy: &str) -> Self {
        self.spec().external_traffic_policy = Some(policy.to_owned());
        self
    }

    /// Sets `spec.internalTrafficPolicy`.
    pub fn internal_traffic_policy(mut self, policy: &str) -> Self {
        self.spec().internal_traffic_policy = Some(policy.to_owned());
        self
    }

    /// Sets `spec.healthCheckNodePort`.
    pub fn health_check_node_port(mut self, port: i32) -> Self {
        self.spec().health_check_node_port = Some(port);
        self
    }

    /// Sets ClientIP session affinity with an optional timeout.
    pub fn client_ip_affinity(mut self, timeout_seconds: Option<i32>) -> Self {
        let spec = self.spec();
        spec.session_affinity = Some("ClientIP".to_owned());
        spec.session_affinity_config = timeout_seconds
            .map(|t| SessionAffinityConfig { client_ip: Some(ClientIPConfig { timeout_seconds: Some(t) }) });
        self
    }

    /// Sets `spec.trafficDistribution`.
    pub fn traffic_distribution(mut self, value: &str) -> Self {
        self.spec().traffic_distribution = Some(value.to_owned());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.service.metadata.labels.get_or_insert_with(BTreeMap::new).insert(key.to_owned(), value.to_owned());
        self
    }

    /// Changes the Service with a closure, for fields the builder has no method for.
    pub fn with(mut self, f: impl FnOnce(&mut Service)) -> Self {
        f(&mut self.service);
        self
    }

    /// The Service.
    pub fn build(self) -> Service {
        self.service
    }
}
