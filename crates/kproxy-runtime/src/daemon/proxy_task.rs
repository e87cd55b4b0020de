//! `ProxyTask`: what the runner task owns and drives: the [`ProxyLoop`], the dataplane and
//! the source's events. Between runs it folds events into the loop; each run syncs the loop
//! and reports to metrics, health, the health-check node ports and (with an apiserver)
//! Kubernetes Events.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kproxy_core::{Dataplane, IpFamily, ProxyLoop, SourceEvent, SyncError, SyncReport, explain_with};
use tokio::sync::mpsc;

use super::conflict_events::ConflictEvents;
use crate::explain::ExplainRequest;
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
    /// `/explain` questions, answered between runs; `None` once nobody asks any more.
    questions: Option<mpsc::Receiver<ExplainRequest>>,
}

impl ProxyTask {
    /// A task driving `dataplane` from `events` with `proxy`.
    pub(super) fn new(
        proxy: ProxyLoop,
        dataplane: Box<dyn Dataplane>,
        events: mpsc::Receiver<SourceEvent>,
        reporting: Reporting,
    ) -> Self {
        Self { proxy, dataplane, events, reporting, questions: None }
    }

    /// Also answers `/explain` questions from `questions`, on the state last programmed.
    pub(super) fn answering(mut self, questions: mpsc::Receiver<ExplainRequest>) -> Self {
        self.questions = Some(questions);
        self
    }

    /// Answers one question (the asker may have given up: then nobody hears it).
    fn answer(&self, question: ExplainRequest) {
        let explanation = explain_with(self.dataplane.as_ref(), self.proxy.state(), &question.query);
        let _ = question.reply.send(explanation);
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
        match &event {
            SourceEvent::Service(e) => metrics.add_service_changes(objects_changed(e)),
            SourceEvent::EndpointSlice(e) => metrics.add_endpoint_changes(objects_changed(e)),
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
        let inputs = report.health;
        for family in IpFamily::ALL {
            metrics.observe_network_programming(now, family, &report.changes.family(family).trigger_times);
            health.updated(family);
            let i = family.index();
            metrics.set_no_local_endpoints(family, TrafficPolicy::Internal, inputs.no_local_endpoints_internal[i]);
            metrics.set_no_local_endpoints(family, TrafficPolicy::External, inputs.no_local_endpoints_external[i]);
        }
        if let Some(cleanup) = &report.stats.stale_flows {
            metrics.observe_flow_cleanup(cleanup);
        }
        metrics.add_cleanup_failures(report.stats.cleanup_failures);
        if let Some(tables) = &report.stats.table_rules {
            metrics.set_table_rules(tables);
        }
        if !report.stats.maps.is_empty() {
            metrics.set_map_usage(&report.stats.maps);
        }
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
        if kind == SyncKind::Periodic {
            self.proxy.retry_quarantined();
        }
        match self.proxy.sync(self.dataplane.as_mut(), kind.is_full()).await {
            Ok(report) => {
                let partial = !report.changes.full();
                self.reporting.metrics.add_sync_failures(mode, None, report.rejected_attempts, partial);
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
                self.reporting.metrics.add_sync_failures(mode, error.family, 1, !kind.is_full());
                Err(error)
            }
        }
    }
}

impl Driver for ProxyTask {
    async fn next_input(&mut self) -> Option<bool> {
        loop {
            let input = match &mut self.questions {
                Some(questions) => tokio::select! {
                    event = self.events.recv() => Input::Event(event),
                    question = questions.recv() => Input::Question(question),
                },
                None => Input::Event(self.events.recv().await),
            };
            match input {
                Input::Event(event) => return Some(self.fold(event?)),
                Input::Question(Some(question)) => self.answer(question),
                Input::Question(None) => self.questions = None,
            }
        }
    }
}

/// What [`ProxyTask::next_input`] received.
#[allow(clippy::large_enum_variant, reason = "one value on the stack for one match; boxing would allocate per event")]
enum Input {
    /// A source event; `None`: the source ended.
    Event(Option<SourceEvent>),
    /// An `/explain` question; `None`: nobody asks any more.
    Question(Option<ExplainRequest>),
}

/// The objects an event tells of, as upstream counts changes: one per object added,
/// updated or deleted, a (re)list counting each object it lists.
fn objects_changed<K>(event: &kproxy_core::ObjectEvent<K>) -> u64 {
    use kproxy_core::ObjectEvent;
    let count = match event {
        ObjectEvent::Apply(_) | ObjectEvent::Delete(_) | ObjectEvent::Undecodable(_) => 1,
        ObjectEvent::Reset { objects, undecodable } | ObjectEvent::Listed { objects, undecodable } => {
            objects.len() + undecodable.len()
        }
        ObjectEvent::ListStart | ObjectEvent::ListEnd => 0,
    };
    u64::try_from(count).unwrap_or(u64::MAX)
}
