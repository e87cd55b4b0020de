//! A small cluster of network namespaces for the demo and the benchmarks: a node, pods
//! routed into it, and an external client. Everything lives in namespaces this module
//! creates and removes again on drop; the root namespace is never touched.

use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// Runs a command, failing with its standard error when it fails.
pub(crate) fn run(args: &[&str]) -> anyhow::Result<String> {
    let output =
        Command::new(args[0]).args(&args[1..]).output().with_context(|| format!("running {}", args.join(" ")))?;
    if !output.status.success() {
        bail!("{} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// This program's path, for running its hidden subcommands inside namespaces. A rebuild
/// while it runs leaves `/proc/self/exe` reading `… (deleted)`; the new file serves too.
pub(crate) fn tool_path() -> anyhow::Result<String> {
    let path = std::env::current_exe()?;
    let path = path.to_str().context("program path is not UTF-8")?;
    Ok(path.trim_end_matches(" (deleted)").to_owned())
}

/// The namespaces of one small cluster, removed on drop (also on panic).
pub(crate) struct Cluster {
    pub(crate) prefix: String,
    names: Vec<String>,
    children: Vec<Child>,
}

/// This node's address on the client's network.
pub(crate) const NODE_IP: &str = "192.168.0.2";
/// The client's address.
pub(crate) const CLIENT_IP: &str = "192.168.0.100";

impl Cluster {
    /// A node with `pods` routed pods (10.0.1.2, 10.0.1.3, …) and a client.
    pub(crate) fn create(prefix: &str, pods: usize) -> anyhow::Result<Self> {
        let mut cluster = Self { prefix: prefix.to_owned(), names: Vec::new(), children: Vec::new() };
        cluster.add_ns("node")?;
        cluster.add_ns("client")?;
        cluster.wire_client()?;
        for i in 0..pods {
            cluster.add_pod(i)?;
        }
        Ok(cluster)
    }

    /// The full name of namespace `short`.
    pub(crate) fn ns(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    /// The IP of pod `i`.
    pub(crate) fn pod_ip(i: usize) -> String {
        format!("10.0.{}.{}", 1 + i / 250, 2 + i % 250)
    }

    fn add_ns(&mut self, short: &str) -> anyhow::Result<()> {
        let name = self.ns(short);
        run(&["ip", "netns", "add", &name])?;
        self.names.push(name.clone());
        run(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn node(&self, args: &[&str]) -> anyhow::Result<String> {
        let node = self.ns("node");
        let mut full = vec!["ip", "-n", node.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }

    fn wire_client(&self) -> anyhow::Result<()> {
        let client = self.ns("client");
        self.node(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &client])?;
        self.node(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "eth0"])?;
        self.node(&["link", "set", "eth0", "up"])?;
        run(&["ip", "-n", &client, "addr", "add", &format!("{CLIENT_IP}/24"), "dev", "eth0"])?;
        run(&["ip", "-n", &client, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", &client, "route", "add", "172.30.0.0/16", "via", NODE_IP])?;
        run(&["ip", "netns", "exec", &self.ns("node"), "sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        Ok(())
    }

    fn add_pod(&mut self, i: usize) -> anyhow::Result<()> {
        let short = format!("pod{i}");
        self.add_ns(&short)?;
        let pod = self.ns(&short);
        let host_side = format!("vp{i}");
        let ip = Self::pod_ip(i);
        self.node(&["link", "add", &host_side, "type", "veth", "peer", "name", "eth0", "netns", &pod])?;
        self.node(&["link", "set", &host_side, "up"])?;
        self.node(&["addr", "add", "169.254.1.1/32", "dev", &host_side])?;
        self.node(&["route", "add", &format!("{ip}/32"), "dev", &host_side])?;
        run(&["ip", "-n", &pod, "addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
        run(&["ip", "-n", &pod, "link", "set", "eth0", "up"])?;
        run(&["ip", "-n", &pod, "route", "add", "169.254.1.1", "dev", "eth0"])?;
        run(&["ip", "-n", &pod, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"])?;
        Ok(())
    }

    /// Starts `args` inside namespace `short`; it is killed when the cluster is dropped.
    pub(crate) fn spawn(&mut self, short: &str, args: &[&str], quiet: bool) -> anyhow::Result<u32> {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns(short)]).args(args);
        if quiet {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = command.spawn().with_context(|| format!("starting {}", args.join(" ")))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Runs `args` inside namespace `short` and returns its output.
    pub(crate) fn exec(&self, short: &str, args: &[&str]) -> anyhow::Result<String> {
        let ns = self.ns(short);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run(&full)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for name in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}
