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
use crate::nfnetlink::on_own_thread;

/// The name errors of this client carry.
const TOOL: &str = "ctnetlink";

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
        on_own_thread(TOOL, move || socket::udp_flows(netns.as_deref())).await
    }
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
        on_own_thread(TOOL, move || socket::delete_matching(netns.as_deref(), &filters)).await
    }
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
    //! The requests: one dump per family, one delete per matching flow.

    use super::wire;
    use super::{FlowFilter, TOOL, families};
    use crate::command::CommandError;
    use crate::nfnetlink::socket::Socket;
    use crate::nfnetlink::{End, errno_error};

    pub(super) fn udp_flows(netns: Option<&str>) -> Result<Vec<wire::Flow>, CommandError> {
        let mut socket = Socket::open(TOOL, netns)?;
        let mut flows = dump(&mut socket, wire::AF_INET)?;
        flows.extend(dump(&mut socket, wire::AF_INET6)?);
        flows.retain(|f| f.original.protocol == wire::IPPROTO_UDP);
        Ok(flows)
    }

    pub(super) fn delete_matching(netns: Option<&str>, filters: &[FlowFilter]) -> Result<[u64; 2], CommandError> {
        let mut socket = Socket::open(TOOL, netns)?;
        let mut deleted = [0; 2];
        for family in families(filters) {
            let index = usize::from(family == wire::AF_INET6);
            let flows = dump(&mut socket, family)?;
            for flow in flows.iter().filter(|f| filters.iter().any(|filter| f.matches(filter))) {
                let seq = socket.next_seq();
                socket.send(&wire::delete_request(&flow.original, family, seq))?;
                match socket.read_until_end(seq, |_, _| {})? {
                    End::Done | End::Error(0) => deleted[index] += 1,
                    // Gone already (it timed out, or another deleter won): what we wanted.
                    End::Error(wire::ENOENT) => {}
                    End::Error(errno) => return Err(errno_error(TOOL, "delete", errno)),
                }
            }
        }
        Ok(deleted)
    }

    fn dump(socket: &mut Socket, family: u8) -> Result<Vec<wire::Flow>, CommandError> {
        let seq = socket.next_seq();
        socket.send(&wire::dump_request(family, seq))?;
        let mut flows = Vec::new();
        let end = socket.read_until_end(seq, |kind, payload| wire::read_flow(kind, payload, &mut flows))?;
        match end {
            End::Done => Ok(flows),
            End::Error(errno) => Err(errno_error(TOOL, "dump", errno)),
        }
    }
}

#[cfg(test)]
#[path = "netlink_tests.rs"]
mod tests;
