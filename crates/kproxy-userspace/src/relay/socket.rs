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

/// Bound sockets, ready to hand to the runtime.
#[derive(Debug)]
pub enum Bound {
    /// Listening TCP sockets on one address, one per worker (`SO_REUSEPORT` when there
    /// are several). They set `TCP_NODELAY`, which the connections they accept inherit.
    Tcp(Vec<std::net::TcpListener>),
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

/// Binds a `protocol` listener on `ip` and a port from `picker` (TCP: `copies` sockets);
/// returns it and the port.
pub fn bind_listener(
    protocol: Protocol,
    ip: IpAddr,
    picker: &mut PortPicker,
    copies: usize,
) -> io::Result<(Bound, u16)> {
    for port in picker.candidates() {
        match bind_one(protocol, SocketAddr::new(ip, port), copies) {
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

/// Binds a `protocol` listener on exactly `address` (TCP: `copies` sockets); returns it
/// and its port.
pub fn bind_at(protocol: Protocol, address: SocketAddr, copies: usize) -> io::Result<(Bound, u16)> {
    bind_one(protocol, address, copies).map_err(io::Error::from)
}

fn bind_one(protocol: Protocol, addr: SocketAddr, copies: usize) -> Result<(Bound, u16), Errno> {
    if protocol != Protocol::Udp {
        return bind_tcp(addr, copies);
    }
    let fd = new_socket(addr, SockType::Datagram)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let socket = std::net::UdpSocket::from(fd);
    let port = socket.local_addr().map_err(|_| Errno::EINVAL)?.port();
    Ok((Bound::Udp(socket), port))
}

/// `copies` listening sockets on `addr`. The first is bound without `SO_REUSEPORT`, so it
/// takes the port only if nobody holds it (not even another process's `SO_REUSEPORT`
/// group); the option is set after, and the copies join that group alone.
fn bind_tcp(addr: SocketAddr, copies: usize) -> Result<(Bound, u16), Errno> {
    let first = tcp_listener(addr, false)?;
    let port = first.local_addr().map_err(|_| Errno::EINVAL)?.port();
    let mut listeners = vec![first];
    if copies > 1 {
        setsockopt(&listeners[0], sockopt::ReusePort, &true)?;
        let shared = SocketAddr::new(addr.ip(), port);
        for _ in 1..copies {
            listeners.push(tcp_listener(shared, true)?);
        }
    }
    for listener in &listeners {
        listen(listener, Backlog::new(BACKLOG)?)?;
    }
    Ok((Bound::Tcp(listeners), port))
}

/// A TCP socket bound on `addr`, not yet listening.
fn tcp_listener(addr: SocketAddr, reuse_port: bool) -> Result<std::net::TcpListener, Errno> {
    let fd = new_socket(addr, SockType::Stream)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    // A relay must not add Nagle delays; accepted connections inherit the option.
    setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(std::net::TcpListener::from(fd))
}

/// A non-blocking socket of `addr`'s family (IPv6 sockets: IPv6 only).
fn new_socket(addr: SocketAddr, kind: SockType) -> Result<OwnedFd, Errno> {
    let domain = if addr.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let fd: OwnedFd = nix::sys::socket::socket(domain, kind, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    Ok(fd)
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
        match bind_listener(Protocol::Tcp, localhost, &mut picker, 1) {
            Ok((_bound, port)) => assert_eq!(port, p + 1),
            // The next port may be taken by someone else: then the range is exhausted.
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::AddrInUse),
        }
    }

    #[test]
    fn without_range_the_kernel_picks() {
        let mut picker = PortPicker::new(None);
        let (bound, port) = bind_listener(Protocol::Udp, "::1".parse().unwrap(), &mut picker, 2).unwrap();
        assert_ne!(port, 0);
        assert!(matches!(bound, Bound::Udp(_)));
    }

    #[test]
    fn tcp_copies_share_one_port_and_accepted_connections_skip_nagle() {
        let mut picker = PortPicker::new(None);
        let (bound, port) = bind_listener(Protocol::Tcp, "127.0.0.1".parse().unwrap(), &mut picker, 3).unwrap();
        let Bound::Tcp(listeners) = bound else { panic!("a TCP listener") };
        assert_eq!(listeners.len(), 3);
        assert!(listeners.iter().all(|l| l.local_addr().unwrap().port() == port));
        // The kernel spreads connections over the copies; each accepted one has TCP_NODELAY.
        let clients: Vec<_> = (0..32).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        let mut accepted = 0;
        for listener in &listeners {
            while let Ok((stream, _)) = listener.accept() {
                assert!(nix::sys::socket::getsockopt(&stream, sockopt::TcpNoDelay).unwrap());
                accepted += 1;
            }
        }
        assert_eq!(accepted, clients.len());
    }

    #[test]
    fn a_port_held_by_another_reuse_port_group_is_not_joined() {
        let other = tcp_listener("127.0.0.1:0".parse().unwrap(), true).unwrap();
        listen(&other, Backlog::new(8).unwrap()).unwrap();
        let held = other.local_addr().unwrap();
        let error = bind_at(Protocol::Tcp, held, 2).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
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
