//! Traffic from a host of the cluster: one request, a spread of many, and `eventually`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Harness;
use crate::netns;
use crate::traffic::{self, Outcome, Reply};

/// The key under which [`Harness::spread`] counts a refused request.
pub const SPREAD_REFUSED: &str = "!refused";
/// The key under which [`Harness::spread`] counts a request that timed out.
pub const SPREAD_TIMED_OUT: &str = "!timed-out";
/// The key under which [`Harness::spread`] counts a request that failed otherwise.
pub const SPREAD_FAILED: &str = "!failed";

/// How often [`eventually`] tries again.
const POLL: Duration = Duration::from_millis(100);

/// The transport of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// A TCP connection.
    Tcp,
    /// A UDP datagram from an ephemeral port.
    Udp,
    /// A UDP datagram from a fixed source port (same conntrack tuple every time).
    UdpFrom(u16),
    /// An SCTP association.
    Sctp,
}

/// The key [`Harness::spread`] counts an outcome under.
pub fn spread_key(result: &Result<Reply, Outcome>) -> String {
    match result {
        Ok(reply) => reply.pod.clone(),
        Err(Outcome::Refused(_)) => SPREAD_REFUSED.to_owned(),
        Err(Outcome::TimedOut) => SPREAD_TIMED_OUT.to_owned(),
        Err(Outcome::Failed(_)) => SPREAD_FAILED.to_owned(),
    }
}

fn one(proto: Proto, addr: SocketAddr, timeout: Duration) -> Result<Reply, Outcome> {
    match proto {
        Proto::Tcp => traffic::tcp(addr, timeout),
        Proto::Udp => traffic::udp(addr, 0, timeout),
        Proto::UdpFrom(port) => traffic::udp(addr, port, timeout),
        Proto::Sctp => traffic::sctp(addr, timeout),
    }
}

impl Harness {
    /// One request of `proto` from host `from` (a name of [`crate::HOSTS`]) to `addr`,
    /// bounded by the request timeout.
    pub async fn request(&self, proto: Proto, from: &str, addr: SocketAddr) -> Result<Reply, Outcome> {
        let netns = self.cluster().netns(from).map_err(|e| Outcome::Failed(e.to_string()))?.to_owned();
        let timeout = self.request_timeout();
        netns::in_netns_async(&netns, move || one(proto, addr, timeout))
            .await
            .unwrap_or_else(|e| Err(Outcome::Failed(e.to_string())))
    }

    /// One TCP connection from `from` to `addr`.
    pub async fn tcp_request(&self, from: &str, addr: SocketAddr) -> Result<Reply, Outcome> {
        self.request(Proto::Tcp, from, addr).await
    }

    /// One UDP datagram from `from` to `addr`.
    pub async fn udp_request(&self, from: &str, addr: SocketAddr) -> Result<Reply, Outcome> {
        self.request(Proto::Udp, from, addr).await
    }

    /// One SCTP association from `from` to `addr`.
    pub async fn sctp_request(&self, from: &str, addr: SocketAddr) -> Result<Reply, Outcome> {
        self.request(Proto::Sctp, from, addr).await
    }

    /// `n` TCP connections from `from` to `addr`, counted by answering pod; see
    /// [`Harness::spread_proto`].
    pub async fn spread(&self, from: &str, addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
        self.spread_proto(Proto::Tcp, from, addr, n).await
    }

    /// `n` requests of `proto` from `from` to `addr`, counted by answering pod. The first
    /// failure ends the series and is counted under [`SPREAD_REFUSED`], [`SPREAD_TIMED_OUT`]
    /// or [`SPREAD_FAILED`], so a spread takes at most one timeout.
    pub async fn spread_proto(&self, proto: Proto, from: &str, addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
        self.replies(proto, from, addr, n).await.iter().fold(BTreeMap::new(), |mut counts, result| {
            *counts.entry(spread_key(result)).or_insert(0) += 1;
            counts
        })
    }

    /// `n` requests of `proto` from `from` to `addr`, in order, ending at the first failure.
    pub async fn replies(&self, proto: Proto, from: &str, addr: SocketAddr, n: usize) -> Vec<Result<Reply, Outcome>> {
        let netns = match self.cluster().netns(from) {
            Ok(netns) => netns.to_owned(),
            Err(e) => return vec![Err(Outcome::Failed(e.to_string()))],
        };
        let timeout = self.request_timeout();
        let series = move || {
            let mut results = Vec::with_capacity(n);
            for _ in 0..n {
                let result = one(proto, addr, timeout);
                let failed = result.is_err();
                results.push(result);
                if failed {
                    break;
                }
            }
            results
        };
        netns::in_netns_async(&netns, series).await.unwrap_or_else(|e| vec![Err(Outcome::Failed(e.to_string()))])
    }
}

/// Calls `attempt` until it succeeds or `timeout` has passed (then returns its last error),
/// pausing 100 ms between attempts.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() >= deadline => return Err(format!("{e} (still so after {timeout:?})")),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
