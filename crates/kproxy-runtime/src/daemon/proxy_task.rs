//! `ProxyTask`: what the runner task owns and drives: the [`ProxyLoop`], the dataplane and
//! the source's events. Between runs it folds events into the loop; each run syncs the loop
//! and reports to metrics, health, the health-check node ports and (with an apiserver)
//! Kubernetes Events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kproxy_core::{Dataplane, IpFamily, ProxyLoop, SourceEvent, SyncError, SyncReport};
use tokio::sync::mpsc;

use super::conflict_events::ConflictEvents;
use crate::health::ProxyHealth;
use crate::metrics::{Metrics, TrafficPolicy};
use crate::runner::{Driver, StopReason, SyncFn, SyncKind};
use crate::service_health::ServiceHealthServer;

/// Where a [`ProxyTask`] reports.
pub(super) struct Reporting {
    /// The daemon's metrics.
    pub(super) metrics: Arc<Metrics>,
    /// The proxy's health.
    pub(super) health: Arc<ProxyHealth>,
    /// The health-check node ports.
    pub(super) service_health: ServiceHealthServer,
    /// Events on Services that lose a claim; only with an apiserver source.
    pub(super) conflict_events: Option<ConflictEvents>,
}

/// The loop, the dataplane and the events, owned by one task.
pub(super) struct ProxyTask {
    proxy: ProxyLoop,
    dataplane: Box<dyn Dataplane>,
    events: mpsc::Receiver<SourceEvent>,
    reporting: Reporting,
}

impl ProxyTask {
    /// A task driving `dataplane` from `events` with `proxy`.
    pub(super) fn new(
        proxy: ProxyLoop,
        dataplane: Box<dyn Dataplane>,
        events: mpsc::Receiver<SourceEvent>,
        reporting: Reporting,
    ) -> Self {
        Self { proxy, dataplane, events, reporting }
    }

    /// Folds events in until every initial list has arrived; `Some` when `shutdown`
    /// completed or the source ended first.
    pub(super) async fn initial_lists<F: Future<Output = ()>>(
        &mut self,
        mut shutdown: Pin<&mut F>,
    ) -> Option<StopReason> {
        while !self.proxy.initialized() {
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return Some(StopReason::Shutdown),
                input = self.next_input() => if input.is_none() {
                    return Some(StopReason::HandlesDropped);
                },
            }
        }
        tracing::info!("initial lists complete; syncing");
        None
    }

    /// The daemon is stopping: lets the dataplane finish what is in flight.
    pub(super) async fn shutdown(mut self, drain: Duration) {
        self.dataplane.shutdown(drain).await;
    }

    /// Folds `event` in; returns whether a sync should be requested.
    fn fold(&mut self, event: SourceEvent) -> bool {
        let metrics = &self.reporting.metrics;
        match event {
            SourceEvent::Service(_) => metrics.add_service_changes(1),
            SourceEvent::EndpointSlice(_) => metrics.add_endpoint_changes(1),
            SourceEvent::Node(_) | SourceEvent::ServiceCidr(_) => {}
        }
        for malformed in self.proxy.on_event(event).into_iter().filter(|m| m.first_report) {
            let error = malformed.error;
            tracing::error!(
                kind = %error.kind,
                namespace = ?error.object.namespace,
                name = ?error.object.name,
                field = %error.field,
                reason = %error.reason,
                "skipping malformed object"
            );
            metrics.inc_malformed(error.kind);
        }
        self.reporting.health.set_node_eligible(self.proxy.node_eligible());
        let wants_sync = self.proxy.wants_sync();
        if wants_sync {
            IpFamily::ALL.into_iter().for_each(|f| self.reporting.health.queued_update(f));
            metrics.set_last_queued(SystemTime::now());
        }
        self.report_pending();
        wants_sync
    }

    /// Sets the pending gauges. After a successful sync they read 0 unless more changes
    /// wait. (Upstream zeroes them when a sync starts; keeping them until the sync has
    /// succeeded makes 0 mean "programmed".)
    fn report_pending(&self) {
        let metrics = &self.reporting.metrics;
        metrics.set_service_changes_pending(self.proxy.service_changes_pending());
        metrics.set_endpoint_changes_pending(self.proxy.endpoint_changes_pending());
    }

    /// Logs each newly quarantined port and each new conflict once (publishing the
    /// conflict's Event), and sets their gauges.
    fn report_faults(&self, report: &SyncReport) {
        let metrics = &self.reporting.metrics;
        for q in &report.quarantined {
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
        metrics.set_quarantined_service_ports(self.proxy.quarantined().count());
        for c in &report.new_conflicts {
            tracing::warn!(
                claim = %c.claim,
                winner = %c.winner,
                loser = %c.loser,
                "service port conflict: the older Service keeps the claim"
            );
            if let Some(events) = &self.reporting.conflict_events {
                events.publish(c.clone());
            }
        }
        metrics.set_service_port_conflicts(self.proxy.conflicts().len());
    }

    async fn report_success(&mut self, report: SyncReport, took: Duration) {
        let now = SystemTime::now();
        let Reporting { metrics, health, service_health, .. } = &mut self.reporting;
        metrics.observe_sync(took, report.changes.full());
        metrics.set_last_sync(now);
        metrics.observe_network_programming(now, &report.changes.trigger_times);
        IpFamily::ALL.into_iter().for_each(|f| health.updated(f));
        let inputs = report.health;
        metrics.set_no_local_endpoints(TrafficPolicy::Internal, inputs.no_local_endpoints_internal);
        metrics.set_no_local_endpoints(TrafficPolicy::External, inputs.no_local_endpoints_external);
        service_health.sync_services(inputs.health_check_node_ports).await;
        service_health.sync_endpoints(inputs.local_endpoints);
        self.report_pending();
    }
}

impl SyncFn for ProxyTask {
    type Error = SyncError;

    async fn sync(&mut self, kind: SyncKind) -> Result<(), SyncError> {
        let started = tokio::time::Instant::now();
        let mode = self.dataplane.name();
        match self.proxy.sync(self.dataplane.as_mut(), kind.is_full()).await {
            Ok(report) => {
                self.reporting.metrics.add_sync_failures(mode, report.rejected_attempts);
                tracing::debug!(
                    full = report.stats.full,
                    ports = report.stats.service_ports,
                    touched = report.stats.touched_service_ports,
                    attempts = report.attempts,
                    "synced"
                );
                self.report_faults(&report);
                self.report_success(report, started.elapsed()).await;
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "sync failed");
                self.reporting.metrics.add_sync_failures(mode, 1);
                Err(error)
            }
        }
    }
}

impl Driver for ProxyTask {
    async fn next_input(&mut self) -> Option<bool> {
        let event = self.events.recv().await?;
        Some(self.fold(event))
    }
}
