//! `Syncer`: one sync, as the runner calls it: check out the changes, program the
//! dataplane, then report to metrics, health and the health-check node ports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use kproxy_core::{
    ChangeTracker, Changes, Conflict, Dataplane, IpFamily, ProxyLoop, ProxyState, Quarantined, SyncError,
    categorize_endpoints,
};

use crate::health::ProxyHealth;
use crate::metrics::{Metrics, TrafficPolicy};
use crate::runner::{SyncFn, SyncKind};
use crate::service_health::ServiceHealthServer;

/// The dataplane, shared between the syncer and the daemon (which shuts it down at the end).
pub(super) type SharedDataplane = Arc<tokio::sync::Mutex<Box<dyn Dataplane>>>;

/// Programs the dataplane from the trackers' pending changes.
pub(super) struct Syncer {
    dataplane: SharedDataplane,
    proxy: ProxyLoop,
    tracker: Arc<Mutex<ChangeTracker>>,
    /// Conflicts already logged; each is logged once while it lasts.
    conflicts: BTreeSet<Conflict>,
    metrics: Arc<Metrics>,
    health: Arc<ProxyHealth>,
    service_health: ServiceHealthServer,
}

impl Syncer {
    pub(super) fn new(
        dataplane: SharedDataplane,
        node: &str,
        tracker: Arc<Mutex<ChangeTracker>>,
        metrics: Arc<Metrics>,
        health: Arc<ProxyHealth>,
        service_health: ServiceHealthServer,
    ) -> Self {
        let proxy = ProxyLoop::new(node);
        Self { dataplane, proxy, tracker, conflicts: BTreeSet::new(), metrics, health, service_health }
    }

    /// Checks out pending changes into the state, with a failed sync's changes merged in.
    fn checkout(&mut self, kind: SyncKind) -> Changes {
        let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        self.proxy.checkout(&mut tracker, kind.is_full())
    }

    /// Logs each newly quarantined port and each new conflict once, and sets their gauges.
    fn report_faults(&mut self, quarantined: &[Quarantined]) {
        for q in quarantined {
            tracing::error!(
                namespace = %q.name.service.namespace,
                name = %q.name.service.name,
                port = %q.name.port,
                protocol = %q.name.protocol,
                family = %q.family,
                reason = %q.reason,
                "quarantined service port: the dataplane rejected it; every other port is programmed"
            );
        }
        self.metrics.set_quarantined_service_ports(self.proxy.quarantined().count());
        let now: BTreeSet<Conflict> = self.proxy.state().families().flat_map(|f| f.services.conflicts()).collect();
        for c in now.difference(&self.conflicts) {
            tracing::warn!(
                claim = %c.claim,
                winner = %c.winner,
                loser = %c.loser,
                "service port conflict: the older Service keeps the claim"
            );
        }
        self.metrics.set_service_port_conflicts(now.len());
        self.conflicts = now;
    }

    async fn report_success(&mut self, changes: &Changes, took: std::time::Duration) {
        let now = SystemTime::now();
        self.metrics.observe_sync(took, changes.full());
        self.metrics.set_last_sync(now);
        self.metrics.observe_network_programming(now, &changes.trigger_times);
        IpFamily::ALL.into_iter().for_each(|f| self.health.updated(f));
        let (internal, external) = no_local_endpoints(self.proxy.state());
        self.metrics.set_no_local_endpoints(TrafficPolicy::Internal, internal);
        self.metrics.set_no_local_endpoints(TrafficPolicy::External, external);
        let (ports, local) = health_check_inputs(self.proxy.state());
        self.service_health.sync_services(ports).await;
        self.service_health.sync_endpoints(local);
        self.report_pending();
    }

    /// Sets the pending gauges to what arrived during the sync: after a successful sync
    /// they read 0 unless more changes wait. (Upstream zeroes them when a sync starts;
    /// keeping them until the sync has succeeded makes 0 mean "programmed".)
    fn report_pending(&self) {
        let tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        self.metrics.set_service_changes_pending(tracker.service_changes_pending());
        self.metrics.set_endpoint_changes_pending(tracker.endpoint_changes_pending());
    }
}

impl SyncFn for Syncer {
    type Error = SyncError;

    async fn sync(&mut self, kind: SyncKind) -> Result<(), SyncError> {
        let changes = self.checkout(kind);
        let started = tokio::time::Instant::now();
        let result = {
            let mut dataplane = self.dataplane.lock().await;
            self.proxy.sync(dataplane.as_mut(), changes).await
        };
        match result {
            Ok(report) => {
                tracing::debug!(
                    full = report.stats.full,
                    ports = report.stats.service_ports,
                    touched = report.stats.touched_service_ports,
                    attempts = report.attempts,
                    "synced"
                );
                self.report_faults(&report.quarantined);
                self.report_success(&report.changes, started.elapsed()).await;
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "sync failed");
                Err(error)
            }
        }
    }
}

/// Per traffic policy, how many service ports with Local policy have no local endpoint.
fn no_local_endpoints(state: &ProxyState) -> (usize, usize) {
    let (mut internal, mut external) = (0, 0);
    for family in state.families() {
        for (name, port) in family.services.iter() {
            let categorized = categorize_endpoints(family.endpoints.get(name), port, state.topology_node());
            if categorized.local.is_empty() {
                internal += usize::from(port.internal_policy_local);
                external += usize::from(port.external_policy_local && port.externally_accessible());
            }
        }
    }
    (internal, external)
}

/// Health-check node ports and local endpoint counts, over both families.
fn health_check_inputs(
    state: &ProxyState,
) -> (BTreeMap<kproxy_core::NamespacedName, u16>, BTreeMap<kproxy_core::NamespacedName, usize>) {
    let mut ports = BTreeMap::new();
    let mut local = BTreeMap::new();
    for family in state.families() {
        ports.extend(family.services.health_check_node_ports());
        for (service, count) in family.endpoints.local_ready_endpoints() {
            *local.entry(service).or_insert(0) += count;
        }
    }
    (ports, local)
}
