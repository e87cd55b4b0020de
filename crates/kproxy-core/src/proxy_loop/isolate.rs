//! Finding the service ports that make the dataplane reject a state: they are held out,
//! everything else is programmed, and they are added back by halves until the ones that fail
//! on their own are found and quarantined.

use super::{Programmed, ProxyLoop, Quarantined};
use crate::dataplane::{Dataplane, SyncError};
use crate::names::{IpFamily, ServicePortName};
use crate::proxy_state::Changes;
use crate::service_port::ServicePort;

impl ProxyLoop {
    /// After the dataplane rejected `changes` with `error`: programs everything but the
    /// ports that fail on their own, which are quarantined (see [`ProxyLoop::sync`]).
    pub(super) async fn isolate(
        &mut self,
        dataplane: &mut dyn Dataplane,
        mut changes: Changes,
        error: SyncError,
    ) -> Result<Programmed, SyncError> {
        changes.set_full();
        let mut attempts = 1;
        let mut rejected_attempts = 1;
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
                    rejected_attempts += 1;
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
                    rejected_attempts += 1;
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
        Ok(Programmed { stats, changes, quarantined, attempts, rejected_attempts })
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
