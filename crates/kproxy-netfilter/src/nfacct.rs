//! Named packet counters of the kernel's extended accounting (nfacct, `nfnetlink_acct`),
//! which iptables rules feed with `-m nfacct --nfacct-name NAME`. Upstream kube-proxy keeps
//! two in iptables mode and exposes them as metrics; [`NetlinkNfacct`] creates and reads
//! them over netlink (no `nfacct` binary), [`FakeNfacct`] stands in for it in tests.

mod wire;

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::command::CommandError;
use crate::nfnetlink::on_own_thread;

/// The name errors of this client carry.
const TOOL: &str = "nfacct";

/// upstream's counter of packets dropped for being in conntrack state INVALID.
pub const CT_STATE_INVALID_DROPPED: &str = "ct_state_invalid_dropped_pkts";
/// upstream's counter of packets accepted for a NodePort on 127.0.0.0/8.
pub const LOCALHOST_NODEPORTS_ACCEPTED: &str = "localhost_nps_accepted_pkts";

/// Creates and reads nfacct counters (of one network namespace).
#[async_trait::async_trait]
pub trait Nfacct: Send + Sync {
    /// Creates the counter `name` unless it exists (its count is kept).
    async fn ensure(&self, name: &str) -> Result<(), CommandError>;

    /// The packets `name` counted; `None` when there is no such counter.
    async fn packets(&self, name: &str) -> Result<Option<u64>, CommandError>;

    /// Deletes the counter `name`; `false` when it is gone already or a rule still uses it.
    async fn delete(&self, name: &str) -> Result<bool, CommandError>;
}

/// nfacct over a netlink socket.
#[derive(Debug, Clone, Default)]
pub struct NetlinkNfacct {
    netns: Option<String>,
}

impl NetlinkNfacct {
    /// Counters of `netns` (`None`: the namespace of the calling thread).
    pub fn new(netns: Option<String>) -> Self {
        Self { netns }
    }
}

#[async_trait::async_trait]
impl Nfacct for NetlinkNfacct {
    async fn ensure(&self, name: &str) -> Result<(), CommandError> {
        let (netns, name) = (self.netns.clone(), name.to_owned());
        on_own_thread(TOOL, move || socket::ensure(netns.as_deref(), &name)).await
    }

    async fn packets(&self, name: &str) -> Result<Option<u64>, CommandError> {
        let (netns, name) = (self.netns.clone(), name.to_owned());
        on_own_thread(TOOL, move || socket::packets(netns.as_deref(), &name)).await
    }

    async fn delete(&self, name: &str) -> Result<bool, CommandError> {
        let (netns, name) = (self.netns.clone(), name.to_owned());
        on_own_thread(TOOL, move || socket::delete(netns.as_deref(), &name)).await
    }
}

mod socket {
    //! The requests: get one counter, create one.

    use super::{TOOL, wire};
    use crate::command::CommandError;
    use crate::nfnetlink::socket::Socket;
    use crate::nfnetlink::{End, errno_error};

    const ENOENT: i32 = 2;
    const EBUSY: i32 = 16;
    const EEXIST: i32 = 17;

    pub(super) fn packets(netns: Option<&str>, name: &str) -> Result<Option<u64>, CommandError> {
        let mut socket = Socket::open(TOOL, netns)?;
        get(&mut socket, name)
    }

    pub(super) fn ensure(netns: Option<&str>, name: &str) -> Result<(), CommandError> {
        let mut socket = Socket::open(TOOL, netns)?;
        if get(&mut socket, name)?.is_some() {
            return Ok(());
        }
        let seq = socket.next_seq();
        socket.send(&wire::new_request(name, seq))?;
        match socket.read_until_end(seq, |_, _| {})? {
            // Created, or created by someone else in between: there it is.
            End::Done | End::Error(0 | EBUSY | EEXIST) => Ok(()),
            End::Error(errno) => Err(errno_error(TOOL, "new", errno)),
        }
    }

    pub(super) fn delete(netns: Option<&str>, name: &str) -> Result<bool, CommandError> {
        let mut socket = Socket::open(TOOL, netns)?;
        let seq = socket.next_seq();
        socket.send(&wire::delete_request(name, seq))?;
        match socket.read_until_end(seq, |_, _| {})? {
            End::Done | End::Error(0) => Ok(true),
            End::Error(ENOENT | EBUSY) => Ok(false),
            End::Error(errno) => Err(errno_error(TOOL, "delete", errno)),
        }
    }

    fn get(socket: &mut Socket, name: &str) -> Result<Option<u64>, CommandError> {
        let seq = socket.next_seq();
        socket.send(&wire::get_request(name, seq))?;
        let mut packets = None;
        let end = socket.read_until_end(seq, |kind, payload| {
            if let Some(counter) = wire::read_counter(kind, payload).filter(|c| c.name == name) {
                packets = Some(counter.packets);
            }
        })?;
        match end {
            End::Done | End::Error(0) => Ok(packets),
            End::Error(ENOENT) => Ok(None),
            End::Error(errno) => Err(errno_error(TOOL, "get", errno)),
        }
    }
}

/// In-memory counters: what [`Nfacct`] calls did, and counts a test sets.
#[derive(Debug, Default)]
pub struct FakeNfacct {
    counters: Mutex<BTreeMap<String, u64>>,
    refuse: bool,
}

impl FakeNfacct {
    /// Counters that cannot be created (a kernel without nfacct).
    pub fn refusing() -> Self {
        Self { refuse: true, ..Self::default() }
    }

    /// Counts `packets` more on `name` (which must exist).
    pub fn count(&self, name: &str, packets: u64) {
        if let Some(count) = self.lock().get_mut(name) {
            *count += packets;
        }
    }

    /// The names of the counters that exist.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.counters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Nfacct for FakeNfacct {
    async fn ensure(&self, name: &str) -> Result<(), CommandError> {
        if self.refuse {
            let source = std::io::Error::from_raw_os_error(95);
            return Err(CommandError::Io { tool: TOOL.to_owned(), source });
        }
        self.lock().entry(name.to_owned()).or_default();
        Ok(())
    }

    async fn packets(&self, name: &str) -> Result<Option<u64>, CommandError> {
        Ok(self.lock().get(name).copied())
    }

    async fn delete(&self, name: &str) -> Result<bool, CommandError> {
        Ok(self.lock().remove(name).is_some())
    }
}

#[cfg(test)]
#[path = "nfacct_tests.rs"]
mod tests;
