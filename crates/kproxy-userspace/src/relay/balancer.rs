//! Endpoint choice for one listener: round robin, ClientIP affinity with its timeout, and
//! the sources the listener admits (upstream's `LoadBalancerRR`). Pure: the clock is an
//! argument.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::render::plan::ListenerSpec;

/// Affinity entries are swept of expired ones when there are more than this many.
const SWEEP_AT: usize = 1024;

/// One client's endpoint under ClientIP affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sticky {
    endpoint: SocketAddr,
    last_used: Instant,
}

/// Round robin over a listener's endpoints, with optional ClientIP affinity.
#[derive(Debug, Clone)]
pub struct Balancer {
    endpoints: Vec<SocketAddr>,
    next: usize,
    affinity: Option<Duration>,
    sticky: HashMap<IpAddr, Sticky>,
    allowed: Vec<IpNet>,
    generation: u64,
    sweep_at: usize,
}

impl Balancer {
    /// A balancer for `spec`.
    pub fn new(spec: &ListenerSpec) -> Self {
        Self {
            endpoints: spec.endpoints.clone(),
            next: 0,
            affinity: spec.affinity,
            sticky: HashMap::new(),
            allowed: spec.allowed_sources.clone(),
            generation: 0,
            sweep_at: SWEEP_AT,
        }
    }

    /// Takes `spec`'s endpoints, affinity and sources. Affinity to endpoints that are gone
    /// ends; the generation moves on when the endpoints change.
    pub fn update(&mut self, spec: &ListenerSpec, now: Instant) {
        if self.endpoints != spec.endpoints {
            self.endpoints.clone_from(&spec.endpoints);
            self.generation += 1;
        }
        self.affinity = spec.affinity;
        self.allowed.clone_from(&spec.allowed_sources);
        self.sweep(now);
    }

    /// Whether connections from `source` are relayed.
    pub fn admits(&self, source: IpAddr) -> bool {
        let source = source.to_canonical();
        self.allowed.is_empty() || self.allowed.iter().any(|n| n.contains(&source))
    }

    /// The endpoint for a new connection (or UDP session) from `client`.
    pub fn pick(&mut self, client: IpAddr, now: Instant) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let Some(timeout) = self.affinity else { return Some(self.round_robin()) };
        if let Some(sticky) = self.sticky.get_mut(&client)
            && now.saturating_duration_since(sticky.last_used) < timeout
            && self.endpoints.contains(&sticky.endpoint)
        {
            sticky.last_used = now;
            return Some(sticky.endpoint);
        }
        let endpoint = self.round_robin();
        self.sticky.insert(client, Sticky { endpoint, last_used: now });
        if self.sticky.len() > self.sweep_at {
            self.sweep(now);
            self.sweep_at = (self.sticky.len() * 2).max(SWEEP_AT);
        }
        Some(endpoint)
    }

    /// `endpoint` failed `client`: its affinity ends, so the next try picks afresh.
    pub fn failed(&mut self, client: IpAddr, endpoint: SocketAddr) {
        if self.sticky.get(&client).is_some_and(|s| s.endpoint == endpoint) {
            self.sticky.remove(&client);
        }
    }

    /// Whether `endpoint` is still one of this listener's.
    pub fn contains(&self, endpoint: SocketAddr) -> bool {
        self.endpoints.contains(&endpoint)
    }

    /// Moves on each time the endpoints change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Clients with affinity (expired entries may linger until the next sweep).
    pub fn sticky_clients(&self) -> usize {
        self.sticky.len()
    }

    fn round_robin(&mut self) -> SocketAddr {
        let i = self.next % self.endpoints.len();
        self.next = (i + 1) % self.endpoints.len();
        self.endpoints[i]
    }

    fn sweep(&mut self, now: Instant) {
        let (timeout, endpoints) = (self.affinity, &self.endpoints);
        self.sticky.retain(|_, s| {
            timeout.is_some_and(|t| now.saturating_duration_since(s.last_used) < t) && endpoints.contains(&s.endpoint)
        });
    }
}

/// A [`Balancer`] shared by a listener and its connections.
#[derive(Debug)]
pub struct Targets(Mutex<Balancer>);

impl Targets {
    /// Shares `balancer`.
    pub fn new(balancer: Balancer) -> Self {
        Self(Mutex::new(balancer))
    }

    /// The balancer, locked (a poisoned lock is taken over: its state stays consistent).
    pub fn lock(&self) -> MutexGuard<'_, Balancer> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kproxy_core::Protocol;
    use kproxy_core::stale_flows::Destinations;

    fn spec(endpoints: &[&str], affinity: Option<u64>) -> ListenerSpec {
        ListenerSpec {
            protocol: Protocol::Tcp,
            endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
            affinity: affinity.map(Duration::from_secs),
            allowed_sources: Vec::new(),
            destinations: Destinations::default(),
            address: None,
        }
    }

    const A: &str = "10.0.0.1:80";
    const B: &str = "10.0.0.2:80";
    const C: &str = "10.0.0.3:80";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let mut b = Balancer::new(&spec(&[A, B, C], None));
        let now = Instant::now();
        let picks: Vec<String> = (0..6).map(|_| b.pick(ip("1.1.1.1"), now).unwrap().to_string()).collect();
        assert_eq!(picks, [A, B, C, A, B, C]);
    }

    #[test]
    fn no_endpoints_picks_nothing() {
        let mut b = Balancer::new(&spec(&[], None));
        assert_eq!(b.pick(ip("1.1.1.1"), Instant::now()), None);
    }

    #[test]
    fn affinity_sticks_until_the_timeout_after_last_use() {
        let mut b = Balancer::new(&spec(&[A, B, C], Some(10)));
        let t0 = Instant::now();
        let first = b.pick(ip("1.1.1.1"), t0).unwrap();
        assert_eq!(b.pick(ip("1.1.1.1"), t0 + Duration::from_secs(9)), Some(first));
        // Last use at 9 s: still sticky at 18 s, not at 29 s.
        assert_eq!(b.pick(ip("1.1.1.1"), t0 + Duration::from_secs(18)), Some(first));
        assert_ne!(b.pick(ip("1.1.1.1"), t0 + Duration::from_secs(29)), Some(first));
        // Another client gets its own pick.
        assert_ne!(b.pick(ip("2.2.2.2"), t0), None);
    }

    #[test]
    fn failure_and_endpoint_removal_end_affinity() {
        let mut b = Balancer::new(&spec(&[A, B], Some(100)));
        let now = Instant::now();
        let first = b.pick(ip("1.1.1.1"), now).unwrap();
        b.failed(ip("1.1.1.1"), first);
        assert_ne!(b.pick(ip("1.1.1.1"), now), Some(first));
        let stuck = b.pick(ip("1.1.1.1"), now).unwrap();
        let remaining = if stuck.to_string() == A { B } else { A };
        let generation = b.generation();
        b.update(&spec(&[remaining], Some(100)), now);
        assert!(b.generation() > generation);
        assert!(!b.contains(stuck));
        assert_eq!(b.pick(ip("1.1.1.1"), now).unwrap().to_string(), remaining);
    }

    #[test]
    fn unchanged_endpoints_keep_the_generation() {
        let mut b = Balancer::new(&spec(&[A, B], None));
        b.update(&spec(&[A, B], Some(5)), Instant::now());
        assert_eq!(b.generation(), 0);
    }

    #[test]
    fn expired_affinity_is_swept() {
        let mut b = Balancer::new(&spec(&[A], Some(1)));
        let t0 = Instant::now();
        for i in 0..SWEEP_AT {
            b.pick(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]), t0);
        }
        assert_eq!(b.sticky_clients(), SWEEP_AT);
        b.pick(ip("9.9.9.9"), t0 + Duration::from_secs(5));
        assert_eq!(b.sticky_clients(), 1);
        b.update(&spec(&[A], Some(1)), t0 + Duration::from_secs(10));
        assert_eq!(b.sticky_clients(), 0);
    }

    #[test]
    fn source_ranges_admit_only_listed_clients() {
        let mut s = spec(&[A], None);
        s.allowed_sources = vec!["192.168.0.100/32".parse().unwrap()];
        let b = Balancer::new(&s);
        assert!(b.admits(ip("192.168.0.100")));
        assert!(!b.admits(ip("192.168.0.101")));
        assert!(Balancer::new(&spec(&[A], None)).admits(ip("8.8.8.8")));
    }
}
