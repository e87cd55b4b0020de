//! `ProxyLoop`: the one owner of what is programmed. Source events fold into its change
//! tracker; a sync checks the pending changes out into the [`ProxyState`], decides full or
//! partial, programs a [`Dataplane`] and reports what health and metrics need. When the
//! dataplane rejects the state, the service ports that make it fail are found and
//! quarantined, and everything else is programmed.
//!
//! The daemon's runner, the conformance harness and `kproxy render` all drive this loop.
//! Nothing here needs an async runtime: `sync` only awaits the dataplane.

mod fold;
mod health_inputs;
mod isolate;
mod relist;
#[cfg(test)]
mod testing;

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::change_tracker::ChangeTracker;
use crate::claims::Conflict;
use crate::dataplane::{Dataplane, SyncError, SyncStats};
use crate::event::SourceEvent;
use crate::names::{IpFamily, ServicePortName};
use crate::proxy_state::{Changes, ProxyState};
use crate::service_port::ServicePort;
pub use fold::Malformed;
use fold::{InitialLists, Reports};
use health_inputs::HealthIndex;
pub use health_inputs::HealthInputs;
use relist::Relists;

/// A service port held out of the dataplane because programming it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The port's family.
    pub family: IpFamily,
    /// The port.
    pub name: ServicePortName,
    /// The dataplane's error when the port was tried on its own.
    pub reason: String,
}

/// What one successful [`ProxyLoop::sync`] did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// The dataplane's account of its last successful call.
    pub stats: SyncStats,
    /// The changes the sync applied (for metrics: full or partial, trigger times).
    pub changes: Changes,
    /// Service ports quarantined by this sync.
    pub quarantined: Vec<Quarantined>,
    /// Claims lost since the previous sync (each reported once while it lasts).
    pub new_conflicts: Vec<Conflict>,
    /// Health-check node ports, local endpoint counts and no-local-endpoint counts, as now
    /// programmed.
    pub health: HealthInputs,
    /// Dataplane calls it took (1 unless the dataplane rejected the state).
    pub attempts: usize,
    /// Of those, the calls the dataplane rejected (0 unless ports were isolated).
    pub rejected_attempts: usize,
}

/// What programming the dataplane did, before the report is completed.
#[derive(Debug)]
struct Programmed {
    stats: SyncStats,
    changes: Changes,
    quarantined: Vec<Quarantined>,
    attempts: usize,
    rejected_attempts: usize,
}

/// The one owner of what is programmed: the change tracker, the programmed model, the
/// changes of a failed sync, the quarantine and the decision "full or partial".
///
/// Source events fold in with [`on_event`](Self::on_event); [`sync`](Self::sync) checks
/// the pending changes out into the [`ProxyState`], programs a [`Dataplane`] and reports
/// what health and metrics need. The daemon's runner, the conformance harness and
/// `kproxy render` all drive this loop; nothing here needs an async runtime (`sync` only
/// awaits the dataplane).
#[derive(Debug)]
pub struct ProxyLoop {
    tracker: ChangeTracker,
    lists: InitialLists,
    relists: Relists,
    reports: Reports,
    state: ProxyState,
    /// Changes a failed sync did not apply, merged into the next one.
    failed: Option<Changes>,
    /// The next sync must be full: the last dataplane call failed.
    dataplane_unsure: bool,
    /// Quarantined ports, as their Services define them, and why.
    quarantine: BTreeMap<(IpFamily, ServicePortName), (ServicePort, String)>,
    /// The next sync tries the quarantined ports again, full or not.
    retry_quarantine: bool,
    /// Claims lost, as of the last successful sync.
    conflicts: BTreeSet<Conflict>,
    health: HealthIndex,
    /// This node may receive load-balancer traffic (not being deleted, not tainted for it).
    node_eligible: bool,
}

impl ProxyLoop {
    /// A loop for node `node_name`, with nothing folded in and nothing programmed yet;
    /// endpoint trigger times before `start_time` are not measured.
    pub fn new(node_name: &str, start_time: SystemTime) -> Self {
        Self {
            tracker: ChangeTracker::new(node_name, start_time),
            lists: InitialLists::default(),
            relists: Relists::default(),
            reports: Reports::default(),
            state: ProxyState::new(node_name),
            failed: None,
            dataplane_unsure: false,
            quarantine: BTreeMap::new(),
            retry_quarantine: false,
            conflicts: BTreeSet::new(),
            health: HealthIndex::default(),
            node_eligible: true,
        }
    }

    /// Folds one source event into the pending changes; returns the event's objects that
    /// cannot be used (they keep their previous state).
    pub fn on_event(&mut self, event: SourceEvent) -> Vec<Malformed> {
        if let Some(eligible) = fold::node_eligibility(&event) {
            self.node_eligible = eligible;
        }
        match fold::fold(&mut self.tracker, &mut self.lists, &mut self.relists, event) {
            Some((kind, outcome)) => self.reports.record(kind, outcome),
            None => Vec::new(),
        }
    }

    /// Whether this node should receive load-balancer traffic: false while its Node is being
    /// deleted, is tainted `ToBeDeletedByClusterAutoscaler`, or was deleted (upstream's
    /// `nodeEligible` in `/healthz`). True until the Node says otherwise.
    pub fn node_eligible(&self) -> bool {
        self.node_eligible
    }

    /// Every initial list (Services, EndpointSlices, this Node) has arrived as a
    /// [`Reset`](crate::ObjectEvent::Reset). A daemon syncs nothing before: programming a
    /// partial (or empty) state would break traffic the previous rules still carry.
    pub fn initialized(&self) -> bool {
        self.lists.complete()
    }

    /// Initialized, and changes wait for a sync.
    pub fn wants_sync(&self) -> bool {
        self.initialized() && self.tracker.pending()
    }

    /// Pending Service changes, summed over families (`..._service_changes_pending`).
    pub fn service_changes_pending(&self) -> usize {
        self.tracker.service_changes_pending()
    }

    /// Pending endpoint changes, summed over families (`..._endpoint_changes_pending`).
    pub fn endpoint_changes_pending(&self) -> usize {
        self.tracker.endpoint_changes_pending()
    }

    /// Makes the next sync full (e.g. the dataplane was replaced).
    pub fn request_full_sync(&mut self) {
        self.tracker.request_full_sync();
    }

    /// Makes the next sync try every quarantined port again without being full (the
    /// runner's periodic sync: the kernel may accept them now).
    pub fn retry_quarantined(&mut self) {
        self.retry_quarantine = true;
    }

    /// The model as of the last sync, without quarantined ports.
    pub fn state(&self) -> &ProxyState {
        &self.state
    }

    /// The quarantined service ports.
    pub fn quarantined(&self) -> impl Iterator<Item = Quarantined> + '_ {
        self.quarantine.iter().map(|((family, name), (_, reason))| Quarantined {
            family: *family,
            name: name.clone(),
            reason: reason.clone(),
        })
    }

    /// Every claim a service port lost to another, as of the last successful sync.
    pub fn conflicts(&self) -> &BTreeSet<Conflict> {
        &self.conflicts
    }

    /// The health inputs as of the last successful sync.
    pub fn health(&self) -> &HealthInputs {
        self.health.inputs()
    }

    /// Checks the pending changes out into the state and programs `dataplane`.
    ///
    /// The sync is full when `full` is set (the runner's hourly full resync), on the first
    /// sync, after a node change, and after a failed one (whose changes it carries too);
    /// otherwise partial. A full sync, and the one after
    /// [`retry_quarantined`](Self::retry_quarantined), give every quarantined port another
    /// try.
    ///
    /// When the dataplane rejects the state ([`Retry::Rejected`](crate::Retry::Rejected)),
    /// the changed service ports (all of them on a full sync) are held out and the rest is
    /// programmed; if that succeeds, the held ports are added back by halves until the
    /// ones that fail on their own are found. Those are quarantined (a quarantined port
    /// whose Service changes is tried again) and everything else is programmed: the sync
    /// succeeds. If even the state without them fails, the cause is not in the changed
    /// ports: the error is returned and the next sync retries it all, in full.
    pub async fn sync(&mut self, dataplane: &mut dyn Dataplane, full: bool) -> Result<SyncReport, SyncError> {
        let changes = self.checkout(full);
        let Programmed { stats, changes, quarantined, attempts, rejected_attempts } =
            self.program(dataplane, changes).await?;
        let new_conflicts = self.note_conflicts(&changes);
        self.health.update(&self.state, &changes);
        let health = self.health.inputs().clone();
        Ok(SyncReport { stats, changes, quarantined, new_conflicts, health, attempts, rejected_attempts })
    }

    /// Checks the tracker's pending changes out into the state, with a failed sync's
    /// changes merged in; decides full or partial.
    fn checkout(&mut self, full: bool) -> Changes {
        let mut changes = self.tracker.checkout_into(&mut self.state);
        if full || std::mem::take(&mut self.dataplane_unsure) {
            changes.set_full();
        }
        if let Some(mut failed) = self.failed.take() {
            failed.merge(changes);
            changes = failed;
        }
        self.quarantine.retain(|(family, name), _| !changes.family(*family).service_ports.contains(name));
        if full || std::mem::take(&mut self.retry_quarantine) {
            for ((family, name), (port, _)) in std::mem::take(&mut self.quarantine) {
                let changed = self.state.family_mut(family).services.insert(name, port);
                changes.family_mut(family).service_ports.extend(changed);
            }
        }
        changes
    }

    /// Programs `dataplane` with the state and `changes`, isolating rejected ports.
    async fn program(&mut self, dataplane: &mut dyn Dataplane, changes: Changes) -> Result<Programmed, SyncError> {
        match dataplane.sync(&self.state, &changes).await {
            Ok(stats) => Ok(Programmed { stats, changes, quarantined: Vec::new(), attempts: 1, rejected_attempts: 0 }),
            Err(error) if error.is_rejection() => self.isolate(dataplane, changes, error).await,
            Err(error) => Err(self.failed_with(changes, error)),
        }
    }

    /// Remembers `changes` for a full retry and hands `error` back.
    fn failed_with(&mut self, mut changes: Changes, error: SyncError) -> SyncError {
        changes.set_full();
        self.failed = Some(changes);
        error
    }

    /// After a successful sync that applied `changes`: the claims lost now, and of those
    /// the ones not lost before.
    fn note_conflicts(&mut self, changes: &Changes) -> Vec<Conflict> {
        let touched = changes.full() || IpFamily::ALL.iter().any(|f| !changes.family(*f).service_ports.is_empty());
        if !touched {
            return Vec::new();
        }
        let now: BTreeSet<Conflict> = self.state.families().flat_map(|f| f.services.conflicts()).collect();
        let new = now.difference(&self.conflicts).cloned().collect();
        self.conflicts = now;
        new
    }
}

#[cfg(test)]
#[path = "proxy_loop_tests.rs"]
mod tests;
