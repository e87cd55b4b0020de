//! The userspace dataplane's configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use ipnet::IpNet;
pub use kproxy_netfilter::LocalDetect;

/// How the relay behaves: threads, ports, timeouts, buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Relay worker threads, each with a single-threaded runtime and a socket of every TCP
    /// listener of its own (`0`: one per CPU, at most 4).
    pub worker_threads: usize,
    /// Listener ports are taken from this range (upstream's `--proxy-port-range`);
    /// `None` lets the kernel pick a free ephemeral port.
    pub port_range: Option<RangeInclusive<u16>>,
    /// The IPv4 address listeners bind to (`0.0.0.0`: every address, as upstream).
    pub bind_v4: Ipv4Addr,
    /// The IPv6 address listeners bind to (`::`: every address).
    pub bind_v6: Ipv6Addr,
    /// One connect attempt per entry, each to the next endpoint, with this timeout
    /// (upstream: 250 ms, 500 ms, 1 s, 2 s). The number of entries bounds the attempts and
    /// their sum the time a client waits before it is reset.
    pub connect_timeouts: Vec<Duration>,
    /// A UDP session (one per client address) ends after this long without a datagram in
    /// either direction (upstream's `udpIdleTimeout` was 250 ms; DNS-like traffic opens a
    /// session per query, so the timeout bounds their number).
    pub udp_idle_timeout: Duration,
    /// The capacity asked for each splice pipe (bytes); larger pipes mean fewer syscalls
    /// per byte. The kernel may round it or refuse (then the default, 64 KiB, stays).
    pub pipe_size: usize,
    /// Empty pipes kept for reuse; idle connections hold none.
    pub max_idle_pipes: usize,
    /// A fixed receive buffer (`SO_RCVBUF`), set on both sockets of a relayed TCP
    /// connection once it is established, instead of the kernel's autotuning (which may
    /// grow to `tcp_rmem`'s maximum, often tens of MiB): bytes pass the relay while still
    /// in cache (about +10% single-stream throughput on the reference VM). Left to
    /// autotuning when `net.core.rmem_max` is lower, so that a small cap never throttles
    /// a long path.
    pub receive_buffer: Option<usize>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            worker_threads: 0,
            port_range: None,
            bind_v4: Ipv4Addr::UNSPECIFIED,
            bind_v6: Ipv6Addr::UNSPECIFIED,
            connect_timeouts: [250, 500, 1000, 2000].map(Duration::from_millis).to_vec(),
            udp_idle_timeout: Duration::from_secs(10),
            pipe_size: 1 << 20,
            max_idle_pipes: 64,
            receive_buffer: Some(4 << 20),
        }
    }
}

impl RelayConfig {
    /// The number of worker threads to start.
    pub fn threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
    }

    /// [`RelayConfig::receive_buffer`] if the kernel grants it in full (`rmem_max`).
    pub fn effective_receive_buffer(&self) -> Option<usize> {
        let wanted = self.receive_buffer?;
        let max = std::fs::read_to_string("/proc/sys/net/core/rmem_max").ok()?.trim().parse::<usize>().ok()?;
        (wanted <= max).then_some(wanted)
    }

    /// The address listeners of `ip`'s family bind to.
    pub fn bind_ip(&self, ipv6: bool) -> IpAddr {
        if ipv6 { self.bind_v6.into() } else { self.bind_v4.into() }
    }
}

/// What the userspace dataplane needs to know, besides the state it programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserspaceConfig {
    /// The redirect table's name in each family (`kproxy-userspace`).
    pub table: String,
    /// Pod CIDRs: pods calling an external address of a Service (node port, external or
    /// load-balancer IP) are short-circuited to the cluster-wide endpoints, as upstream.
    pub cluster_cidrs: Vec<IpNet>,
    /// How pod traffic is recognised (`--detect-local-mode`); the CIDR modes use
    /// `cluster_cidrs` (the node's pod CIDRs for `NodeCidr`).
    pub local_detect: LocalDetect,
    /// Where prerouting rules send traffic: a local address per family. Empty: the first
    /// address of each family in the Node's status; where there is none, `redirect` (the
    /// address of the incoming interface, which fails on interfaces without one).
    pub portal_ips: Vec<IpAddr>,
    /// Run `nft` and `conntrack` inside this network namespace (tests); `None`: this one.
    /// The relay's sockets live in the namespace of the thread that built the dataplane.
    pub netns: Option<String>,
    /// Raise the soft open-files limit to the hard limit at start (upstream raised it to
    /// 64,000): each relayed TCP connection holds two sockets.
    pub raise_nofile_limit: bool,
    /// The relay itself.
    pub relay: RelayConfig,
}

impl Default for UserspaceConfig {
    fn default() -> Self {
        Self {
            table: "kproxy-userspace".to_owned(),
            cluster_cidrs: Vec::new(),
            local_detect: LocalDetect::ClusterCidr,
            portal_ips: Vec::new(),
            netns: None,
            raise_nofile_limit: true,
            relay: RelayConfig::default(),
        }
    }
}
