//! One run of the daemon on a cluster of `services` Services: started in a namespace of its
//! own, fed from a manifest directory or the fake apiserver, measured after its first sync.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::apiserver::ApiServerThread;
use super::objects;
use crate::netns::Cluster;

/// Where the daemon reads its objects from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--manifests DIR`.
    Manifests,
    /// `--kubeconfig` of the testkit's fake apiserver.
    ApiServer,
}

impl Source {
    /// As the rows name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Manifests => "manifests",
            Self::ApiServer => "apiserver",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Measured {
    /// The highest RSS until [`super::SETTLE`] after the first sync (VmHWM).
    pub(crate) peak_kib: u64,
    /// The RSS [`super::SETTLE`] after the first sync (VmRSS).
    pub(crate) steady_kib: u64,
    /// How long the first sync took to happen after the start.
    pub(crate) synced_after: Duration,
}

/// A heap-profiling run: the daemon binary built with `heap-profile`, and the file its
/// profile is to be written to (on `SIGUSR1`, once the memory is steady).
pub(crate) struct HeapRun<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) profile: &'a Path,
}

/// How the daemon runs: the namespace prefix of its cluster and flags besides the common ones.
pub(crate) struct Setup<'a> {
    /// The prefix of the cluster's namespaces (the process id is appended).
    pub(crate) prefix: &'a str,
    /// More flags, e.g. `--mode ebpf` and its settings.
    pub(crate) args: &'a [String],
}

impl Setup<'static> {
    /// The daemon in its default mode, in `kpmem…` namespaces.
    pub(crate) const PLAIN: Self = Self { prefix: "kpmem", args: &[] };
}

/// How long the daemon may take to start and sync (a heap-profiling one is much slower).
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);
const PROFILED_SYNC_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs the daemon on `services` Services of `endpoints` endpoints each and measures it.
pub(crate) fn measure(
    source: Source,
    services: usize,
    endpoints: usize,
    heap: Option<HeapRun<'_>>,
    setup: &Setup<'_>,
) -> anyhow::Result<Measured> {
    let dir = std::env::temp_dir().join(format!("kproxy-bench-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure_in(&dir, source, services, endpoints, heap, setup);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn measure_in(
    dir: &Path,
    source: Source,
    services: usize,
    endpoints: usize,
    heap: Option<HeapRun<'_>>,
    setup: &Setup<'_>,
) -> anyhow::Result<Measured> {
    let cluster = Cluster::create(&format!("{}{}", setup.prefix, std::process::id() % 10_000), 0)?;
    let daemon = Daemon::start(cluster, dir, source, services, endpoints, heap.as_ref(), setup.args)?;
    std::thread::sleep(super::SETTLE);
    let measured = daemon.measured()?;
    if let Some(heap) = heap {
        write_profile(daemon.pid, heap.profile)?;
    }
    Ok(measured)
}

/// The daemon running in a cluster's node namespace, after its first sync; dropping it
/// stops the daemon, removes the cluster's namespaces and stops the fake apiserver.
pub(crate) struct Daemon {
    /// Dropped first (fields drop in order): the daemon is killed before its apiserver stops.
    cluster: Cluster,
    /// Kept until the daemon is gone: the apiserver serves it for the whole run.
    api: Option<ApiServerThread>,
    pid: u32,
    synced_after: Duration,
}

impl Daemon {
    /// Starts the daemon in `cluster`'s node namespace on `services` Services of
    /// `endpoints` endpoints each (files in `dir`), and waits for its first sync.
    pub(crate) fn start(
        mut cluster: Cluster,
        dir: &Path,
        source: Source,
        services: usize,
        endpoints: usize,
        heap: Option<&HeapRun<'_>>,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let mut args: Vec<String> = Vec::new();
        if let Some(heap) = heap {
            args.extend(["env".to_owned(), format!("DHAT_HEAP_PROFILE_FILE={}", heap.profile.display())]);
            args.push(heap.binary.display().to_string());
        } else {
            args.push(crate::target_dir().join("release/kproxy").display().to_string());
        }
        let api = match source {
            Source::Manifests => {
                std::fs::write(dir.join("services.yaml"), objects::manifests(services, endpoints))?;
                args.extend(["--manifests".to_owned(), dir.display().to_string()]);
                None
            }
            Source::ApiServer => {
                let api = ApiServerThread::start(&cluster.ns("node"))?;
                load(&api, services, endpoints);
                let kubeconfig = dir.join("kubeconfig");
                api.server().write_kubeconfig(&kubeconfig)?;
                args.extend(["--kubeconfig".to_owned(), kubeconfig.display().to_string()]);
                Some(api)
            }
        };
        let common = ["--hostname-override", objects::NODE, "--metrics-bind-address", "127.0.0.1:10249"];
        args.extend(common.map(str::to_owned));
        args.extend(["--healthz-bind-address", "", "--log-level", "warn"].map(str::to_owned));
        args.extend(extra.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let pid = cluster.spawn("node", &args, true)?;
        let timeout = if heap.is_some() { PROFILED_SYNC_TIMEOUT } else { SYNC_TIMEOUT };
        let synced_after = wait_synced(&cluster, started, timeout)?;
        Ok(Self { cluster, api, pid, synced_after })
    }

    /// The cluster the daemon runs in.
    pub(crate) fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The fake apiserver the daemon watches (none when it reads manifests).
    pub(crate) fn api(&self) -> Option<&kproxy_testkit::FakeApiServer> {
        self.api.as_ref().map(ApiServerThread::server)
    }

    /// Its memory now: the highest RSS so far and the current one.
    pub(crate) fn measured(&self) -> anyhow::Result<Measured> {
        Ok(Measured {
            peak_kib: status_kib(self.pid, "VmHWM:")?,
            steady_kib: status_kib(self.pid, "VmRSS:")?,
            synced_after: self.synced_after,
        })
    }
}

/// Stores every object in the fake apiserver.
fn load(api: &ApiServerThread, services: usize, endpoints: usize) {
    let server = api.server();
    server.apply(&objects::node());
    for i in 0..services {
        server.apply(&objects::service(i));
        server.apply(&objects::slice(i, endpoints));
    }
}

/// Waits for the daemon's first sync (its last-sync timestamp leaves 0).
fn wait_synced(cluster: &Cluster, started: Instant, timeout: Duration) -> anyhow::Result<Duration> {
    let me = crate::netns::tool_path()?;
    let me = me.as_str();
    while started.elapsed() < timeout {
        let metrics = cluster.exec("node", &[me, "http-get", "--addr", "127.0.0.1:10249", "--path", "/metrics"]);
        if has_synced(metrics.as_deref().unwrap_or_default()) {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("the daemon did not sync within {} s", timeout.as_secs())
}

/// Whether `metrics` (the daemon's `/metrics` text) show a sync: a last-sync timestamp
/// above 0, with or without labels (the daemon labels it by IP family).
fn has_synced(metrics: &str) -> bool {
    const NAME: &str = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
    metrics.lines().filter_map(|l| l.strip_prefix(NAME)).any(|rest| {
        (rest.starts_with(' ') || rest.starts_with('{'))
            && rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v > 0.0)
    })
}

/// A `/proc/PID/status` figure in KiB (`VmHWM:`, `VmRSS:`).
fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with(key)).with_context(|| format!("no {key}"))?;
    Ok(line.split_whitespace().nth(1).with_context(|| format!("{key} value"))?.parse()?)
}

/// Asks the daemon for its heap profile and waits until the file is complete (the daemon
/// writes it under a temporary name and renames it).
fn write_profile(pid: u32, profile: &Path) -> anyhow::Result<()> {
    crate::netns::run(&["kill", "-USR1", &pid.to_string()])?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(300) {
        if profile.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("no heap profile at {} after 300 s", profile.display())
}

/// A path for a heap profile of this run.
pub(crate) fn profile_path(source: Source) -> PathBuf {
    std::env::temp_dir().join(format!("kproxy-heap-{}-{}.json", source.name(), std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_shows_as_a_last_sync_timestamp_above_zero() {
        let name = "kubeproxy_sync_proxy_rules_last_timestamp_seconds";
        assert!(has_synced(&format!("# HELP {name} x\n{name}{{ip_family=\"IPv4\"}} 1796589273.47\n")));
        assert!(has_synced(&format!("{name} 1796589273\n")));
        assert!(!has_synced(&format!("{name}{{ip_family=\"IPv4\"}} 0\n{name}{{ip_family=\"IPv6\"}} 0.0\n")));
        assert!(!has_synced(&format!("{name}_other 5\n")));
        assert!(!has_synced(""));
    }
}
