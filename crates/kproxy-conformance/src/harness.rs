//! The harness: a [`Cluster`], the dataplane under test on node1, and the model that feeds it.
//!
//! API objects go into the daemon's [`ProxyLoop`] as the source events the daemon's sources
//! would send; [`Harness::sync`] runs the loop's sync, which checks the changes out into the
//! [`ProxyState`] and runs `Dataplane::sync` on node1 (see [`DataplaneFactory`] for where the
//! dataplane runs).
//! In end-to-end mode (feature `e2e`) every write also goes to a fake apiserver and
//! [`Harness::sync`] waits for the `kproxy` daemon on node1 to program it instead.

mod alloc;
mod backend;
mod host;
mod requests;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kproxy_core::{
    Changes, ConversionError, Dataplane, ObjectEvent, ProxyLoop, ProxyState, SourceEvent, SyncError, SyncStats,
};

use crate::topology::{Cluster, NodeEnv, NodeFlags};
use crate::{Error, plan};
use alloc::Allocator;
use backend::Backend;
pub(crate) use backend::{BackendSpec, Write};

pub(crate) use host::panic_text;
pub use host::{BoxError, DataplaneFactory};
pub use requests::{Proto, SPREAD_FAILED, SPREAD_REFUSED, SPREAD_TIMED_OUT, eventually, spread_key};

/// The request timeout by default: a request with no answer by then counts as dropped.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// See the module docs.
pub struct Harness {
    backend: Option<Backend>,
    flags: NodeFlags,
    /// The daemon's own loop: events in, checkout, full or partial, quarantine.
    proxy: ProxyLoop,
    services: BTreeMap<(String, String), Service>,
    slices: BTreeMap<(String, String), EndpointSlice>,
    service_cidrs: BTreeMap<String, ServiceCIDR>,
    alloc: Allocator,
    request_timeout: Duration,
    // Last: the dataplane thread (or daemon) leaves node1 before the namespaces go.
    cluster: Cluster,
}

/// node1's Node object as the cluster has it: addresses, pod CIDRs, no labels.
pub fn default_node() -> Node {
    kproxy_testkit::node(plan::NODE1)
        .internal_ip(&plan::NODE1_IPV4.to_string())
        .internal_ip(&plan::NODE1_IPV6.to_string())
        .pod_cidr(&plan::NODE1_POD_CIDR_V4.to_string())
        .pod_cidr(&plan::NODE1_POD_CIDR_V6.to_string())
        .build()
}

fn key(namespace: Option<&String>, name: Option<&String>) -> (String, String) {
    (namespace.cloned().unwrap_or_default(), name.cloned().unwrap_or_default())
}

impl Harness {
    /// Builds node1's dataplane with `factory`, feeds it node1's Node and syncs once.
    pub async fn new(cluster: Cluster, factory: Arc<DataplaneFactory>) -> Result<Self, Error> {
        Self::start(cluster, BackendSpec::Dataplane(factory)).await
    }

    /// Starts the backend `spec` on node1, feeds it node1's Node and syncs once.
    pub(crate) async fn start(cluster: Cluster, spec: BackendSpec) -> Result<Self, Error> {
        let backend = Backend::start(spec, &cluster).await?;
        let mut harness = Self {
            backend: Some(backend),
            flags: NodeFlags::default(),
            proxy: ProxyLoop::new(plan::NODE1, SystemTime::now()),
            services: BTreeMap::new(),
            slices: BTreeMap::new(),
            service_cidrs: BTreeMap::new(),
            alloc: Allocator::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            cluster,
        };
        harness.set_node(&default_node()).await?;
        Ok(harness)
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The dataplane's name (`kproxy daemon` end to end).
    pub fn dataplane_name(&self) -> &'static str {
        self.backend.as_ref().map_or("(none)", Backend::name)
    }

    /// The proxy mode under test (`nftables`, `iptables`, `userspace`, `ebpf`), in
    /// process and end to end alike.
    pub fn mode(&self) -> &str {
        self.backend.as_ref().map_or("(none)", Backend::mode)
    }

    fn backend(&mut self) -> Result<&mut Backend, Error> {
        self.backend.as_mut().ok_or_else(|| Error::new("the harness was shut down"))
    }

    /// The model as of the last sync.
    pub fn state(&self) -> &ProxyState {
        self.proxy.state()
    }

    /// The loop that drives node1's dataplane (quarantined ports, conflicts).
    pub fn proxy_loop(&self) -> &ProxyLoop {
        &self.proxy
    }

    /// How long a request waits for an answer.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Changes how long a request waits for an answer.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Adds or updates a Service, without syncing.
    pub fn stage_service(&mut self, service: Service) -> Result<(), Error> {
        match self.stage_any_service(service)? {
            None => Ok(()),
            Some(e) => Err(Error::new(format!("service: {e}"))),
        }
    }

    /// Adds or updates a Service that may be malformed (as an apiserver or a manifest
    /// directory may hand it over), then syncs; returns why it was skipped, if it was.
    pub async fn apply_hostile_service(&mut self, service: Service) -> Result<Option<ConversionError>, Error> {
        let skipped = self.stage_any_service(service)?;
        self.sync().await?;
        Ok(skipped)
    }

    /// Adds or updates a Service, mirrored to the backend even when it is malformed.
    fn stage_any_service(&mut self, service: Service) -> Result<Option<ConversionError>, Error> {
        let skipped = self.fold(SourceEvent::Service(ObjectEvent::Apply(service.clone())));
        let key = key(service.metadata.namespace.as_ref(), service.metadata.name.as_ref());
        // An unchanged object is no change: the daemon would have nothing to program.
        if self.services.get(&key) != Some(&service) {
            self.backend()?.mirror(Write::Service(&service))?;
        }
        self.services.insert(key, service);
        Ok(skipped)
    }

    /// Adds or updates an EndpointSlice, without syncing.
    pub fn stage_slice(&mut self, slice: EndpointSlice) -> Result<(), Error> {
        match self.stage_any_slice(slice)? {
            None => Ok(()),
            Some(e) => Err(Error::new(format!("slice: {e}"))),
        }
    }

    /// Adds or updates an EndpointSlice that may be malformed, then syncs; returns why it
    /// was skipped, if it was.
    pub async fn apply_hostile_slice(&mut self, slice: EndpointSlice) -> Result<Option<ConversionError>, Error> {
        let skipped = self.stage_any_slice(slice)?;
        self.sync().await?;
        Ok(skipped)
    }

    fn stage_any_slice(&mut self, slice: EndpointSlice) -> Result<Option<ConversionError>, Error> {
        let skipped = self.fold(SourceEvent::EndpointSlice(ObjectEvent::Apply(slice.clone())));
        let key = key(slice.metadata.namespace.as_ref(), slice.metadata.name.as_ref());
        if self.slices.get(&key) != Some(&slice) {
            self.backend()?.mirror(Write::Slice(&slice))?;
        }
        self.slices.insert(key, slice);
        Ok(skipped)
    }

    /// Adds or updates a Service, then syncs.
    pub async fn apply_service(&mut self, service: Service) -> Result<SyncStats, Error> {
        self.stage_service(service)?;
        self.sync().await
    }

    /// Adds or updates an EndpointSlice, then syncs.
    pub async fn apply_slice(&mut self, slice: EndpointSlice) -> Result<SyncStats, Error> {
        self.stage_slice(slice)?;
        self.sync().await
    }

    /// Deletes a Service, then syncs.
    pub async fn delete_service(&mut self, namespace: &str, name: &str) -> Result<SyncStats, Error> {
        let applied = self.services.remove(&(namespace.to_owned(), name.to_owned()));
        self.fold(SourceEvent::Service(ObjectEvent::Delete(applied.unwrap_or_else(|| named(namespace, name)))));
        self.backend()?.mirror(Write::DeleteService(namespace, name))?;
        self.sync().await
    }

    /// Deletes an EndpointSlice, then syncs.
    pub async fn delete_slice(&mut self, namespace: &str, name: &str) -> Result<SyncStats, Error> {
        let slice = self.slices.remove(&(namespace.to_owned(), name.to_owned()));
        let slice = slice.ok_or_else(|| Error::new(format!("no slice {namespace}/{name} was applied")))?;
        self.fold(SourceEvent::EndpointSlice(ObjectEvent::Delete(slice)));
        self.backend()?.mirror(Write::DeleteSlice(namespace, name))?;
        self.sync().await
    }

    /// Adds or updates a ServiceCIDR (the ranges cluster IPs are allocated from), then syncs.
    /// The write must change the cluster's service CIDRs (end to end, the harness waits for
    /// the daemon to take the change).
    pub async fn apply_service_cidr(&mut self, object: ServiceCIDR) -> Result<SyncStats, Error> {
        if let Some(e) = self.fold(SourceEvent::ServiceCidr(ObjectEvent::Apply(object.clone()))) {
            return Err(Error::new(format!("ServiceCIDR: {e}")));
        }
        let name = object.metadata.name.clone().unwrap_or_default();
        self.backend()?.mirror_service_cidr(&name, Some(&object)).await?;
        self.service_cidrs.insert(name, object);
        self.sync().await
    }

    /// Deletes a ServiceCIDR applied before, then syncs.
    pub async fn delete_service_cidr(&mut self, name: &str) -> Result<SyncStats, Error> {
        self.remove_service_cidr(name).await?;
        self.sync().await
    }

    async fn remove_service_cidr(&mut self, name: &str) -> Result<(), Error> {
        let object = self.service_cidrs.remove(name);
        let object = object.ok_or_else(|| Error::new(format!("no ServiceCIDR {name} was applied")))?;
        self.fold(SourceEvent::ServiceCidr(ObjectEvent::Delete(object)));
        self.backend()?.mirror_service_cidr(name, None).await
    }

    /// Replaces node1's Node object (labels for topology), then syncs.
    pub async fn set_node(&mut self, node: &Node) -> Result<SyncStats, Error> {
        self.apply_node(node)?;
        self.backend()?.mirror_node(node).await?;
        self.sync().await
    }

    /// Rebuilds the dataplane with `masquerade_all` (after `cleanup` of the old one) and
    /// syncs everything into it.
    pub async fn set_masquerade_all(&mut self, masquerade_all: bool) -> Result<SyncStats, Error> {
        self.flags.masquerade_all = masquerade_all;
        self.restart().await
    }

    /// What the dataplane's kernel packet counter `kind` counted so far (`None`: this
    /// mode keeps no such counter), as its metric shows it.
    pub async fn packet_count(&self, kind: kproxy_core::PacketCounter) -> Result<Option<u64>, Error> {
        let backend = self.backend.as_ref().ok_or_else(|| Error::new("no backend"))?;
        backend.packet_count(kind).await
    }

    /// Rebuilds the dataplane (end to end: restarts the daemon) with
    /// `--nftables-localhost-nodeports` set to `on`, and syncs everything into it.
    pub async fn set_localhost_nodeports(&mut self, on: bool) -> Result<SyncStats, Error> {
        self.flags.localhost_nodeports = on;
        self.restart().await
    }

    /// Restarts node1's dataplane (end to end: the daemon) and syncs everything into it:
    /// the new one must converge from the objects alone.
    pub async fn restart(&mut self) -> Result<SyncStats, Error> {
        let backend = self.backend.as_mut().ok_or_else(|| Error::new("the harness was shut down"))?;
        backend.restart(&self.cluster, self.flags).await?;
        self.proxy.request_full_sync();
        self.sync().await
    }

    /// Runs the daemon's [`ProxyLoop`] once: checks the pending changes out and programs
    /// node1 (end to end: waits until the daemon has programmed every write). After a
    /// failure the next sync is a full one and carries the failed changes too; a port the
    /// dataplane rejects is quarantined and the rest programmed; a dataplane thread (or
    /// daemon) that died is started again first.
    pub async fn sync(&mut self) -> Result<SyncStats, Error> {
        let backend = self.backend.as_mut().ok_or_else(|| Error::new("the harness was shut down"))?;
        let mut node = NodeDataplane { backend, cluster: &self.cluster, flags: self.flags };
        match self.proxy.sync(&mut node, false).await {
            Ok(report) => Ok(report.stats),
            Err(e) => Err(Error::new(e.to_string())),
        }
    }

    /// Deletes every Service, EndpointSlice and ServiceCIDR applied, restores node1's Node
    /// and `masquerade_all: false`, and syncs: the state between cases.
    pub async fn reset(&mut self) -> Result<(), Error> {
        let names: Vec<String> = self.service_cidrs.keys().cloned().collect();
        for name in names {
            self.remove_service_cidr(&name).await?;
        }
        for ((namespace, name), service) in std::mem::take(&mut self.services) {
            self.fold(SourceEvent::Service(ObjectEvent::Delete(service)));
            self.backend()?.mirror(Write::DeleteService(&namespace, &name))?;
        }
        for ((namespace, name), slice) in std::mem::take(&mut self.slices) {
            self.fold(SourceEvent::EndpointSlice(ObjectEvent::Delete(slice)));
            self.backend()?.mirror(Write::DeleteSlice(&namespace, &name))?;
        }
        let node = default_node();
        self.apply_node(&node)?;
        self.backend()?.mirror_node(&node).await?;
        if self.flags != NodeFlags::default() {
            self.flags = NodeFlags::default();
            self.restart().await?;
        } else {
            self.sync().await?;
        }
        Ok(())
    }

    /// Folds `event` into the loop; the first malformed object it carried, if any.
    fn fold(&mut self, event: SourceEvent) -> Option<ConversionError> {
        self.proxy.on_event(event).into_iter().next().map(|malformed| malformed.error)
    }

    /// Folds node1's Node into the loop, without syncing.
    fn apply_node(&mut self, node: &Node) -> Result<(), Error> {
        match self.fold(SourceEvent::Node(ObjectEvent::Apply(node.clone()))) {
            None => Ok(()),
            Some(e) => Err(Error::new(format!("node: {e}"))),
        }
    }

    /// Runs the dataplane's `cleanup` (end to end: stops the daemon and runs
    /// `kproxy --cleanup` on node1), then stops it; the cluster goes with the harness.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        match self.backend.take() {
            Some(backend) => backend.shutdown().await,
            None => Ok(()),
        }
    }

    /// node1 as the factory saw it last.
    pub fn node_env(&self) -> Result<NodeEnv, Error> {
        self.cluster.node_env(self.flags)
    }

    /// A cluster IP (IPv4) not used before in this run.
    pub fn alloc_cluster_ipv4(&mut self) -> Ipv4Addr {
        self.alloc.cluster_ipv4()
    }

    /// A cluster IP (IPv6) not used before in this run.
    pub fn alloc_cluster_ipv6(&mut self) -> Ipv6Addr {
        self.alloc.cluster_ipv6()
    }

    /// A node port not used before in this run.
    pub fn alloc_node_port(&mut self) -> u16 {
        self.alloc.node_port()
    }

    /// A load-balancer ingress IP not used recently in this run.
    pub fn alloc_lb_ip(&mut self) -> Ipv4Addr {
        self.alloc.lb_ip()
    }

    /// An external IP not used recently in this run.
    pub fn alloc_external_ip(&mut self) -> Ipv4Addr {
        self.alloc.external_ip()
    }
}

/// A Service known only by name, to delete it.
fn named(namespace: &str, name: &str) -> Service {
    let metadata =
        ObjectMeta { namespace: Some(namespace.to_owned()), name: Some(name.to_owned()), ..ObjectMeta::default() };
    Service { metadata, ..Service::default() }
}

/// node1's backend as a [`Dataplane`], so that the harness drives it with the daemon's loop.
struct NodeDataplane<'a> {
    backend: &'a mut Backend,
    cluster: &'a Cluster,
    flags: NodeFlags,
}

#[async_trait::async_trait]
impl Dataplane for NodeDataplane<'_> {
    fn name(&self) -> &'static str {
        self.backend.name()
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let mut changes = changes.clone();
        let result = self.backend.sync(self.cluster, self.flags, state, &mut changes).await;
        result.map_err(|e| SyncError::retryable("node1", "sync", e))
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}
