//! Conntrack over netlink (`NETLINK_NETFILTER`, ctnetlink), no `conntrack` binary: the
//! flows of one family are dumped once, those a [`FlowFilter`] matches are deleted by their
//! original tuple, as upstream kube-proxy does since it dropped the CLI (kubernetes#126847).
//!
//! The messages are built and read by the pure functions here ([`dump_request`],
//! [`parse_messages`], [`delete_request`]); [`NetlinkConntrack`] only moves bytes through a
//! socket, on a thread of its own (inside a named network namespace when given one).

use std::net::IpAddr;

mod wire;

pub use wire::{Flow, Tuple};

use super::{Conntrack, FlowFilter};
use crate::command::CommandError;

/// Deletes conntrack flows through a ctnetlink socket.
#[derive(Debug, Clone, Default)]
pub struct NetlinkConntrack {
    netns: Option<String>,
}

impl NetlinkConntrack {
    /// Flows of `netns` (`None`: the namespace of the calling thread).
    pub fn new(netns: Option<String>) -> Self {
        Self { netns }
    }
}

impl NetlinkConntrack {
    /// Every UDP flow of both families (for tests and diagnostics).
    pub async fn udp_flows(&self) -> Result<Vec<Flow>, CommandError> {
        let netns = self.netns.clone();
        on_own_thread(move || socket::udp_flows(netns.as_deref())).await
    }
}

/// Runs `work` on a thread of its own (entering a namespace changes the calling thread
/// for good) and waits for it.
async fn on_own_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CommandError> + Send + 'static,
) -> Result<T, CommandError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("kproxy-conntrack".to_owned())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(io_error)?;
    rx.await.map_err(|_| io_error(std::io::Error::other("conntrack thread died")))?
}

impl Flow {
    /// Whether `filter` selects this flow: UDP, sent to the filter's service address (any
    /// when `None`) and port, answered by its endpoint.
    pub fn matches(&self, filter: &FlowFilter) -> bool {
        self.original.protocol == wire::IPPROTO_UDP
            && self.original.dst_port == filter.port
            && filter.service.is_none_or(|s| s == self.original.dst)
            && self.reply.src == filter.endpoint
    }
}

#[async_trait::async_trait]
impl Conntrack for NetlinkConntrack {
    async fn delete_udp_flows(&self, filter: &FlowFilter) -> Result<u64, CommandError> {
        Ok(self.delete_udp_flows_matching(std::slice::from_ref(filter)).await?.iter().sum())
    }

    async fn delete_udp_flows_matching(&self, filters: &[FlowFilter]) -> Result<[u64; 2], CommandError> {
        if filters.is_empty() {
            return Ok([0; 2]);
        }
        let netns = self.netns.clone();
        let filters = filters.to_vec();
        on_own_thread(move || socket::delete_matching(netns.as_deref(), &filters)).await
    }
}

fn io_error(source: std::io::Error) -> CommandError {
    CommandError::Io { tool: "ctnetlink".to_owned(), source }
}

/// The families to dump for `filters`.
fn families(filters: &[FlowFilter]) -> Vec<u8> {
    let mut out = Vec::new();
    for filter in filters {
        let family = match filter.endpoint {
            IpAddr::V4(_) => wire::AF_INET,
            IpAddr::V6(_) => wire::AF_INET6,
        };
        if !out.contains(&family) {
            out.push(family);
        }
    }
    out
}

mod socket {
    //! The socket side: open, send, receive; every byte is built and read by `wire`.

    use std::os::fd::{AsRawFd, OwnedFd};

    use nix::sys::socket::{
        AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send, socket,
    };

    use super::wire::{self, Reply};
    use super::{FlowFilter, families, io_error};
    use crate::command::CommandError;

    /// How much one `recv` may read; the kernel fills dump batches up to a page or two.
    const RECV_BUFFER: usize = 256 * 1024;

    pub(super) fn udp_flows(netns: Option<&str>) -> Result<Vec<wire::Flow>, CommandError> {
        if let Some(name) = netns {
            enter(name)?;
        }
        let fd = open()?;
        let mut seq = 1;
        let mut flows = dump(&fd, wire::AF_INET, &mut seq)?;
        flows.extend(dump(&fd, wire::AF_INET6, &mut seq)?);
        flows.retain(|f| f.original.protocol == wire::IPPROTO_UDP);
        Ok(flows)
    }

    pub(super) fn delete_matching(netns: Option<&str>, filters: &[FlowFilter]) -> Result<[u64; 2], CommandError> {
        if let Some(name) = netns {
            enter(name)?;
        }
        let fd = open()?;
        let mut seq = 1;
        let mut deleted = [0; 2];
        for family in families(filters) {
            let index = usize::from(family == wire::AF_INET6);
            let flows = dump(&fd, family, &mut seq)?;
            for flow in flows.iter().filter(|f| filters.iter().any(|filter| f.matches(filter))) {
                seq += 1;
                send_all(&fd, &wire::delete_request(&flow.original, family, seq))?;
                match read_until_done(&fd, seq)? {
                    Reply::Done(_) | Reply::Error(0) => deleted[index] += 1,
                    // Gone already (it timed out, or another deleter won): what we wanted.
                    Reply::Error(wire::ENOENT) => {}
                    Reply::Error(errno) => return Err(errno_error("delete", errno)),
                }
            }
        }
        Ok(deleted)
    }

    fn enter(name: &str) -> Result<(), CommandError> {
        let file = std::fs::File::open(format!("/var/run/netns/{name}")).map_err(io_error)?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| io_error(e.into()))
    }

    fn open() -> Result<OwnedFd, CommandError> {
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(|e| io_error(e.into()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| io_error(e.into()))?;
        Ok(fd)
    }

    fn send_all(fd: &OwnedFd, message: &[u8]) -> Result<(), CommandError> {
        send(fd.as_raw_fd(), message, MsgFlags::empty()).map(drop).map_err(|e| io_error(e.into()))
    }

    fn dump(fd: &OwnedFd, family: u8, seq: &mut u32) -> Result<Vec<wire::Flow>, CommandError> {
        *seq += 1;
        send_all(fd, &wire::dump_request(family, *seq))?;
        match read_until_done(fd, *seq)? {
            Reply::Done(flows) => Ok(flows),
            Reply::Error(errno) => Err(errno_error("dump", errno)),
        }
    }

    /// Reads the answers to request `seq` until its end (a dump's DONE, or an ACK/error).
    fn read_until_done(fd: &OwnedFd, seq: u32) -> Result<Reply, CommandError> {
        let mut buffer = vec![0u8; RECV_BUFFER];
        let mut flows = Vec::new();
        loop {
            let n = recv(fd.as_raw_fd(), &mut buffer, MsgFlags::empty()).map_err(|e| io_error(e.into()))?;
            match wire::parse_messages(&buffer[..n], seq, &mut flows) {
                Some(Reply::Done(_)) => return Ok(Reply::Done(flows)),
                Some(error) => return Ok(error),
                None => continue,
            }
        }
    }

    fn errno_error(step: &str, errno: i32) -> CommandError {
        let source = std::io::Error::from_raw_os_error(errno);
        CommandError::Failed {
            tool: format!("ctnetlink {step}"),
            status: format!("errno {errno}"),
            stderr: source.to_string(),
        }
    }
}

#[cfg(test)]
#[path = "netlink_tests.rs"]
mod tests;
