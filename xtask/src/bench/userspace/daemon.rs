//! The release `kproxy` daemon on the bench's node, fed from a manifest directory, in the
//! mode under test (the userspace relay or its nftables baseline).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::netns::{Cluster, NODE_IP};

/// One ClusterIP Service of the bench: its address and the pod port it reaches.
#[derive(Debug, Clone, Copy)]
pub(super) struct BenchService {
    /// Its name.
    pub(super) name: &'static str,
    /// Its cluster IP (port 80).
    pub(super) cluster_ip: &'static str,
    /// The pod's port behind it.
    pub(super) target_port: u16,
}

impl BenchService {
    /// `cluster_ip:80`.
    pub(super) fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.cluster_ip.parse().unwrap_or([0, 0, 0, 0].into()), 80)
    }
}

/// Manifests: every service with pod 0 as its only endpoint, and node1 with its address.
fn manifests(services: &[BenchService]) -> String {
    let mut out = String::new();
    let pod = Cluster::pod_ip(0);
    for s in services {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: bench}}\nspec:\n  clusterIP: {ip}\n  ports: [{{name: p, port: 80}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {n}-1, namespace: bench, labels: {{kubernetes.io/service-name: {n}}}}}\naddressType: IPv4\nports: [{{name: p, port: {port}}}]\nendpoints:\n  - addresses: [{pod}]\n---\n",
            n = s.name,
            ip = s.cluster_ip,
            port = s.target_port,
        );
    }
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Node\nmetadata: {{name: node1}}\nstatus:\n  addresses: [{{type: InternalIP, address: {NODE_IP}}}]\n"
    );
    out
}

/// A running daemon; stopped (and its rules cleaned up) by [`Daemon::stop`].
pub(super) struct Daemon {
    pid: u32,
    dir: PathBuf,
}

impl Daemon {
    /// Starts `kproxy --mode <mode>` in the cluster's node namespace and waits until the
    /// Service `probe` answers through it.
    pub(super) fn start(
        cluster: &mut Cluster,
        mode: &str,
        metrics_port: u16,
        services: &[BenchService],
        probe: BenchService,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("kproxy-bench-userspace-{}-{mode}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("services.yaml"), manifests(services))?;
        let kproxy = crate::target_dir().join("release/kproxy");
        let kproxy = kproxy.to_str().context("path")?;
        let dir_text = dir.to_str().context("path")?;
        let metrics = format!("127.0.0.1:{metrics_port}");
        let args = [
            kproxy,
            "--mode",
            mode,
            "--manifests",
            dir_text,
            "--hostname-override",
            "node1",
            "--metrics-bind-address",
            &metrics,
            "--healthz-bind-address",
            "",
            "--log-level",
            "warn",
        ];
        let pid = cluster.spawn("node", &args, true)?;
        let daemon = Self { pid, dir };
        daemon.wait_ready(&cluster.ns("client"), probe.addr())?;
        Ok(daemon)
    }

    fn wait_ready(&self, client_ns: &str, probe: SocketAddr) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if super::traffic::latencies(client_ns, probe, 1).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("{probe} did not answer through the daemon within 60 s")
    }

    /// The daemon's resident memory, in KiB.
    pub(super) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS")?;
        Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
    }

    /// CPU time the daemon has used.
    pub(super) fn cpu_time(&self) -> anyhow::Result<Duration> {
        super::cpu::used(&self.pid.to_string())
    }

    /// Stops the daemon (by its pid); its tables stay until [`cleanup`].
    pub(super) fn stop(self) -> anyhow::Result<()> {
        let pid = self.pid.to_string();
        crate::netns::run(&["kill", &pid])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            // The cluster reaps it on drop; a zombie counts as gone.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if state.split_whitespace().nth(2) == Some("Z") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

/// `kproxy --cleanup` in the node: removes what any mode installed there.
pub(super) fn cleanup(cluster: &Cluster) -> anyhow::Result<()> {
    let kproxy = crate::target_dir().join("release/kproxy");
    let kproxy = kproxy.to_str().context("path")?;
    crate::netns::run(&["ip", "netns", "exec", &cluster.ns("node"), kproxy, "--cleanup", "--log-level", "warn"])?;
    Ok(())
}
