//! Listening sockets, bound on a port taken from the configured range (or chosen by the
//! kernel), with the options the relay needs.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::{AsRawFd, OwnedFd};

use kproxy_core::Protocol;
use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt, sockopt,
};

/// The accept queue of each TCP listener.
const BACKLOG: i32 = 4096;

/// A bound socket, ready to hand to the runtime.
#[derive(Debug)]
pub enum Bound {
    /// A listening TCP socket.
    Tcp(std::net::TcpListener),
    /// A UDP socket that reports each datagram's destination address.
    Udp(std::net::UdpSocket),
}

/// Hands out listener ports from a range, round and round, skipping taken ones.
#[derive(Debug, Clone)]
pub struct PortPicker {
    range: Option<RangeInclusive<u16>>,
    cursor: u16,
}

impl PortPicker {
    /// Ports from `range` (`None`: the kernel picks).
    pub fn new(range: Option<RangeInclusive<u16>>) -> Self {
        let cursor = range.as_ref().map_or(0, |r| *r.start());
        Self { range, cursor }
    }

    /// The ports to try, in order: the rest of the range from the cursor, then its start.
    fn candidates(&self) -> Box<dyn Iterator<Item = u16>> {
        match &self.range {
            None => Box::new(std::iter::once(0)),
            Some(r) => {
                let (start, end) = (*r.start(), *r.end());
                let cursor = self.cursor.clamp(start, end.max(start));
                Box::new((cursor..=end).chain(start..cursor))
            }
        }
    }
}

/// Binds a `protocol` socket on `ip` and a port from `picker`; returns it and the port.
pub fn bind_listener(protocol: Protocol, ip: IpAddr, picker: &mut PortPicker) -> io::Result<(Bound, u16)> {
    for port in picker.candidates() {
        match bind_one(protocol, SocketAddr::new(ip, port)) {
            Ok((bound, port)) => {
                picker.cursor = port.wrapping_add(1);
                return Ok((bound, port));
            }
            Err(Errno::EADDRINUSE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "every port of the listener port range is taken"))
}

/// Binds a `protocol` socket on exactly `address`; returns it and its port.
pub fn bind_at(protocol: Protocol, address: SocketAddr) -> io::Result<(Bound, u16)> {
    bind_one(protocol, address).map_err(io::Error::from)
}

fn bind_one(protocol: Protocol, addr: SocketAddr) -> Result<(Bound, u16), Errno> {
    let ipv6 = addr.is_ipv6();
    let domain = if ipv6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let kind = if protocol == Protocol::Udp { SockType::Datagram } else { SockType::Stream };
    let fd: OwnedFd = nix::sys::socket::socket(domain, kind, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    if ipv6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    match protocol {
        Protocol::Udp if ipv6 => setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?,
        Protocol::Udp => setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?,
        _ => setsockopt(&fd, sockopt::ReuseAddr, &true)?,
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    if protocol == Protocol::Udp {
        let socket = std::net::UdpSocket::from(fd);
        let port = socket.local_addr().map_err(|_| Errno::EINVAL)?.port();
        return Ok((Bound::Udp(socket), port));
    }
    listen(&fd, Backlog::new(BACKLOG)?)?;
    let listener = std::net::TcpListener::from(fd);
    let port = listener.local_addr().map_err(|_| Errno::EINVAL)?.port();
    Ok((Bound::Tcp(listener), port))
}

/// Raises the soft open-files limit to the hard one; returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_skips_taken_ports_and_moves_on() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = taken.local_addr().unwrap().port();
        // A range of the taken port and the next one.
        let mut picker = PortPicker::new(Some(p..=p.saturating_add(1)));
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        match bind_listener(Protocol::Tcp, localhost, &mut picker) {
            Ok((_bound, port)) => assert_eq!(port, p + 1),
            // The next port may be taken by someone else: then the range is exhausted.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse),
        }
    }

    #[test]
    fn without_range_the_kernel_picks() {
        let mut picker = PortPicker::new(None);
        let (bound, port) = bind_listener(Protocol::Udp, "::1".parse().unwrap(), &mut picker).unwrap();
        assert_ne!(port, 0);
        assert!(matches!(bound, Bound::Udp(_)));
    }

    #[test]
    fn candidates_wrap_around_from_the_cursor() {
        let mut picker = PortPicker::new(Some(100..=103));
        picker.cursor = 102;
        assert_eq!(picker.candidates().collect::<Vec<_>>(), [102, 103, 100, 101]);
        picker.cursor = 0;
        assert_eq!(picker.candidates().collect::<Vec<_>>(), [100, 101, 102, 103]);
    }
}
