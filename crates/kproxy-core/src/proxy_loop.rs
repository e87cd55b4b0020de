//! `ProxyLoop`: one sync as the daemon, the conformance harness and `kproxy render` run it:
//! check the tracker's changes out into the [`ProxyState`], decide full or partial, program
//! the dataplane, and when the dataplane rejects the state, find the service ports that make
//! it fail, program everything else and quarantine those.

use std::collections::BTreeMap;

use crate::change_tracker::ChangeTracker;
use crate::dataplane::{Dataplane, SyncError, SyncStats};
use crate::names::{IpFamily, ServicePortName};
use crate::proxy_state::{Changes, ProxyState};
use crate::service_port::ServicePort;

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
    /// Dataplane calls it took (1 unless the dataplane rejected the state).
    pub attempts: usize,
}

/// Owns the programmed model and the decision "full or partial" between syncs.
#[derive(Debug)]
pub struct ProxyLoop {
    state: ProxyState,
    /// Changes a failed sync did not apply, merged into the next one.
    failed: Option<Changes>,
    /// The next sync must be full: the last dataplane call failed.
    dataplane_unsure: bool,
    /// Quarantined ports, as their Services define them, and why.
    quarantine: BTreeMap<(IpFamily, ServicePortName), (ServicePort, String)>,
}

impl ProxyLoop {
    /// A loop for node `node_name`, with nothing programmed yet.
    pub fn new(node_name: &str) -> Self {
        Self { state: ProxyState::new(node_name), failed: None, dataplane_unsure: false, quarantine: BTreeMap::new() }
    }

    /// The model as of the last checkout, without quarantined ports.
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

    /// Checks `tracker`'s pending changes out into the state, with a failed sync's changes
    /// merged in. `full` (the runner's periodic resync) also gives every quarantined port
    /// another try; a quarantined port whose Service changed is tried again too.
    pub fn checkout(&mut self, tracker: &mut ChangeTracker, full: bool) -> Changes {
        let mut changes = tracker.checkout_into(&mut self.state);
        if full || std::mem::take(&mut self.dataplane_unsure) {
            changes.set_full();
        }
        if let Some(mut failed) = self.failed.take() {
            failed.merge(changes);
            changes = failed;
        }
        self.quarantine.retain(|(family, name), _| !changes.family(*family).service_ports.contains(name));
        if full {
            for ((family, name), (port, _)) in std::mem::take(&mut self.quarantine) {
                let changed = self.state.family_mut(family).services.insert(name, port);
                changes.family_mut(family).service_ports.extend(changed);
            }
        }
        changes
    }

    /// Programs `dataplane` with the state and `changes` (from [`checkout`](Self::checkout)).
    ///
    /// When the dataplane rejects the state ([`Retry::Rejected`](crate::Retry::Rejected)),
    /// the changed service ports (all of them on a full sync) are held out and the rest is programmed; if that succeeds, the
    /// held ports are added back by halves until the ones that fail on their own are found.
    /// Those are quarantined and everything else is programmed: the sync succeeds. If even
    /// the state without them fails, the cause is not in the changed ports: the error is
    /// returned and the next sync retries it all, in full.
    pub async fn sync(&mut self, dataplane: &mut dyn Dataplane, changes: Changes) -> Result<SyncReport, SyncError> {
        let first = dataplane.sync(&self.state, &changes).await;
        match first {
            Ok(stats) => Ok(SyncReport { stats, changes, quarantined: Vec::new(), attempts: 1 }),
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

    async fn isolate(
        &mut self,
        dataplane: &mut dyn Dataplane,
        mut changes: Changes,
        error: SyncError,
    ) -> Result<SyncReport, SyncError> {
        changes.set_full();
        let mut attempts = 1;
        let mut held = Vec::new();
        let mut base = None;
        for suspects in self.suspect_sets(&changes) {
            held = self.hold_out(&suspects, &mut changes);
            attempts += 1;
            match dataplane.sync(&self.state, &changes).await {
                Ok(stats) => {
                    base = Some(stats);
                    break;
                }
                Err(_) => {
                    self.put_back(std::mem::take(&mut held), &mut changes);
                }
            }
        }
        let Some(mut stats) = base else {
            return Err(self.failed_with(changes, error));
        };
        let mut unsure = false;
        let mut quarantined = Vec::new();
        let mut groups = vec![held];
        while let Some(group) = groups.pop() {
            let mut attempt = Changes::default();
            if unsure {
                attempt.set_full();
            }
            let names: Vec<(IpFamily, ServicePortName)> = group.iter().map(|(f, n, _)| (*f, n.clone())).collect();
            self.put_back(group, &mut attempt);
            attempts += 1;
            match dataplane.sync(&self.state, &attempt).await {
                Ok(done) => {
                    stats = done;
                    unsure = false;
                }
                Err(error) if !error.is_rejection() => {
                    // Not the ports' fault: put every held port back and retry it all later.
                    for rest in std::mem::take(&mut groups) {
                        self.put_back(rest, &mut attempt);
                    }
                    changes.merge(attempt);
                    return Err(self.failed_with(changes, error));
                }
                Err(error) => {
                    unsure = true;
                    let mut group = self.hold_out(&names, &mut Changes::default());
                    if group.len() == 1 {
                        let (family, name, port) = group.remove(0);
                        quarantined.push(Quarantined { family, name: name.clone(), reason: error.to_string() });
                        self.quarantine.insert((family, name), (port, error.to_string()));
                    } else {
                        let second = group.split_off(group.len() / 2);
                        groups.push(second);
                        groups.push(group);
                    }
                }
            }
        }
        self.dataplane_unsure = unsure;
        Ok(SyncReport { stats, changes, quarantined, attempts })
    }

    /// The sets of ports that may have made a sync with `changes` fail, narrowest first: the
    /// changed ones in the state, then every port.
    fn suspect_sets(&self, changes: &Changes) -> Vec<Vec<(IpFamily, ServicePortName)>> {
        let all: Vec<_> = IpFamily::ALL
            .into_iter()
            .flat_map(|family| self.state.family(family).services.iter().map(move |(n, _)| (family, n.clone())))
            .collect();
        let changed: Vec<_> =
            all.iter().filter(|(family, name)| changes.family(*family).service_ports.contains(name)).cloned().collect();
        if changed.is_empty() || changed.len() == all.len() { vec![all] } else { vec![changed, all] }
    }

    /// Takes `names` out of the state, noting in `changes` every port whose programmed form
    /// changes (those taken out, and those that win a claim they held); returns them with
    /// their definitions.
    fn hold_out(
        &mut self,
        names: &[(IpFamily, ServicePortName)],
        changes: &mut Changes,
    ) -> Vec<(IpFamily, ServicePortName, ServicePort)> {
        let mut held = Vec::new();
        for (family, name) in names {
            let services = &mut self.state.family_mut(*family).services;
            let Some(port) = services.definition(name).cloned() else { continue };
            changes.family_mut(*family).service_ports.extend(services.remove(name));
            held.push((*family, name.clone(), port));
        }
        held
    }

    /// Puts held ports back, noting in `changes` every port whose programmed form changes.
    fn put_back(&mut self, held: Vec<(IpFamily, ServicePortName, ServicePort)>, changes: &mut Changes) {
        for (family, name, port) in held {
            let changed = self.state.family_mut(family).services.insert(name, port);
            changes.family_mut(family).service_ports.extend(changed);
        }
    }
}

#[cfg(test)]
#[path = "proxy_loop_tests.rs"]
mod tests;
