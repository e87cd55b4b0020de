//! The userspace relay: bulk TCP throughput against a direct connection between the same
//! namespaces; connection rate, CPU per connection and connect-plus-first-byte latency
//! against the nftables dataplane, the two taken in turns so that both see the same load
//! from the rest of the machine; and the daemon's memory with 10,000 idle relayed
//! connections.
//!
//! client ns ──▶ node ns (the release `kproxy` daemon, `--mode userspace` or `nftables`)
//! ──▶ pod ns (servers). The traffic tools run on threads of this process that join the
//! client or pod namespace; everything lives in namespaces made for the run.

mod cpu;
mod daemon;
mod traffic;

use std::net::SocketAddr;
use std::time::Duration;

use daemon::{BenchService, Daemon};
use traffic::{Serve, Server};

use super::Row;
use crate::netns::{Cluster, NODE_IP};

const ROUNDS: usize = 3;
const BULK_TIME: Duration = Duration::from_secs(4);
/// Each path's share of a round of the connection-rate test, in [`RATE_SLICES`] slices.
const RATE_TIME: Duration = Duration::from_secs(3);
const RATE_SLICES: u32 = 6;
const RATE_CLIENTS: usize = 4;
const LATENCY_CONNECTS: usize = 3_000;
const IDLE: usize = 10_000;
/// File descriptors kept free besides the idle connections' sockets.
const FD_MARGIN: usize = 200;

const BULK: BenchService = BenchService { name: "bulk", cluster_ip: "172.30.0.1", target_port: 5201 };
const ONE_BYTE: BenchService = BenchService { name: "onebyte", cluster_ip: "172.30.0.2", target_port: 5202 };
const HOLD: BenchService = BenchService { name: "hold", cluster_ip: "172.30.0.3", target_port: 5203 };
/// The nftables baseline's Service, to the same pod port as [`ONE_BYTE`].
const ONE_BYTE_NFT: BenchService = BenchService { name: "onebyte-nft", cluster_ip: "172.30.1.2", target_port: 5202 };
/// Latency has Services and a pod port of its own: the connection-rate test leaves
/// thousands of TIME_WAIT tuples behind, and a SYN that meets one waits for a retransmit.
const LATENCY: BenchService = BenchService { name: "latency", cluster_ip: "172.30.0.4", target_port: 5204 };
/// The nftables baseline's latency Service.
const LATENCY_NFT: BenchService = BenchService { name: "latency-nft", cluster_ip: "172.30.1.4", target_port: 5204 };

/// What was measured: `[baseline, relay]`, the baseline being a direct connection for
/// bulk, nftables for the rest. Connection rates and latencies are measured in turns with
/// their baseline, so that both see the same load from the rest of the machine.
#[derive(Debug, Default)]
struct Measured {
    bulk1: [Vec<f64>; 2],
    bulk4: [Vec<f64>; 2],
    /// Connections per second, one figure per round each.
    rate: [Vec<f64>; 2],
    /// CPU time per connection (clients, servers, both daemons), one figure per round each.
    cpu: [Vec<Duration>; 2],
    latency: [Vec<Duration>; 2],
}

/// Every userspace row.
pub(crate) fn run() -> anyhow::Result<Vec<Row>> {
    let idle = raise_fd_limit()?;
    let mut cluster = Cluster::create(&format!("kpus{}", std::process::id() % 10_000), 1)?;
    let (client, pod) = (cluster.ns("client"), cluster.ns("pod0"));
    crate::netns::run(&["ip", "-n", &client, "route", "add", "10.0.1.0/24", "via", NODE_IP])?;
    let _servers = [
        Server::start(&pod, BULK.target_port, Serve::Sink, 1)?,
        Server::start(&pod, ONE_BYTE.target_port, Serve::OneByte, 2)?,
        Server::start(&pod, LATENCY.target_port, Serve::OneByte, 1)?,
    ];
    let holder = Server::start(&pod, HOLD.target_port, Serve::Hold, 1)?;
    // Both dataplanes at once, each on Services of its own, so that every round measures
    // the relay and its baseline back to back.
    let relay = Daemon::start(&mut cluster, "userspace", 10_249, &[BULK, ONE_BYTE, HOLD, LATENCY], ONE_BYTE);
    let nft = Daemon::start(&mut cluster, "nftables", 10_250, &[ONE_BYTE_NFT, LATENCY_NFT], ONE_BYTE_NFT);
    let measured = match (&relay, &nft) {
        (Ok(relay), Ok(nft)) => measure(&client, [nft, relay]).map(|m| (m, idle_memory(relay, &client, &holder, idle))),
        (Err(e), _) | (_, Err(e)) => Err(anyhow::anyhow!("starting the daemons: {e:#}")),
    };
    for daemon in [relay, nft].into_iter().flatten() {
        daemon.stop()?;
    }
    daemon::cleanup(&cluster)?;
    let (m, memory) = measured?;
    Ok(vec![
        bulk_row(1, &m.bulk1),
        bulk_row(4, &m.bulk4),
        rate_row(&m.rate),
        cpu_row(&m.cpu),
        latency_row(&m.latency),
        memory?,
    ])
}

/// [`ROUNDS`] rounds, each measuring a path and its baseline back to back.
fn measure(client: &str, daemons: [&Daemon; 2]) -> anyhow::Result<Measured> {
    // This process runs the clients and servers; the daemons relay or route.
    let cpu = || Ok(cpu::used("self")? + daemons[0].cpu_time()? + daemons[1].cpu_time()?);
    let direct = SocketAddr::new(Cluster::pod_ip(0).parse()?, BULK.target_port);
    let mut m = Measured::default();
    for round in 0..ROUNDS {
        println!("userspace bench: round {} of {ROUNDS} (load {})", round + 1, load());
        for (i, addr) in [(0, direct), (1, BULK.addr())] {
            m.bulk1[i].push(traffic::bulk(client, addr, 1, BULK_TIME)?);
            m.bulk4[i].push(traffic::bulk(client, addr, 4, BULK_TIME)?);
        }
        let pair = [LATENCY_NFT.addr(), LATENCY.addr()];
        let [nft, relay] = traffic::paired_latencies(client, pair, LATENCY_CONNECTS)?;
        m.latency[0].extend(nft);
        m.latency[1].extend(relay);
        let pair = [ONE_BYTE_NFT.addr(), ONE_BYTE.addr()];
        let slices = (RATE_TIME / RATE_SLICES, RATE_SLICES as usize);
        let rates = traffic::connect_rates(client, pair, RATE_CLIENTS, slices, &cpu)?;
        for (i, rate) in rates.into_iter().enumerate() {
            m.rate[i].push(rate.per_second);
            m.cpu[i].push(rate.cpu_per_connection);
        }
    }
    m.latency.iter_mut().for_each(|l| l.sort());
    Ok(m)
}

/// The 1-minute load average: other work on the machine skews every figure.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("?").to_owned()
}

/// The daemon's memory growth with `count` relayed connections open; closes them after.
fn idle_memory(relay: &Daemon, client: &str, holder: &Server, count: usize) -> anyhow::Result<Row> {
    let before = relay.rss_kib()?;
    let open = traffic::open_idle(client, HOLD.addr(), count)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while holder.held() < count && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = holder.held();
    std::thread::sleep(Duration::from_millis(500));
    let after = relay.rss_kib()?;
    drop(open);
    holder.release();
    anyhow::ensure!(held == count, "only {held} of {count} connections reached the pod");
    let grown = after.saturating_sub(before);
    let per_conn = grown as f64 * 1024.0 / count as f64;
    let capped = if count < IDLE { format!(" (open-files limit: {count}, not {IDLE})") } else { String::new() };
    Ok(Row {
        name: format!("userspace: daemon memory with {count} idle relayed TCP connections{capped}"),
        value: format!(
            "+{:.1} MiB = {per_conn:.0} B/conn (RSS {:.1} MiB)",
            grown as f64 / 1024.0,
            after as f64 / 1024.0
        ),
        baseline: "HAProxy 3.4 KB/conn (anchor)".to_owned(),
        ratio: Some(per_conn / 3_400.0),
        goal: "< 1".to_owned(),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn bulk_row(streams: usize, m: &[Vec<f64>; 2]) -> Row {
    let (d, r) = (median(m[0].clone()), median(m[1].clone()));
    Row {
        name: format!("userspace: bulk TCP through the relay, {streams} stream(s)"),
        value: format!("{r:.1} Gbit/s"),
        baseline: format!("direct {d:.1} Gbit/s"),
        ratio: Some(r / d),
        goal: ">= 0.8 (HAProxy+splice 0.63 / 0.39)".to_owned(),
    }
}

/// Medians of each path's rates; the ratio is the median of the rounds' ratios (each
/// round measures both paths under the same load).
fn rate_row(m: &[Vec<f64>; 2]) -> Row {
    let (k, r) = (median(m[0].clone()), median(m[1].clone()));
    let ratios = m[1].iter().zip(&m[0]).map(|(r, k)| r / k).collect();
    Row {
        name: format!("userspace: new TCP connections/s, 1-byte reply, {RATE_CLIENTS} clients"),
        value: format!("{r:.0}/s"),
        baseline: format!("nftables {k:.0}/s"),
        ratio: Some(median(ratios)),
        goal: ">= 0.5 (HAProxy 0.50)".to_owned(),
    }
}

/// What a connection costs the machine (clients, servers, daemons, and the network stack
/// work their system calls do), as connections per CPU-second: the rate each path would
/// reach on a machine of its own, saturated. Other load on the machine moves the measured
/// rates much more than this. The ratio is the median of the rounds' ratios.
fn cpu_row(m: &[Vec<Duration>; 2]) -> Row {
    let per_cpu_second = |d: &Duration| 1.0 / d.as_secs_f64().max(1e-9);
    let [k, r] = [0, 1].map(|i| median(m[i].iter().map(per_cpu_second).collect()));
    let ratios = m[1].iter().zip(&m[0]).map(|(r, k)| per_cpu_second(r) / per_cpu_second(k)).collect();
    Row {
        name: format!("userspace: new TCP connections per CPU-second, 1-byte reply, {RATE_CLIENTS} clients"),
        value: format!("{r:.0}/s ({:.0} us each)", 1e6 / r.max(1e-9)),
        baseline: format!("nftables {k:.0}/s ({:.0} us each)", 1e6 / k.max(1e-9)),
        ratio: Some(median(ratios)),
        goal: ">= 0.5 (the rate goal, without the machine's other load)".to_owned(),
    }
}

fn latency_row(m: &[Vec<Duration>; 2]) -> Row {
    let pct = |v: &[Duration], p: usize| v.get(v.len().saturating_sub(1) * p / 100).copied().unwrap_or_default();
    let (k50, k99, r50, r99) = (pct(&m[0], 50), pct(&m[0], 99), pct(&m[1], 50), pct(&m[1], 99));
    Row {
        name: format!("userspace: connect+first byte p50 / p99, {} connections", m[1].len()),
        value: format!("{} / {} us", r50.as_micros(), r99.as_micros()),
        baseline: format!("nftables {} / {} us", k50.as_micros(), k99.as_micros()),
        ratio: Some(r99.as_secs_f64() / k99.as_secs_f64().max(1e-9)),
        goal: "p99 <= 1.5".to_owned(),
    }
}

/// Raises the open-files limit to the hard one (the daemon, a child, inherits it) and
/// returns how many idle connections fit: this process holds both their client and server
/// sockets, the daemon two sockets for each. Raising the hard limit needs
/// `CAP_SYS_RESOURCE`; without it a hard limit of 20,000 allows 9,900, not [`IDLE`].
fn raise_fd_limit() -> anyhow::Result<usize> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let wanted = (2 * IDLE + FD_MARGIN) as u64;
    let limit = if setrlimit(Resource::RLIMIT_NOFILE, wanted.max(hard), wanted.max(hard)).is_ok() {
        wanted.max(hard)
    } else {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
        hard
    };
    let fits = usize::try_from(limit.saturating_sub(FD_MARGIN as u64) / 2).unwrap_or(IDLE);
    Ok(fits.min(IDLE) / 100 * 100)
}

#[cfg(test)]
mod tests {
    /// This phase alone: `cargo build --release -p kproxy && cargo test -p xtask -- --ignored userspace_phase --nocapture`.
    #[test]
    #[ignore = "benchmark: needs root and target/release/kproxy"]
    fn userspace_phase() {
        for row in super::run().expect("userspace bench") {
            println!(
                "| {} | {} | {} | {:.2} | {} |",
                row.name,
                row.value,
                row.baseline,
                row.ratio.unwrap_or(0.0),
                row.goal
            );
        }
    }
}
