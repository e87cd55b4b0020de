//! What programs node1 for the harness: a dataplane driven in-process ([`DataplaneHost`]), or,
//! with feature `e2e`, the `kproxy` daemon watching a fake apiserver (see [`crate::e2e`]).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::{Changes, PacketCounter, ProxyState, SyncStats};

use super::host::{DataplaneFactory, DataplaneHost};
use crate::Error;
use crate::topology::{Cluster, NodeFlags};

/// How to build the backend.
#[derive(Clone)]
pub(crate) enum BackendSpec {
    /// A dataplane from this factory, driven in-process on node1.
    Dataplane(Arc<DataplaneFactory>),
    /// The daemon binary on node1, fed through a fake apiserver.
    #[cfg(feature = "e2e")]
    Daemon(crate::e2e::DaemonSpec),
}

/// A write of the harness that the daemon backend mirrors to its apiserver.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "e2e"), expect(dead_code, reason = "only the daemon backend reads the writes"))]
pub(crate) enum Write<'a> {
    /// A Service added or updated.
    Service(&'a Service),
    /// An EndpointSlice added or updated.
    Slice(&'a EndpointSlice),
    /// A Service (namespace, name) deleted.
    DeleteService(&'a str, &'a str),
    /// An EndpointSlice (namespace, name) deleted.
    DeleteSlice(&'a str, &'a str),
}

/// The running backend.
pub(crate) enum Backend {
    /// In-process: the harness hands the model to `Dataplane::sync`.
    Dataplane {
        /// The dataplane thread; `None` while being rebuilt.
        host: Option<DataplaneHost>,
        /// Builds (and rebuilds) it.
        factory: Arc<DataplaneFactory>,
    },
    /// End to end: the daemon reads the objects from its apiserver.
    #[cfg(feature = "e2e")]
    Daemon(Box<crate::e2e::DaemonNode>),
}

impl Backend {
    /// Starts the backend on node1 with `masqueradeAll` off.
    pub(crate) async fn start(spec: BackendSpec, cluster: &Cluster) -> Result<Self, Error> {
        match spec {
            BackendSpec::Dataplane(factory) => {
                let host = DataplaneHost::start(factory.clone(), cluster.node_env(NodeFlags::default())?)?;
                Ok(Self::Dataplane { host: Some(host), factory })
            }
            #[cfg(feature = "e2e")]
            BackendSpec::Daemon(spec) => {
                Ok(Self::Daemon(Box::new(crate::e2e::DaemonNode::start(spec, cluster).await?)))
            }
        }
    }

    /// The dataplane's name, or `kproxy daemon`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Dataplane { host, .. } => host.as_ref().map_or("(none)", DataplaneHost::name),
            #[cfg(feature = "e2e")]
            Self::Daemon(_) => "kproxy daemon",
        }
    }

    /// The proxy mode: the dataplane's name, or the daemon's `--mode` (`nft` spelled
    /// `nftables`).
    pub(crate) fn mode(&self) -> &str {
        match self {
            Self::Dataplane { .. } => self.name(),
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => match daemon.mode() {
                "nft" => "nftables",
                mode => mode,
            },
        }
    }

    /// What the dataplane's kernel counter `kind` counted (`None`: this mode keeps no such
    /// counter): read in-process, or from the daemon's `/metrics`.
    pub(crate) async fn packet_count(&self, kind: PacketCounter) -> Result<Option<u64>, Error> {
        match self {
            Self::Dataplane { host, .. } => {
                let Some(counters) = host.as_ref().and_then(DataplaneHost::packet_counters) else {
                    return Ok(None);
                };
                Ok(counters.read().await.into_iter().find(|(k, _)| *k == kind).map(|(_, n)| n))
            }
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => daemon.metric(kind.metric_name()).await.map(|v| v.map(|v| v as u64)),
        }
    }

    /// Mirrors a Service or EndpointSlice write (in-process: nothing to do).
    pub(crate) fn mirror(&mut self, write: Write<'_>) -> Result<(), Error> {
        match self {
            Self::Dataplane { .. } => {
                let _ = write;
                Ok(())
            }
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => daemon.mirror(write),
        }
    }

    /// Mirrors a ServiceCIDR write (`None`: the ServiceCIDR `name` deleted), which must
    /// change the service CIDRs (in-process: nothing to do).
    pub(crate) async fn mirror_service_cidr(&mut self, name: &str, object: Option<&ServiceCIDR>) -> Result<(), Error> {
        match self {
            Self::Dataplane { .. } => {
                let _ = (name, object);
                Ok(())
            }
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => daemon.mirror_service_cidr(name, object).await,
        }
    }

    /// Mirrors node1's Node object (in-process: nothing to do).
    pub(crate) async fn mirror_node(&mut self, node: &Node) -> Result<(), Error> {
        match self {
            Self::Dataplane { .. } => {
                let _ = node;
                Ok(())
            }
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => daemon.mirror_node(node).await,
        }
    }

    /// Replaces the backend by one with `flags`, after cleaning the old one up.
    pub(crate) async fn restart(&mut self, cluster: &Cluster, flags: NodeFlags) -> Result<(), Error> {
        match self {
            Self::Dataplane { host, factory } => {
                if let Some(old) = host.take()
                    && old.is_alive()
                {
                    old.cleanup().await?;
                }
                *host = Some(DataplaneHost::start(factory.clone(), cluster.node_env(flags)?)?);
                Ok(())
            }
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => daemon.restart(flags).await,
        }
    }

    /// Programs `state` (in-process) or waits until the daemon has programmed every
    /// mirrored write. A dataplane thread or daemon that died is started again first.
    pub(crate) async fn sync(
        &mut self,
        cluster: &Cluster,
        flags: NodeFlags,
        state: &ProxyState,
        changes: &mut Changes,
    ) -> Result<SyncStats, Error> {
        match self {
            Self::Dataplane { host, factory } => {
                if !host.as_ref().is_some_and(DataplaneHost::is_alive) {
                    *host = None;
                    *host = Some(DataplaneHost::start(factory.clone(), cluster.node_env(flags)?)?);
                    changes.set_full();
                }
                let host = host.as_ref().ok_or_else(|| Error::new("no dataplane"))?;
                host.sync(state, changes.clone()).await
            }
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => {
                daemon.settle().await?;
                Ok(SyncStats { full: changes.full(), ..SyncStats::default() })
            }
        }
    }

    /// Cleans up what the backend programmed and stops it.
    pub(crate) async fn shutdown(self) -> Result<(), Error> {
        match self {
            Self::Dataplane { host: Some(host), .. } if host.is_alive() => host.cleanup().await,
            Self::Dataplane { .. } => Ok(()),
            #[cfg(feature = "e2e")]
            Self::Daemon(daemon) => daemon.shutdown(),
        }
    }
}
