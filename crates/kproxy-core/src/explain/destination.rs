//! `Destination`: what `kproxy explain` is asked about, parsed from `ADDR:PORT[/PROTO]`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::names::Protocol;

/// A packet's destination: address, port and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Destination {
    /// The destination address.
    pub ip: IpAddr,
    /// The destination port.
    pub port: u16,
    /// The transport protocol.
    pub protocol: Protocol,
}

/// Why a destination or protocol does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid destination {input:?}: {reason} (expected ADDR:PORT[/PROTO], e.g. 172.30.0.41:80/tcp or [fd00::1]:53/udp)"
)]
pub struct ParseDestinationError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Destination {
    /// `ADDR:PORT` with `protocol`.
    pub fn new(addr: SocketAddr, protocol: Protocol) -> Self {
        Self { ip: addr.ip(), port: addr.port(), protocol }
    }

    /// The destination as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// Parses a protocol name in any case: `tcp`, `UDP`, `sctp`.
pub fn parse_protocol(text: &str) -> Result<Protocol, crate::names::UnknownProtocol> {
    text.to_ascii_uppercase().parse().map_err(|_| crate::names::UnknownProtocol(text.to_owned()))
}

impl FromStr for Destination {
    type Err = ParseDestinationError;

    /// `ADDR:PORT[/PROTO]`: IPv6 addresses in brackets, the protocol `tcp` (default), `udp`
    /// or `sctp` in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| ParseDestinationError { input: s.to_owned(), reason: reason.to_owned() };
        let (addr, protocol) = match s.rsplit_once('/') {
            Some((addr, proto)) => (addr, parse_protocol(proto).map_err(|e| error(&e.to_string()))?),
            None => (s, Protocol::Tcp),
        };
        let addr: SocketAddr = addr.parse().map_err(|_| {
            if addr.parse::<IpAddr>().is_ok() { error("the port is missing") } else { error("not an address and port") }
        })?;
        Ok(Self::new(addr, protocol))
    }
}

impl fmt::Display for Destination {
    /// `ADDR:PORT/proto`, IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.socket_addr(), self.protocol.as_lower_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_address_port_and_protocol() {
        let d: Destination = "172.30.0.41:80".parse().expect("valid");
        assert_eq!((d.ip.to_string(), d.port, d.protocol), ("172.30.0.41".to_owned(), 80, Protocol::Tcp));
        let d: Destination = "[fd00::1]:53/UDP".parse().expect("valid");
        assert_eq!((d.ip.to_string(), d.port, d.protocol), ("fd00::1".to_owned(), 53, Protocol::Udp));
        assert_eq!("10.0.0.1:7/sctp".parse::<Destination>().map(|d| d.protocol), Ok(Protocol::Sctp));
        assert_eq!(d.to_string(), "[fd00::1]:53/udp");
    }

    #[test]
    fn refuses_what_is_not_a_destination() {
        for bad in ["", "172.30.0.41", "172.30.0.41:http", "fd00::1:53", "1.2.3.4:80/icmp", "host:80", "1.2.3.4:70000"]
        {
            let error = bad.parse::<Destination>().expect_err(bad);
            assert!(error.to_string().contains("ADDR:PORT"), "{error}");
        }
        let missing = "172.30.0.41".parse::<Destination>().expect_err("no port");
        assert!(missing.reason.contains("port is missing"), "{missing}");
    }
}
