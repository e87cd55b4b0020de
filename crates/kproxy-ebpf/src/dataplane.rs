//! `EbpfDataplane`: the [`Dataplane`] of `--mode ebpf`.

use std::fmt::Write as _;
use std::time::Instant;

use kproxy_core::explain::{ModeProfile, PortTarget, RuleRef};
use kproxy_core::stale_flows::FlowCleanup;
use kproxy_core::{Changes, Dataplane, IpFamily, MapUsage, MapUsages, ProxyState, SyncError, SyncStats};

use crate::config::EbpfConfig;
use crate::interfaces::choose;
use crate::kernel::{AyaKernel, Kernel, KernelError};
use crate::maps::{MapError, Maps, family_index};
use crate::plan::{PlanContext, PortPlan, Role, plan_port, plan_state};
use crate::sync::{Committed, MapFull, PortKey, WriteError, Written};

/// The dataplane's name.
const NAME: &str = "ebpf";

/// Socket-level balancing with cgroup programs; see the crate docs.
///
/// Nothing touches the kernel until the first sync: it loads the programs with fresh maps,
/// fills them, and only then attaches (replacing the links of a previous kproxy), so a
/// restart never leaves the node without balancing. Later syncs write map entries only.
pub struct EbpfDataplane {
    config: EbpfConfig,
    kernel: Box<dyn Kernel>,
    maps: Option<Box<dyn Maps>>,
    attached: bool,
    committed: Committed,
}

impl std::fmt::Debug for EbpfDataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbpfDataplane")
            .field("config", &self.config)
            .field("loaded", &self.maps.is_some())
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

fn kernel_error(step: &'static str, error: KernelError) -> SyncError {
    if error.fatal { SyncError::fatal(NAME, step, error) } else { SyncError::retryable(NAME, step, error) }
}

impl EbpfDataplane {
    /// The dataplane for `config`, on the real kernel.
    pub fn new(config: EbpfConfig) -> Self {
        let kernel = Box::new(AyaKernel::new(config.clone()));
        Self::with_kernel(config, kernel)
    }

    /// The dataplane on `kernel` (tests pass a fake).
    pub fn with_kernel(config: EbpfConfig, kernel: Box<dyn Kernel>) -> Self {
        let committed = Committed::with_sizes(&config.map_sizes);
        Self { config, kernel, maps: None, attached: false, committed }
    }

    /// Writes every changed port (all of them when `full`), also after one failed; ports
    /// that would overflow a map are skipped. The outcome says what failed.
    fn write(&mut self, state: &ProxyState, changes: &Changes, full: bool) -> Result<(Written, Outcome), SyncError> {
        let maps = self.maps.as_deref_mut().ok_or_else(|| SyncError::retryable(NAME, "sync", "no maps loaded"))?;
        let mut written = Written::default();
        let mut outcome = Outcome::default();
        if full {
            let plans = plan_state(state, &self.config.nodeport_addresses);
            let gone: Vec<PortKey> = self.committed.ports().filter(|k| !plans.contains_key(*k)).cloned().collect();
            for key in &gone {
                outcome.add(self.committed.apply(maps, key, None, true, &mut written));
            }
            for (key, plan) in &plans {
                outcome.add(self.committed.apply(maps, key, Some(plan), true, &mut written));
            }
            if outcome.is_clean() {
                // Entries of a previous kproxy that the state no longer has.
                outcome.add(self.committed.sweep(maps, &mut written).map_err(WriteError::from));
            }
        } else {
            let ctx = PlanContext::of(state, &self.config.nodeport_addresses);
            for family in IpFamily::ALL {
                let view = state.family(family);
                for name in &changes.family(family).service_ports {
                    let plan =
                        view.services.get(name).map(|port| plan_port(&ctx, family, port, view.endpoints.get(name)));
                    let key = (family, name.clone());
                    outcome.add(self.committed.apply(maps, &key, plan.as_ref(), false, &mut written));
                }
            }
        }
        Ok((written, outcome))
    }

    /// Every map's size and the entries written to it.
    fn map_usage(&self) -> MapUsages {
        let sizes = &self.config.map_sizes;
        let used = self.committed.usage();
        let count = |n: usize| Some(u64::try_from(n).unwrap_or(u64::MAX));
        let map = |map, max_entries: u32, entries| MapUsage { map, max_entries: u64::from(max_entries), entries };
        [
            map("kp_services", sizes.services, count(used.services)),
            map("kp_external", sizes.services, count(used.external)),
            map("kp_endpoints", sizes.endpoints, count(used.endpoints)),
            map("kp_ranges", sizes.source_ranges, count(used.ranges)),
            map("kp_netns", NETNS_ENTRIES, count(self.config.netns_cookies.len())),
            map("kp_revnat", sizes.reverse_nat, None),
            map("kp_affinity", sizes.affinity, None),
            map("kp_client_affinity", sizes.affinity, None),
            map("kp_conntrack", sizes.conntrack, None),
        ]
        .into_iter()
        .collect()
    }
}

/// The entries of `kp_netns` (fixed in `bpf/maps.h`).
const NETNS_ENTRIES: u32 = 1024;

/// How many skipped ports one sync logs by name.
const LOGGED_SKIPS: usize = 10;

/// The outcome of the ports of one sync: the first map error, and every port that did not
/// fit.
#[derive(Debug, Default)]
struct Outcome {
    error: Option<MapError>,
    full: Vec<MapFull>,
}

impl Outcome {
    fn add(&mut self, result: Result<(), WriteError>) {
        match result {
            Ok(()) => {}
            Err(WriteError::Map(e)) => {
                self.error.get_or_insert(e);
            }
            Err(WriteError::Full(full)) => self.full.push(full),
        }
    }

    fn is_clean(&self) -> bool {
        self.error.is_none() && self.full.is_empty()
    }

    /// The first map error, if any.
    fn map_error(&mut self) -> Result<(), SyncError> {
        match self.error.take() {
            Some(e) => Err(SyncError::retryable(NAME, "map update", e)),
            None => Ok(()),
        }
    }

    /// The ports skipped for capacity, each logged, as one error.
    fn capacity(&self) -> Result<(), SyncError> {
        let Some(first) = self.full.first() else { return Ok(()) };
        for full in self.full.iter().take(LOGGED_SKIPS) {
            let (port, map, max_entries) = (&full.port, full.map, full.max_entries);
            tracing::warn!(%port, map, max_entries, "service port not written: the map is full");
        }
        let more = self.full.len().saturating_sub(LOGGED_SKIPS);
        if more > 0 {
            tracing::warn!(more, "more service ports not written: maps are full");
        }
        let mut message = format!("{} service port(s) not written, maps full; first: {first}", self.full.len());
        if let Some(flag) = crate::MapSizes::flag_name(first.map) {
            message.push_str(&format!("; --ebpf-map-sizes {flag}=ENTRIES makes it larger"));
        }
        Err(SyncError::retryable(NAME, "map capacity", message))
    }
}

impl EbpfDataplane {
    /// Deletes the conntrack and affinity entries of what this sync removed (the maps are
    /// read only then); the conntrack deletions are reported like stale UDP flows. A
    /// failure is logged: the entries age out of their LRU maps anyway.
    fn forget_stale(&mut self) -> Option<FlowCleanup> {
        let stale = self.committed.take_stale();
        let maps = self.maps.as_deref_mut().filter(|_| !stale.is_empty())?;
        let started = Instant::now();
        let committed = &self.committed;
        match maps.forget(&stale, &|endpoints| committed.in_use(endpoints)) {
            Ok(forgotten) => {
                tracing::debug!(?forgotten, "deleted entries of removed endpoints");
                let mut families = [false; 2];
                for endpoint in &stale.endpoints {
                    families[family_index(endpoint.family)] = true;
                }
                let looked = families.iter().any(|f| *f);
                looked.then(|| FlowCleanup { duration: started.elapsed(), families, deleted: forgotten.conntrack })
            }
            Err(error) => {
                tracing::warn!(%error, "cannot delete conntrack and affinity entries of removed endpoints");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl Dataplane for EbpfDataplane {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let fresh = self.maps.is_none();
        if fresh {
            let maps = self.kernel.load().map_err(|e| kernel_error("load", e))?;
            // Maps a previous kproxy pinned come with its entries: reconciled by this sync.
            let contents = maps.contents().map_err(|e| SyncError::retryable(NAME, "read pinned maps", e))?;
            self.committed = Committed::with_sizes(&self.config.map_sizes);
            self.committed.adopt(contents);
            self.maps = Some(maps);
        }
        let full = fresh || changes.full();
        let (written, mut outcome) = self.write(state, changes, full)?;
        // A failed write: a previous kproxy's programs (if any) keep serving until the retry.
        outcome.map_error()?;
        if !self.attached {
            self.kernel.attach().map_err(|e| kernel_error("attach", e))?;
            self.attached = true;
        }
        if self.config.tc {
            // Every sync: pods' interfaces come and go.
            let present = self.kernel.interfaces().map_err(|e| kernel_error("list interfaces", e))?;
            let attachment = choose(&self.config.interfaces, &state.node.addresses, &present);
            self.kernel.attach_tc(&attachment).map_err(|e| kernel_error("attach tc", e))?;
        }
        let stale_flows = self.forget_stale();
        // Ports that did not fit: what fits is attached and balanced; the sync still fails.
        outcome.capacity()?;
        let touched = IpFamily::ALL.iter().map(|f| changes.family(*f).service_ports.len()).sum();
        Ok(SyncStats {
            full,
            service_ports: state.families().map(|f| f.services.len()).sum(),
            touched_service_ports: touched,
            rules: written.writes,
            stale_flows,
            maps: self.map_usage(),
            ..SyncStats::default()
        })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        self.maps = None;
        self.attached = false;
        self.committed = Committed::with_sizes(&self.config.map_sizes);
        self.kernel.cleanup().map_err(|e| kernel_error("cleanup", e))
    }

    fn render(&self, state: &ProxyState) -> String {
        let mut out = String::from("# ebpf: kp_services entries → endpoints (slot order)\n");
        for ((family, name), plan) in plan_state(state, &self.config.nodeport_addresses) {
            for (key, entry) in &plan.entries {
                let list = endpoint_list(&plan, entry.role);
                let _ = writeln!(
                    out,
                    "{} {}/{} {} {:?} flags={} affinity={}s -> [{}]",
                    family.as_str(),
                    key.socket_addr(),
                    name.protocol.as_lower_str(),
                    name,
                    entry.role,
                    entry.flags,
                    entry.affinity_secs,
                    list
                );
            }
            for (key, external) in &plan.external {
                let entry = &external.entry;
                let list = endpoint_list(&plan, entry.role);
                let snat = external.snat.map(|ip| format!(" snat={ip}")).unwrap_or_default();
                let ranges =
                    if external.source_ranges { format!(" ranges={:?}", plan.source_ranges) } else { String::new() };
                let _ = writeln!(
                    out,
                    "{} {}/{} {} {:?} from-outside flags={}{snat}{ranges} -> [{}]",
                    family.as_str(),
                    key.socket_addr(),
                    name.protocol.as_lower_str(),
                    name,
                    entry.role,
                    entry.flags,
                    list
                );
            }
        }
        out
    }

    fn explain_profile(&self) -> ModeProfile {
        crate::explain::profile(self.name())
    }

    fn explain_rules(&self, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
        crate::explain::rules(&self.config.nodeport_addresses, state, target)
    }
}

/// The endpoints of `role`'s set in `plan`, in slot order, space-separated.
fn endpoint_list(plan: &PortPlan, role: Role) -> String {
    let endpoints = plan.sets.get(&role).map(Vec::as_slice).unwrap_or_default();
    endpoints.iter().map(|e| e.socket_addr().to_string()).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[path = "dataplane_tests.rs"]
mod tests;
