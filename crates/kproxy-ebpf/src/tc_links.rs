//! The tc programs' links: one per interface, attached through tcx (Linux ≥ 6.6, pinned
//! like the cgroup links as `tc-<interface>`) or, on older kernels, a clsact qdisc
//! (not pinned: those filters go with the process).
//!
//! Every sync brings the links in line with the chosen [`TcAttachment`]: new interfaces
//! (a pod's veth) get their program, interfaces gone or changed lose it. A link a previous
//! kproxy pinned for an interface is kept when it runs the same program on this version's
//! maps (see [`crate::pins`]); otherwise a new link is attached next to it before it is
//! unpinned. Pinned links of interfaces no longer chosen are unpinned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aya::Ebpf;
use aya::programs::SchedClassifier;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{SchedClassifierLinkId, TcAttachType, qdisc_add_clsact};
use aya::util::KernelVersion;

use crate::interfaces::TcAttachment;
use crate::kernel::{KernelError, chain, unpin};
use crate::pins;

/// The tc program for external interfaces.
pub const INGRESS: &str = "kp_tc_ingress";
/// The tc program for the pods' side.
pub const REPLY: &str = "kp_tc_reply";
/// Both, in load order.
pub const TC_PROGRAMS: [&str; 2] = [INGRESS, REPLY];
/// Prefix of the tc links' pin names.
const PIN_PREFIX: &str = "tc-";

/// How one link is held.
enum Held {
    /// A tcx link; it detaches when dropped.
    Fd(FdLink),
    /// A tcx link pinned at the path: detached by unpinning.
    Pinned(PinnedLink, PathBuf),
    /// A netlink filter, owned by the program.
    Netlink(SchedClassifierLinkId),
}

/// One attached interface.
struct Attached {
    program: &'static str,
    ifindex: u32,
    held: Held,
}

/// The tc links of this process, by interface name.
#[derive(Default)]
pub struct TcLinks {
    by_interface: BTreeMap<String, Attached>,
}

impl std::fmt::Debug for TcLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_interface.iter().map(|(name, a)| (name, a.program))).finish()
    }
}

/// Whether the kernel has tcx (6.6).
fn has_tcx() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut SchedClassifier, KernelError> {
    ebpf.program_mut(name)
        .ok_or_else(|| KernelError::fatal("find program", name))?
        .try_into()
        .map_err(|e| KernelError::fatal("program type", e))
}

/// Loads the tc programs of `ebpf`.
pub fn load(ebpf: &mut Ebpf) -> Result<(), KernelError> {
    for name in TC_PROGRAMS {
        program(ebpf, name)?
            .load()
            .map_err(|e| KernelError::fatal("load program", format!("{name}: {}", chain(&e))))?;
    }
    Ok(())
}

impl TcLinks {
    /// Attaches and detaches so that exactly `wanted` holds; with `pin_dir`, links pinned
    /// there whose programs use the maps `map_ids` (this version's) are kept.
    pub fn sync(
        &mut self,
        ebpf: &mut Ebpf,
        wanted: &TcAttachment,
        pin_dir: Option<&Path>,
        map_ids: Option<&[u32]>,
    ) -> Result<(), KernelError> {
        let mut target: BTreeMap<&str, &'static str> = BTreeMap::new();
        target.extend(wanted.external.iter().map(|n| (n.as_str(), INGRESS)));
        target.extend(wanted.pod_side.iter().map(|n| (n.as_str(), REPLY)));
        let current: Vec<String> = self.by_interface.keys().cloned().collect();
        for name in current {
            let keep = target.get(name.as_str()).is_some_and(|program| {
                let attached = &self.by_interface[&name];
                attached.program == *program && ifindex(&name) == Some(attached.ifindex)
            });
            if !keep && let Some(attached) = self.by_interface.remove(&name) {
                detach(ebpf, attached);
            }
        }
        let mut first_error = None;
        for (name, program) in target {
            if self.by_interface.contains_key(name) {
                continue;
            }
            let kept = match (pin_dir, map_ids) {
                (Some(dir), Some(ids)) if has_tcx() => keep(dir, name, program, ids),
                _ => None,
            };
            if let Some(kept) = kept {
                self.by_interface.insert(name.to_owned(), kept);
                continue;
            }
            // An interface may vanish between listing and attaching (a pod deleted).
            match attach(ebpf, name, program, pin_dir) {
                Ok(attached) => {
                    self.by_interface.insert(name.to_owned(), attached);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(dir) = pin_dir {
            // A previous kproxy's link on an interface that failed to attach stays for now.
            let chosen = |name: &str| wanted.external.iter().chain(&wanted.pod_side).any(|w| w == name);
            unpin_except(dir, chosen)?;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Detaches everything this process attached.
    pub fn clear(&mut self, ebpf: Option<&mut Ebpf>) {
        let links = std::mem::take(&mut self.by_interface);
        match ebpf {
            Some(ebpf) => links.into_values().for_each(|a| detach(ebpf, a)),
            None => links.into_values().for_each(|a| drop_held(a.held)),
        }
    }
}

fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

/// The link pinned in `dir` for interface `name`, when it runs `program` on the maps
/// `map_ids` there now.
fn keep(dir: &Path, name: &str, program: &'static str, map_ids: &[u32]) -> Option<Attached> {
    let path = dir.join(format!("{PIN_PREFIX}{name}"));
    let id = pins::linked_program(&path)?;
    let (_, running) = SchedClassifier::query_tcx(name, TcAttachType::Ingress).ok()?;
    if !running.iter().any(|info| info.id() == id && pins::uses(info, program, map_ids)) {
        return None;
    }
    let ifindex = ifindex(name)?;
    let link = PinnedLink::from_pin(&path).ok()?;
    Some(Attached { program, ifindex, held: Held::Pinned(link, path) })
}

fn attach(
    ebpf: &mut Ebpf,
    name: &str,
    program_name: &'static str,
    pin_dir: Option<&Path>,
) -> Result<Attached, KernelError> {
    let index = ifindex(name).ok_or_else(|| KernelError::transient("find interface", name))?;
    let tcx = has_tcx();
    if !tcx {
        // A clsact qdisc that is already there is fine.
        let _ = qdisc_add_clsact(name);
    }
    let program = program(ebpf, program_name)?;
    let id = program
        .attach(name, TcAttachType::Ingress)
        .map_err(|e| KernelError::transient("attach tc", format!("{program_name} on {name}: {}", chain(&e))))?;
    if !tcx {
        return Ok(Attached { program: program_name, ifindex: index, held: Held::Netlink(id) });
    }
    let link = program.take_link(id).map_err(|e| KernelError::transient("take link", e))?;
    let link = FdLink::try_from(link).map_err(|e| KernelError::transient("tcx link", e))?;
    let Some(dir) = pin_dir else {
        return Ok(Attached { program: program_name, ifindex: index, held: Held::Fd(link) });
    };
    let path = dir.join(format!("{PIN_PREFIX}{name}"));
    unpin(&path)?;
    let pinned = link.pin(&path).map_err(|e| KernelError::transient("pin link", chain(&e)))?;
    Ok(Attached { program: program_name, ifindex: index, held: Held::Pinned(pinned, path) })
}

fn detach(ebpf: &mut Ebpf, attached: Attached) {
    if let Held::Netlink(id) = attached.held {
        if let Ok(program) = program(ebpf, attached.program)
            && let Err(e) = program.detach(id)
        {
            tracing::warn!(program = attached.program, error = %e, "detaching a tc filter failed");
        }
        return;
    }
    drop_held(attached.held);
}

fn drop_held(held: Held) {
    match held {
        Held::Fd(link) => drop(link),
        Held::Pinned(link, path) => {
            drop(link);
            if let Err(e) = unpin(&path) {
                tracing::warn!(path = %path.display(), error = %e, "unpinning a tc link failed");
            }
        }
        // Owned by the program: detached when the programs are dropped.
        Held::Netlink(_) => {}
    }
}

/// Removes every pinned tc link in `dir` (ours or a previous kproxy's).
pub fn unpin_all(dir: &Path) -> Result<(), KernelError> {
    unpin_except(dir, |_| false)
}

/// Removes the pinned tc links in `dir` of the interfaces `keep` does not name.
fn unpin_except(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<(), KernelError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(interface) = name.to_str().and_then(|n| n.strip_prefix(PIN_PREFIX)) else { continue };
        if !keep(interface) {
            unpin(&entry.path())?;
        }
    }
    Ok(())
}
