//! Daemon peak memory with 10k service ports × 10 endpoints from a manifest directory.

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Row;
use super::state::{endpoint_ip, service_ip};
use crate::netns::Cluster;

const SERVICES: usize = 10_000;
const ENDPOINTS: usize = 10;

/// Starts the release daemon on 10k services in a namespace and reads its peak RSS.
pub(crate) fn run() -> anyhow::Result<Row> {
    let dir = std::env::temp_dir().join(format!("kproxy-bench-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("services.yaml"), manifests())?;
    let mut cluster = Cluster::create(&format!("kprss{}", std::process::id() % 10_000), 0)?;
    let kproxy = crate::target_dir().join("release/kproxy");
    let args = [
        kproxy.to_str().context("path")?,
        "--manifests",
        dir.to_str().context("path")?,
        "--hostname-override",
        "node1",
        "--metrics-bind-address",
        "127.0.0.1:10249",
        "--healthz-bind-address",
        "",
        "--log-level",
        "warn",
    ];
    let pid = cluster.spawn("node", &args, true)?;
    let synced = wait_synced(&cluster);
    let peak = peak_rss_kib(pid);
    drop(cluster);
    std::fs::remove_dir_all(&dir)?;
    let took = synced?;
    let peak = peak?;
    Ok(Row {
        name: format!("daemon peak RSS, {SERVICES} svc x {ENDPOINTS} ep (manifests)"),
        value: format!("{:.1} MiB", peak as f64 / 1024.0),
        baseline: format!("first sync after {:.1} s", took.as_secs_f64()),
        ratio: None,
        goal: "< 100 MiB".to_owned(),
    })
}

fn wait_synced(cluster: &Cluster) -> anyhow::Result<Duration> {
    let me = crate::netns::tool_path()?;
    let me = me.as_str();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let metrics = cluster.exec("node", &[me, "http-get", "--addr", "127.0.0.1:10249", "--path", "/metrics"]);
        let synced = metrics.as_deref().unwrap_or_default().lines().any(|l| {
            l.starts_with(r#"kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} "#)
                && !l.ends_with(" 0")
                && !l.ends_with(" 0.0")
        });
        if synced {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("the daemon did not sync within 120 s")
}

fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM value")?.parse()?)
}

fn manifests() -> String {
    let mut out = String::new();
    for i in 0..SERVICES {
        let _ = write!(
            out,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: bench}}\nspec:\n  clusterIP: {}\n  ports: [{{name: http, port: 80}}]\n---\n",
            service_ip(i)
        );
        let _ = write!(
            out,
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: svc{i}-1, namespace: bench, labels: {{kubernetes.io/service-name: svc{i}}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:\n"
        );
        for j in 0..ENDPOINTS {
            let _ = writeln!(out, "  - addresses: [{}]", endpoint_ip(i, j, ENDPOINTS));
        }
        out.push_str("---\n");
    }
    out.push_str("apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n");
    out
}
