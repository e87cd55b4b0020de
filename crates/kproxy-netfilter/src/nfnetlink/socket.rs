//! A blocking `NETLINK_NETFILTER` socket: open (in a named namespace), send, and read the
//! answers to one request; every byte is built and read by the caller.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send, socket,
};

use super::{End, io_error, read_replies};
use crate::command::CommandError;

/// How much one `recv` may read; the kernel fills dump batches up to a page or two.
const RECV_BUFFER: usize = 256 * 1024;

/// An open socket and the tool name its errors carry.
pub(crate) struct Socket {
    fd: OwnedFd,
    tool: &'static str,
    seq: u32,
}

impl Socket {
    /// Enters `netns` (when given: this thread stays there) and opens the socket.
    pub(crate) fn open(tool: &'static str, netns: Option<&str>) -> Result<Self, CommandError> {
        if let Some(name) = netns {
            let file = std::fs::File::open(format!("/var/run/netns/{name}")).map_err(|e| io_error(tool, e))?;
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| io_error(tool, e.into()))?;
        }
        let fd = socket(AddressFamily::Netlink, SockType::Raw, SockFlag::SOCK_CLOEXEC, SockProtocol::NetlinkNetFilter)
            .map_err(|e| io_error(tool, e.into()))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| io_error(tool, e.into()))?;
        Ok(Self { fd, tool, seq: 1 })
    }

    /// The sequence number of the next request.
    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// Sends one request.
    pub(crate) fn send(&self, message: &[u8]) -> Result<(), CommandError> {
        send(self.fd.as_raw_fd(), message, MsgFlags::empty()).map(drop).map_err(|e| io_error(self.tool, e.into()))
    }

    /// Reads the answers to request `seq` until its end (a dump's DONE, or an ACK/error),
    /// handing each message to `on_message`.
    pub(crate) fn read_until_end(&self, seq: u32, mut on_message: impl FnMut(u16, &[u8])) -> Result<End, CommandError> {
        let mut buffer = vec![0u8; RECV_BUFFER];
        loop {
            let n =
                recv(self.fd.as_raw_fd(), &mut buffer, MsgFlags::empty()).map_err(|e| io_error(self.tool, e.into()))?;
            if let Some(end) = read_replies(&buffer[..n], seq, &mut on_message) {
                return Ok(end);
            }
        }
    }
}
