//! One request to a pod's server, and what came of it.
//!
//! Every pod server answers each request (a TCP connection, a UDP datagram or an SCTP
//! association) with one line, `<pod-name> <peer-ip>:<peer-port>`: which pod answered and the
//! source address it saw. The functions here block (with a bound on every step) and are
//! meant to run on a thread inside the client's namespace; see [`crate::Harness`] for the
//! async versions.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage, connect, socket};

/// The answer of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The pod that answered.
    pub pod: String,
    /// The source address the pod saw (IPv4-mapped addresses shown as IPv4).
    pub source: SocketAddr,
}

/// Why a request got no reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Refused at once: a TCP reset or an ICMP unreachable (the error text says which).
    Refused(String),
    /// Nothing came back before the timeout: the traffic was dropped.
    TimedOut,
    /// Anything else: a bad reply, a reset after connecting, a local error.
    Failed(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Refused(why) => write!(f, "refused ({why})"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Failed(why) => write!(f, "failed ({why})"),
        }
    }
}

impl std::error::Error for Outcome {}

/// The line a pod server sends to `peer`.
pub fn reply_line(pod: &str, peer: SocketAddr) -> String {
    format!("{pod} {}\n", SocketAddr::new(peer.ip().to_canonical(), peer.port()))
}

/// Parses a pod server's line.
pub fn parse_reply(text: &str) -> Result<Reply, Outcome> {
    let bad = || Outcome::Failed(format!("malformed reply {text:?}"));
    let (pod, source) = text.trim_end().split_once(' ').ok_or_else(bad)?;
    let source: SocketAddr = source.parse().map_err(|_| bad())?;
    if pod.is_empty() {
        return Err(bad());
    }
    Ok(Reply { pod: pod.to_owned(), source })
}

fn classify(error: &io::Error) -> Outcome {
    match error.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            Outcome::Refused(error.to_string())
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Outcome::TimedOut,
        _ => Outcome::Failed(error.to_string()),
    }
}

/// Sends one line on a connected stream and reads the reply, each step bounded by `timeout`.
fn exchange(mut stream: TcpStream, timeout: Duration) -> Result<Reply, Outcome> {
    let failed = |step: &str, e: io::Error| Outcome::Failed(format!("{step} after connecting: {e}"));
    stream.set_read_timeout(Some(timeout)).map_err(|e| failed("set timeout", e))?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| failed("set timeout", e))?;
    stream.write_all(b"ping\n").map_err(|e| failed("write", e))?;
    let mut text = String::new();
    stream.take(512).read_to_string(&mut text).map_err(|e| failed("read", e))?;
    parse_reply(&text)
}

/// One TCP connection to `addr`.
pub fn tcp(addr: SocketAddr, timeout: Duration) -> Result<Reply, Outcome> {
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| classify(&e))?;
    exchange(stream, timeout)
}

/// One UDP datagram to `addr` from `local_port` (0: any), and its answer.
pub fn udp(addr: SocketAddr, local_port: u16, timeout: Duration) -> Result<Reply, Outcome> {
    let any: IpAddr = if addr.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let failed = |step: &str, e: io::Error| Outcome::Failed(format!("udp {step}: {e}"));
    let socket = bind_udp(SocketAddr::new(any, local_port)).map_err(|e| failed("bind", e))?;
    // Connected, so that an ICMP unreachable comes back as an error.
    socket.connect(addr).map_err(|e| classify(&e))?;
    socket.set_read_timeout(Some(timeout)).map_err(|e| failed("set timeout", e))?;
    socket.send(b"ping\n").map_err(|e| classify(&e))?;
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).map_err(|e| classify(&e))?;
    parse_reply(&String::from_utf8_lossy(&buf[..n]))
}

/// How long a fixed source port may stay taken by the previous request's socket.
const REBIND_PATIENCE: Duration = Duration::from_secs(2);

/// Binds a UDP socket to `local`. A fixed port is retried for a short while: the socket of the
/// previous request with that port can outlive its close for a moment, when another thread of
/// the process forked a child (`ip netns exec …`) that holds a copy of the descriptor until it
/// calls exec.
fn bind_udp(local: SocketAddr) -> io::Result<UdpSocket> {
    let start = std::time::Instant::now();
    loop {
        match UdpSocket::bind(local) {
            Err(e)
                if e.kind() == io::ErrorKind::AddrInUse && local.port() != 0 && start.elapsed() < REBIND_PATIENCE =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Whether this kernel can make SCTP sockets (checked without loading any module).
pub fn sctp_available() -> bool {
    std::path::Path::new("/proc/sys/net/sctp").exists()
}

/// A new SCTP one-to-one (stream) socket, IPv4 or IPv6.
pub(crate) fn sctp_socket(ipv4: bool) -> nix::Result<std::os::fd::OwnedFd> {
    let family = if ipv4 { AddressFamily::Inet } else { AddressFamily::Inet6 };
    socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, SockProtocol::Sctp)
}

/// One SCTP association to `addr`.
pub fn sctp(addr: SocketAddr, timeout: Duration) -> Result<Reply, Outcome> {
    let fd = sctp_socket(addr.is_ipv4()).map_err(|e| Outcome::Failed(format!("sctp socket: {e}")))?;
    let stream = TcpStream::from(fd);
    // SO_SNDTIMEO also bounds a blocking connect.
    stream.set_write_timeout(Some(timeout)).map_err(|e| Outcome::Failed(format!("sctp set timeout: {e}")))?;
    match connect(stream.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => exchange(stream, timeout),
        Err(Errno::ECONNREFUSED | Errno::EHOSTUNREACH | Errno::ENETUNREACH) => {
            Err(Outcome::Refused("sctp connect refused".to_owned()))
        }
        Err(Errno::EINPROGRESS | Errno::EAGAIN | Errno::ETIMEDOUT) => Err(Outcome::TimedOut),
        Err(e) => Err(Outcome::Failed(format!("sctp connect: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_round_trips_and_maps_ipv4() {
        let peer: SocketAddr = "[::ffff:10.0.1.10]:40000".parse().unwrap();
        let line = reply_line("pod1a", peer);
        assert_eq!(line, "pod1a 10.0.1.10:40000\n");
        let reply = parse_reply(&line).unwrap();
        assert_eq!(reply, Reply { pod: "pod1a".into(), source: "10.0.1.10:40000".parse().unwrap() });
        let v6 = parse_reply(&reply_line("pod2b", "[fd00:10:1::10]:5".parse().unwrap())).unwrap();
        assert_eq!(v6.source, "[fd00:10:1::10]:5".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn malformed_replies_fail() {
        for text in ["", "pod1a", "pod1a nonsense", " 10.0.0.1:1"] {
            assert!(matches!(parse_reply(text), Err(Outcome::Failed(_))), "{text:?}");
        }
    }
}
