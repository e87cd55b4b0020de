//! The kernel settings kube-proxy makes when it starts (upstream's `platformSetup`): the
//! conntrack limits and timeouts of `--conntrack-*`, and `route_localnet` where the mode
//! serves NodePorts on 127.0.0.1. [`settings`] decides (pure), [`apply`] writes through a
//! [`KernelSettings`] seam, only what differs, as upstream's `setIntSysCtl` does.

use std::io;

use crate::config::{ProxyConfig, ProxyMode};

/// One kernel setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `/proc/sys/…` or `/sys/…`.
    pub path: &'static str,
    /// The value wanted.
    pub value: u64,
    /// A larger value is fine as it is (the conntrack hash size).
    pub at_least: bool,
    /// What needs it, for logs.
    pub why: &'static str,
    /// Failing to set it is an error of `--init-only`; the others may not be settable
    /// where kproxy runs (`nf_conntrack_max` is read-only outside the host's network
    /// namespace, `/sys` may be mounted read-only) and are warnings, as upstream treats a
    /// read-only `/sys`.
    pub required: bool,
}

/// Reads and writes kernel settings by path; [`ProcFs`] is the real one.
pub trait KernelSettings {
    /// The current value's text.
    fn read(&self, path: &str) -> io::Result<String>;
    /// Writes `value`.
    fn write(&self, path: &str, value: &str) -> io::Result<()>;
}

/// The kernel's files, in the network namespace of the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcFs;

impl KernelSettings for ProcFs {
    fn read(&self, path: &str) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &str, value: &str) -> io::Result<()> {
        std::fs::write(path, value)
    }
}

const CONNTRACK_MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";
const TCP_ESTABLISHED: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established";
const TCP_CLOSE_WAIT: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait";
const TCP_BE_LIBERAL: &str = "/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal";
const UDP: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout";
const UDP_STREAM: &str = "/proc/sys/net/netfilter/nf_conntrack_udp_timeout_stream";
/// The conntrack hash table's size, a module parameter (writable only from the host's
/// network namespace).
pub const CONNTRACK_HASHSIZE: &str = "/sys/module/nf_conntrack/parameters/hashsize";

/// What `config` sets on a node with `cpus` CPUs, in upstream's order.
pub fn settings(config: &ProxyConfig, cpus: usize) -> Vec<Setting> {
    let mut out = Vec::new();
    if config.mode == ProxyMode::Iptables && config.localhost_nodeports {
        out.push(Setting {
            path: "/proc/sys/net/ipv4/conf/all/route_localnet",
            value: 1,
            at_least: false,
            why: "NodePorts on 127.0.0.1 (--iptables-localhost-nodeports)",
            required: true,
        });
    }
    out.extend(conntrack_settings(config, cpus));
    out
}

fn conntrack_settings(config: &ProxyConfig, cpus: usize) -> Vec<Setting> {
    let c = &config.conntrack;
    let mut out = Vec::new();
    if let Some(max) = c.max_for(cpus) {
        let why = "--conntrack-max-per-core, --conntrack-min";
        out.push(Setting { path: CONNTRACK_MAX, value: max, at_least: false, why, required: false });
        out.push(Setting { path: CONNTRACK_HASHSIZE, value: max / 4, at_least: true, why, required: false });
    }
    let seconds = |d: std::time::Duration| d.as_secs();
    let timeouts = [
        (TCP_ESTABLISHED, seconds(c.tcp_established_timeout), "--conntrack-tcp-timeout-established"),
        (TCP_CLOSE_WAIT, seconds(c.tcp_close_wait_timeout), "--conntrack-tcp-timeout-close-wait"),
        (TCP_BE_LIBERAL, u64::from(c.tcp_be_liberal), "--conntrack-tcp-be-liberal"),
        (UDP, seconds(c.udp_timeout), "--conntrack-udp-timeout"),
        (UDP_STREAM, seconds(c.udp_stream_timeout), "--conntrack-udp-timeout-stream"),
    ];
    // Zero (false) leaves the kernel's value.
    for (path, value, why) in timeouts.into_iter().filter(|(_, value, _)| *value > 0) {
        out.push(Setting { path, value, at_least: false, why, required: true });
    }
    out
}

/// A setting that could not be made.
#[derive(Debug)]
pub struct SetupFailure {
    /// The setting.
    pub setting: Setting,
    /// Why.
    pub error: io::Error,
}

/// Makes `settings` through `fs`, writing only those whose current value differs (or is
/// smaller, for an `at_least` one); returns what failed, each logged.
pub fn apply(settings: &[Setting], fs: &dyn KernelSettings) -> Vec<SetupFailure> {
    let mut failures = Vec::new();
    for setting in settings {
        let current = fs.read(setting.path).ok().and_then(|t| t.trim().parse::<u64>().ok());
        let fine = current.is_some_and(|v| v == setting.value || (setting.at_least && v >= setting.value));
        if fine {
            continue;
        }
        match fs.write(setting.path, &setting.value.to_string()) {
            Ok(()) => {
                tracing::info!(path = setting.path, value = setting.value, why = setting.why, "kernel setting made")
            }
            Err(error) => {
                tracing::warn!(path = setting.path, value = setting.value, why = setting.why, %error, "cannot make kernel setting");
                failures.push(SetupFailure { setting: setting.clone(), error });
            }
        }
    }
    failures
}

#[cfg(test)]
#[path = "node_setup/tests.rs"]
mod tests;
