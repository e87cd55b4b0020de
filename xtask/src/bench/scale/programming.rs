//! Network programming latency: the time from an EndpointSlice change stored in the fake
//! apiserver until new connections to the Service's ClusterIP reach the new endpoint.
//!
//! The probe Service's slice is switched between two pods (each answers with its name);
//! a client thread inside the cluster's client namespace stores each change and connects
//! every [`POLL`] until the answer comes from the new pod. Changes follow each other at
//! spacings spread evenly over 0–[`MAX_SPACING`], as unrelated changes would arrive: some
//! land within the min-sync-period of the previous sync and wait for it.

use std::fs::File;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kproxy_testkit::FakeApiServer;
use nix::sched::{CloneFlags, setns};

use crate::bench::memory::daemon::Daemon;
use crate::bench::memory::objects::slice_at;
use crate::bench::state::service_ip;
use crate::netns::Cluster;
use crate::pod_tools::ask;

/// Measured changes per cluster.
pub(super) const CHANGES: usize = 30;
/// The pods the probe Service switches between.
pub(super) const PODS: usize = 2;
/// How often the client tries a connection while it waits.
const POLL: Duration = Duration::from_millis(5);
/// The longest wait between two changes.
const MAX_SPACING: Duration = Duration::from_millis(1_500);
/// The longest any one change may take to reach the dataplane.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a server answering with its name in every pod.
pub(super) fn serve_pods(cluster: &mut Cluster) -> anyhow::Result<()> {
    let me = crate::netns::tool_path()?;
    for i in 0..PODS {
        let name = pod_name(i);
        cluster.spawn(&name, &[&me, "serve", "--name", &name, "--port", "8080"], true)?;
    }
    Ok(())
}

fn pod_name(i: usize) -> String {
    format!("pod{i}")
}

/// [`CHANGES`] latencies of changes to Service `probe`'s slice, in the order measured.
pub(super) fn measure(daemon: &Daemon, probe: usize) -> anyhow::Result<Vec<Duration>> {
    let api = daemon.api().context("the daemon has no apiserver")?;
    let client = format!("/run/netns/{}", daemon.cluster().ns("client"));
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let file = File::open(&client).with_context(|| format!("open {client}"))?;
            setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns {client}"))?;
            let probe = Probe { api, service: probe, addr: SocketAddr::new(service_ip(probe).into(), 80) };
            // Unmeasured: the first switch, to a pod, from the synthetic endpoints.
            probe.switch_to(0)?;
            (0..CHANGES)
                .map(|k| {
                    std::thread::sleep(spacing(k));
                    probe.switch_to((k + 1) % PODS)
                })
                .collect()
        });
        thread.join().unwrap_or_else(|_| bail!("the client thread panicked"))
    })
}

/// The wait before change `k`: spread evenly over 0–[`MAX_SPACING`] (golden-ratio sequence).
fn spacing(k: usize) -> Duration {
    let fraction = (k as f64 * 0.618_033_988_75).fract();
    MAX_SPACING.mul_f64(fraction)
}

/// The probe Service, seen from the client namespace.
struct Probe<'a> {
    api: &'a FakeApiServer,
    service: usize,
    addr: SocketAddr,
}

impl Probe<'_> {
    /// Points the Service at pod `i` and waits until connections reach it: how long that took.
    fn switch_to(&self, i: usize) -> anyhow::Result<Duration> {
        let expected = pod_name(i);
        let started = Instant::now();
        self.api.apply(&slice_at(self.service, &Cluster::pod_ip(i)));
        while started.elapsed() < TIMEOUT {
            let answer = ask(&self.addr.to_string()).unwrap_or_default();
            if answer.split_whitespace().next() == Some(expected.as_str()) {
                return Ok(started.elapsed());
            }
            std::thread::sleep(POLL);
        }
        bail!("connections to {} did not reach {expected} within {} s", self.addr, TIMEOUT.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacings_spread_over_the_whole_range() {
        let spacings: Vec<Duration> = (0..CHANGES).map(spacing).collect();
        assert!(spacings.iter().all(|s| *s < MAX_SPACING));
        let short = spacings.iter().filter(|s| **s < MAX_SPACING / 3).count();
        let long = spacings.iter().filter(|s| **s >= MAX_SPACING * 2 / 3).count();
        assert!((8..=12).contains(&short), "{short} short of {CHANGES}");
        assert!((8..=12).contains(&long), "{long} long of {CHANGES}");
    }
}
