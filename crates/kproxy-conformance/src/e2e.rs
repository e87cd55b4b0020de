//! End-to-end mode (feature `e2e`): the same case table, through the `kproxy` binary.
//!
//! A [`FakeApiServer`](kproxy_testkit::FakeApiServer) runs on a thread inside node1's
//! namespace and the daemon runs there too (`ip netns exec`), watching it through a
//! kubeconfig. Every Service, EndpointSlice and Node the harness applies or deletes is
//! written to the apiserver; [`Harness::sync`](crate::Harness::sync) then waits until the
//! daemon has programmed it, read from its `/metrics` (scraped inside node1):
//!
//! 1. *handled*: the daemon's `…_service_changes_total` and `…_endpoint_changes_total`
//!    counters reach one event per write made since it started;
//! 2. *programmed*: on a later scrape, both `…_changes_pending` gauges are 0 (the daemon
//!    keeps them until a sync that includes the changes has succeeded).
//!
//! A Node or ServiceCIDR change shows in neither, so it is written alone: once the daemon
//! has handled it (`…_last_queued_timestamp_seconds` passes the write), a marker Service is
//! created or deleted; the sync that programs the marker has checked the change out too.
//! masqueradeAll restarts the daemon with `--masquerade-all`, localhost node ports with
//! `--nftables-localhost-nodeports`. A mode's own flags (e.g. the
//! eBPF mode's cgroup and namespaces) come from the caller's [`DaemonArgs`], given node1.
//! Stopping (also on a panic) kills the daemon and runs `kproxy --cleanup` inside node1,
//! with the same mode flags and no eBPF pin directory (bpffs is not per namespace: the
//! host's pins are never touched).

mod apiserver;
mod process;
mod scrape;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_testkit::{FakeApiServer, ResourceKind};

use crate::harness::{BackendSpec, Write};
use crate::runner::{Report, run_with};
use crate::topology::{Cluster, NodeFlags};
use crate::{Error, NodeEnv, cases, default_node, plan};
use apiserver::ApiServerThread;
use process::DaemonProcess;
use scrape::{Progress, scrape};

/// Where the daemon serves `/metrics` inside node1 (kube-proxy's default port).
const METRICS_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 10249);
/// Where it serves `/healthz`.
const HEALTHZ_ADDR: &str = "127.0.0.1:10256";
/// How long the daemon may take to start and finish its first sync.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to program the latest writes, plus [`PER_WRITE`] each.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time per write (1,000 Services and their slices take a while to stream).
const PER_WRITE: Duration = Duration::from_millis(5);
/// The pause between two scrapes.
const POLL: Duration = Duration::from_millis(10);
/// The marker Service's namespace, name and cluster IP (outside the allocator's range).
const MARKER: (&str, &str, &str) = ("kpc-e2e", "sync-marker", "172.30.0.2");

/// Runs every case of [`cases()`](crate::cases) (those whose name contains `filter`, if
/// given) end to end: `binary --mode <mode>` on node1, objects from a fake apiserver (see
/// the module docs); `skips` (case name, reason) are reported as skipped. Prints a line per
/// case and a final `N passed, N failed, N skipped`. Needs root.
pub async fn run_conformance_e2e(binary: &Path, mode: &str, skips: &[(&str, &str)], filter: Option<&str>) -> Report {
    run_conformance_e2e_with(binary, mode, Arc::new(|_: &NodeEnv| Vec::new()), skips, filter).await
}

/// [`run_conformance_e2e`], the daemon (and its `--cleanup`) also given `daemon_args(node1)`.
pub async fn run_conformance_e2e_with(
    binary: &Path,
    mode: &str,
    daemon_args: Arc<DaemonArgs>,
    skips: &[(&str, &str)],
    filter: Option<&str>,
) -> Report {
    println!("end to end: {} --mode {mode} on node1, objects from a fake apiserver", binary.display());
    let spec = DaemonSpec { binary: binary.to_owned(), mode: mode.to_owned(), extra_args: daemon_args };
    run_with(BackendSpec::Daemon(spec), &cases(), skips, filter).await
}

/// A mode's own daemon flags, given node1 as a dataplane factory sees it (its namespace
/// and its pods'): e.g. `--ebpf-netns` naming them.
pub type DaemonArgs = dyn Fn(&NodeEnv) -> Vec<String> + Send + Sync;

/// Which daemon to run.
#[derive(Clone)]
pub(crate) struct DaemonSpec {
    binary: PathBuf,
    mode: String,
    extra_args: Arc<DaemonArgs>,
}

impl std::fmt::Debug for DaemonSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonSpec").field("binary", &self.binary).field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// The daemon on node1 and its apiserver; see the module docs.
pub(crate) struct DaemonNode {
    spec: DaemonSpec,
    netns: String,
    /// The mode's own flags, from [`DaemonSpec::extra_args`].
    extra_args: Vec<String>,
    /// Holds the kubeconfig and the daemon's logs; removed on drop.
    dir: PathBuf,
    process: Option<DaemonProcess>,
    flags: NodeFlags,
    launches: u32,
    /// Service and EndpointSlice events the daemon will have handled once it has every write.
    expected: (f64, f64),
    /// Writes since the daemon was last seen to have programmed everything.
    unsettled: usize,
    last_node: Option<Node>,
    marker: bool,
    api: ApiServerThread,
}

impl DaemonNode {
    /// Starts the apiserver inside node1 with node1's Node, then the daemon.
    pub(crate) async fn start(spec: DaemonSpec, cluster: &Cluster) -> Result<Self, Error> {
        static RUN: AtomicU32 = AtomicU32::new(0);
        let netns = cluster.netns(plan::NODE1)?.to_owned();
        let run = RUN.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kpc-e2e-{}-{run}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::new(format!("create {}: {e}", dir.display())))?;
        let api = ApiServerThread::start(&netns);
        let extra_args = (spec.extra_args)(&cluster.node_env(NodeFlags::default())?);
        let mut node = Self {
            spec,
            netns,
            extra_args,
            process: None,
            flags: NodeFlags::default(),
            launches: 0,
            expected: (0.0, 0.0),
            unsettled: 0,
            last_node: Some(default_node()),
            marker: false,
            api: api.inspect_err(|_| drop(std::fs::remove_dir_all(&dir)))?,
            dir,
        };
        let server = node.api.server()?;
        server.apply(&default_node());
        let kubeconfig = node.dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).map_err(|e| Error::new(format!("write the kubeconfig: {e}")))?;
        node.launch().await?;
        Ok(node)
    }

    fn args(&self) -> Vec<String> {
        let cidrs: Vec<String> = plan::cluster_cidrs().iter().map(ToString::to_string).collect();
        let mut args: Vec<String> = [
            "--mode",
            &self.spec.mode,
            "--kubeconfig",
            &self.dir.join("kubeconfig").display().to_string(),
            "--hostname-override",
            plan::NODE1,
            "--cluster-cidr",
            &cidrs.join(","),
            "--min-sync-period",
            "100ms",
            "--sync-period",
            "5s",
            "--healthz-bind-address",
            HEALTHZ_ADDR,
            "--metrics-bind-address",
            &METRICS_ADDR.to_string(),
        ]
        .map(str::to_owned)
        .into();
        if self.flags.masquerade_all {
            args.push("--masquerade-all".to_owned());
        }
        if self.flags.localhost_nodeports {
            args.push("--nftables-localhost-nodeports".to_owned());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Starts the daemon and waits for its first sync; its counters are the baseline.
    async fn launch(&mut self) -> Result<(), Error> {
        self.launches += 1;
        let log = self.dir.join(format!("kproxy-{}.log", self.launches));
        self.process = Some(DaemonProcess::spawn(&self.spec.binary, &self.netns, &self.args(), log)?);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let progress = self.next(deadline, "start and sync").await?;
            if progress.last_sync > 0.0 && progress.pending == 0.0 {
                self.expected = (progress.service_changes, progress.endpoint_changes);
                self.unsettled = 0;
                return Ok(());
            }
        }
    }

    /// Kills the daemon and removes its rules (inside node1).
    fn stop(&mut self) -> Result<(), Error> {
        drop(self.process.take());
        process::cleanup(&self.spec.binary, &self.netns, &self.extra_args)
    }

    /// The daemon's `--mode`.
    pub(crate) fn mode(&self) -> &str {
        &self.spec.mode
    }

    /// Restarts the daemon with `flags`, its rules cleaned up in between.
    pub(crate) async fn restart(&mut self, flags: NodeFlags) -> Result<(), Error> {
        self.stop()?;
        self.flags = flags;
        self.launch().await
    }

    /// Stops the daemon and cleans up; the apiserver stops when this is dropped.
    pub(crate) fn shutdown(mut self: Box<Self>) -> Result<(), Error> {
        self.stop()
    }

    /// The next scrape, after [`POLL`]; an error once the daemon has exited or `deadline`
    /// has passed.
    async fn next(&mut self, deadline: Instant, what: &str) -> Result<Progress, Error> {
        loop {
            tokio::time::sleep(POLL).await;
            let process = self.process.as_mut().ok_or_else(|| Error::new("the daemon is not running"))?;
            if let Some(why) = process.exited() {
                return Err(Error::new(why));
            }
            let failure = match scrape(&self.netns, METRICS_ADDR).await {
                Ok(progress) if Instant::now() < deadline => return Ok(progress),
                Ok(progress) => format!("last seen {progress:?}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                let tail = process.log_tail();
                return Err(Error::new(format!("the daemon did not {what} in time ({failure}); {tail}")));
            }
        }
    }

    /// The value of the unlabelled series `name` in the daemon's `/metrics` (`None`: not
    /// exposed).
    pub(crate) async fn metric(&self, name: &str) -> Result<Option<f64>, Error> {
        let text = scrape::scrape_text(&self.netns, METRICS_ADDR).await?;
        Ok(scrape::value_of(&text, name))
    }

    /// Writes `write` to the apiserver.
    pub(crate) fn mirror(&mut self, write: Write<'_>) -> Result<(), Error> {
        let server = self.api.server()?;
        // Each write is one watch event of its kind (a delete of nothing is none).
        let (service_event, slice_event) = match write {
            Write::Service(service) => (server.apply(service) > 0, false),
            Write::Slice(slice) => (false, server.apply(slice) > 0),
            Write::DeleteService(ns, name) => (server.delete(ResourceKind::Service, ns, name), false),
            Write::DeleteSlice(ns, name) => (false, server.delete(ResourceKind::EndpointSlice, ns, name)),
        };
        self.expected.0 += f64::from(u8::from(service_event));
        self.expected.1 += f64::from(u8::from(slice_event));
        self.unsettled += 1;
        Ok(())
    }

    /// Writes node1's Node, alone, and waits until the daemon has handled it; then flips
    /// the marker Service, so that the next [`DaemonNode::settle`] covers the Node too.
    pub(crate) async fn mirror_node(&mut self, node: &Node) -> Result<(), Error> {
        if self.last_node.as_ref() == Some(node) {
            return Ok(());
        }
        self.mirror_uncounted("take the new Node", |server| {
            server.apply(node);
        })
        .await?;
        self.last_node = Some(node.clone());
        Ok(())
    }

    /// Writes (`Some`) or deletes ServiceCIDR `name`, alone, and waits until the daemon has
    /// handled it, as [`DaemonNode::mirror_node`] does. The write must change the service
    /// CIDRs (or the daemon would queue nothing to wait for).
    pub(crate) async fn mirror_service_cidr(&mut self, name: &str, object: Option<&ServiceCIDR>) -> Result<(), Error> {
        self.mirror_uncounted("take the ServiceCIDR change", |server| match object {
            Some(object) => {
                server.apply(object);
            }
            None => {
                server.delete(ResourceKind::ServiceCidr, "", name);
            }
        })
        .await
    }

    /// Makes `write`, of an object whose watch events the change counters do not count, and
    /// waits until the daemon has queued a sync for it; then flips the marker Service, so
    /// that the next [`DaemonNode::settle`] covers that sync too.
    async fn mirror_uncounted(&mut self, what: &str, write: impl FnOnce(&FakeApiServer)) -> Result<(), Error> {
        self.settle().await?;
        let written = unix_seconds(SystemTime::now());
        write(self.api.server()?);
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while self.next(deadline, what).await?.last_queued <= written {}
        let (ns, name, ip) = MARKER;
        if self.marker {
            self.mirror(Write::DeleteService(ns, name))?;
        } else {
            let service = kproxy_testkit::service(ns, name).cluster_ip(ip).tcp("marker", 1).build();
            self.mirror(Write::Service(&service))?;
        }
        self.marker = !self.marker;
        Ok(())
    }

    /// Waits until the daemon has programmed every write (see the module docs). A daemon
    /// that died (reported by an earlier wait) is started again first.
    pub(crate) async fn settle(&mut self) -> Result<(), Error> {
        if self.process.as_mut().is_none_or(|p| p.exited().is_some()) {
            let flags = self.flags;
            self.restart(flags).await?;
        }
        if self.unsettled == 0 {
            return Ok(());
        }
        let writes = u32::try_from(self.unsettled).unwrap_or(u32::MAX);
        let deadline = Instant::now() + SETTLE_TIMEOUT + PER_WRITE.saturating_mul(writes);
        let (services, slices) = self.expected;
        let mut handled = false;
        loop {
            let progress = self.next(deadline, "program the latest writes").await?;
            if handled && progress.pending == 0.0 {
                self.unsettled = 0;
                return Ok(());
            }
            handled = progress.service_changes >= services && progress.endpoint_changes >= slices;
        }
    }
}

impl Drop for DaemonNode {
    fn drop(&mut self) {
        if self.process.is_some()
            && let Err(e) = self.stop()
        {
            eprintln!("kproxy-conformance: cleaning up after the daemon failed: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
