//! `sudo cargo xtask demo`: kproxy on a demo cluster made of network namespaces.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kproxy_testkit::prereq::Tool;

use crate::netns::{CLIENT_IP, Cluster, NODE_IP, run};

const CLUSTER_IP: &str = "172.30.0.10";
const NODE_PORT: u16 = 30080;
const PODS: usize = 3;

/// Installs what is missing, builds kproxy, runs it on a namespace cluster and shows
/// requests spread over the pods; removes everything at the end.
pub(crate) fn run_demo() -> anyhow::Result<()> {
    if !kproxy_testkit::prereq::is_root() {
        bail!("the demo creates network namespaces: run it as root (sudo cargo xtask demo)");
    }
    // The kproxy binary builds its eBPF programs with clang-19 (the ebpf mode is a default feature).
    crate::packages::ensure(&[Tool::Nft, Tool::Ip, Tool::Clang, Tool::Llvm, Tool::Libbpf])?;
    println!("== building kproxy");
    crate::cargo(&["build", "--quiet", "-p", "kproxy"])?;
    let kproxy = crate::target_dir().join("debug/kproxy");
    let manifests = write_manifests()?;
    println!("== creating a node, {PODS} pods and a client in network namespaces");
    let mut cluster = Cluster::create(&format!("kpdemo{}", std::process::id() % 10_000), PODS)?;
    let me = crate::netns::tool_path()?;
    let me = me.as_str();
    for i in 0..PODS {
        let name = format!("pod-{}", (b'a' + i as u8) as char);
        cluster.spawn(&format!("pod{i}"), &[me, "serve", "--name", &name, "--port", "8080"], true)?;
    }
    let dir = manifests.to_str().context("manifest path")?.to_owned();
    let kproxy_path = kproxy.to_str().context("kproxy path")?.to_owned();
    println!(
        "== starting: kproxy --mode nftables --manifests {dir} --hostname-override node1 --cluster-cidr 10.0.0.0/8"
    );
    cluster.spawn(
        "node",
        &[
            &kproxy_path,
            "--mode",
            "nftables",
            "--manifests",
            &dir,
            "--hostname-override",
            "node1",
            "--cluster-cidr",
            "10.0.0.0/8",
            "--healthz-bind-address",
            "127.0.0.1:10256",
            "--metrics-bind-address",
            "127.0.0.1:10249",
            "--log-level",
            "warn",
        ],
        false,
    )?;
    wait_for_service(&cluster, me)?;
    show_requests(&cluster, me)?;
    println!("\n== kproxy render --mode nftables --manifests {dir}");
    print!(
        "{}",
        run(&[&kproxy_path, "render", "--mode", "nftables", "--manifests", &dir, "--cluster-cidr", "10.0.0.0/8"])?
    );
    println!("== cleaning up");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&manifests);
    println!("demo done: every namespace removed");
    Ok(())
}

fn wait_for_service(cluster: &Cluster, me: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let target = format!("{CLUSTER_IP}:80");
    while Instant::now() < deadline {
        if cluster.exec("client", &[me, "ask", "--addr", &target]).is_ok_and(|a| a.starts_with("pod-")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the service did not answer within 20 s")
}

fn show_requests(cluster: &Cluster, me: &str) -> anyhow::Result<()> {
    let cluster_ip = format!("{CLUSTER_IP}:80");
    let node_port = format!("{NODE_IP}:{NODE_PORT}");
    println!("\n== 30 requests from the client ({CLIENT_IP}) to the ClusterIP {cluster_ip}");
    print!("{}", cluster.exec("client", &[me, "request", "--addr", &cluster_ip, "--count", "30"])?);
    println!("== 30 requests from the client to the NodePort {node_port}");
    print!("{}", cluster.exec("client", &[me, "request", "--addr", &node_port, "--count", "30"])?);
    println!("== one request from pod-a to the ClusterIP (the pod's own address is kept)");
    println!("    {}", cluster.exec("pod0", &[me, "ask", "--addr", &cluster_ip])?.trim());
    Ok(())
}

fn write_manifests() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kproxy-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("demo.yaml"), manifest())?;
    Ok(dir)
}

fn manifest() -> String {
    let endpoints: String =
        (0..PODS).map(|i| format!("  - addresses: [{}]\n    nodeName: node1\n", Cluster::pod_ip(i))).collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: demo}}\nspec:\n  type: NodePort\n  clusterIP: {CLUSTER_IP}\n  ports: [{{name: http, port: 80, protocol: TCP, nodePort: {NODE_PORT}}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: demo, labels: {{kubernetes.io/service-name: web}}}}\naddressType: IPv4\nports: [{{name: http, port: 8080, protocol: TCP}}]\nendpoints:\n{endpoints}---\napiVersion: v1\nkind: Node\nmetadata: {{name: node1}}\nstatus:\n  addresses: [{{type: InternalIP, address: {NODE_IP}}}]\n"
    )
}
