//! The maps' keys and values as `#[repr(C)]` structs, matching `bpf/kproxy.h`.
//!
//! Every size and offset below is also asserted in the C header with the same number, so a
//! change to one side alone fails the build (C: `_Static_assert`, Rust: `const` asserts).
//! Addresses are four 32-bit words in network byte order, ports 16 bits in network byte
//! order (each stored as its in-memory bytes), `family` 4 or 6.
#![allow(unsafe_code, reason = "aya::Pod is an unsafe trait: these plain C structs have no padding and no pointers")]

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use kproxy_core::Protocol;

/// `kp_service.flags`: no endpoint anywhere, the connection is refused.
pub const SVC_REJECT: u32 = 1;
/// `kp_service.flags`: ClientIP session affinity.
pub const SVC_AFFINITY: u32 = 2;
/// `kp_service.flags` (tc): masquerade to `kp_external.snat` (traffic policy Cluster).
pub const SVC_SNAT: u32 = 4;
/// `kp_config.flags`: balance only sockets of the network namespaces in `kp_netns`.
pub const CFG_NETNS_FILTER: u32 = 1;

/// `struct kp_addr`: an address and port.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpAddr {
    /// The address, network byte order, IPv4 in word 0.
    pub addr: [u32; 4],
    /// The port, network byte order.
    pub port: u16,
    /// 4 or 6.
    pub family: u8,
    /// Zero.
    pub pad: u8,
}

/// `struct kp_service_key`: a service address, port and IP protocol.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpServiceKey {
    /// The address, network byte order, IPv4 in word 0.
    pub addr: [u32; 4],
    /// The port, network byte order.
    pub port: u16,
    /// The IP protocol number.
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
}

/// `struct kp_service`: endpoint slots `0..count` of service id `id`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KpService {
    /// The endpoint set's id.
    pub id: u32,
    /// How many slots are exposed.
    pub count: u32,
    /// [`SVC_REJECT`], [`SVC_AFFINITY`].
    pub flags: u32,
    /// The affinity timeout in seconds.
    pub affinity_secs: u32,
}

/// `struct kp_endpoint_key`: one slot of an endpoint set.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpEndpointKey {
    /// The endpoint set's id.
    pub service_id: u32,
    /// The slot.
    pub slot: u32,
}

/// `struct kp_revnat_key`: a socket and the endpoint it was sent to.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KpRevnatKey {
    /// The socket cookie.
    pub cookie: u64,
    /// The endpoint.
    pub endpoint: KpAddr,
    /// Zero.
    pub pad: u32,
}

/// `struct kp_affinity_key`: a client (network namespace) of an affine endpoint set.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpAffinityKey {
    /// The client's netns cookie.
    pub netns_cookie: u64,
    /// The endpoint set's id.
    pub service_id: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct kp_affinity`: the endpoint an affine client used last.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpAffinity {
    /// `bpf_ktime_get_ns` of the last use.
    pub last_used_ns: u64,
    /// The endpoint.
    pub endpoint: KpAddr,
    /// Its slot.
    pub slot: u32,
}

/// `struct kp_config`: global switches.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KpConfig {
    /// [`CFG_NETNS_FILTER`].
    pub flags: u32,
    /// Zero.
    pub pad: u32,
}

/// `struct kp_external`: a service address for traffic from outside the node (tc).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KpExternal {
    /// The endpoint set, flags (also [`SVC_SNAT`]) and affinity timeout.
    pub service: KpService,
    /// Nonzero: the source must be in `kp_ranges` under this id.
    pub ranges_id: u32,
    /// With [`SVC_SNAT`]: the node address to masquerade to, network byte order.
    pub snat: [u32; 4],
    /// Zero.
    pub pad: u32,
}

/// `struct kp_range_key`: an LPM key, a source range of one ranges id.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpRangeKey {
    /// 32 (the id) plus the range's prefix length.
    pub prefixlen: u32,
    /// The ranges id.
    pub ranges_id: u32,
    /// The range's address, network byte order, IPv4 in word 0.
    pub addr: [u32; 4],
}

/// `struct kp_ct_key`: a packet's tuple, one direction of a tracked flow.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpCtKey {
    /// Source address.
    pub saddr: [u32; 4],
    /// Destination address.
    pub daddr: [u32; 4],
    /// Source port, network byte order.
    pub sport: u16,
    /// Destination port, network byte order.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
    /// Zero.
    pub pad: u16,
}

/// `struct kp_ct`: what packets of a tracked flow are rewritten to.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpCt {
    /// The new source.
    pub src: KpAddr,
    /// The new destination.
    pub dst: KpAddr,
}

/// `struct kp_client_key`: a client address of an affine endpoint set (tc).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct KpClientKey {
    /// The client's address.
    pub addr: [u32; 4],
    /// The endpoint set's id.
    pub service_id: u32,
    /// 4 or 6.
    pub family: u32,
}

// SAFETY: each type is `#[repr(C)]`, `Copy`, made only of integers and arrays of integers,
// and has no implicit padding (the asserts below pin every size to the sum of its fields).
unsafe impl aya::Pod for KpAddr {}
// SAFETY: as above.
unsafe impl aya::Pod for KpServiceKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpService {}
// SAFETY: as above.
unsafe impl aya::Pod for KpEndpointKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpRevnatKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpAffinityKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpAffinity {}
// SAFETY: as above.
unsafe impl aya::Pod for KpConfig {}
// SAFETY: as above.
unsafe impl aya::Pod for KpExternal {}
// SAFETY: as above.
unsafe impl aya::Pod for KpRangeKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpCtKey {}
// SAFETY: as above.
unsafe impl aya::Pod for KpCt {}
// SAFETY: as above.
unsafe impl aya::Pod for KpClientKey {}

// The same numbers as the _Static_asserts of bpf/kproxy.h.
const _: () = {
    assert!(size_of::<KpAddr>() == 20);
    assert!(offset_of!(KpAddr, port) == 16);
    assert!(offset_of!(KpAddr, family) == 18);
    assert!(size_of::<KpServiceKey>() == 20);
    assert!(offset_of!(KpServiceKey, port) == 16);
    assert!(offset_of!(KpServiceKey, proto) == 18);
    assert!(offset_of!(KpServiceKey, family) == 19);
    assert!(size_of::<KpService>() == 16);
    assert!(offset_of!(KpService, count) == 4);
    assert!(offset_of!(KpService, flags) == 8);
    assert!(offset_of!(KpService, affinity_secs) == 12);
    assert!(size_of::<KpEndpointKey>() == 8);
    assert!(offset_of!(KpEndpointKey, slot) == 4);
    assert!(size_of::<KpRevnatKey>() == 32);
    assert!(offset_of!(KpRevnatKey, endpoint) == 8);
    assert!(size_of::<KpAffinityKey>() == 16);
    assert!(offset_of!(KpAffinityKey, service_id) == 8);
    assert!(size_of::<KpAffinity>() == 32);
    assert!(offset_of!(KpAffinity, endpoint) == 8);
    assert!(offset_of!(KpAffinity, slot) == 28);
    assert!(size_of::<KpConfig>() == 8);
    assert!(size_of::<KpExternal>() == 40);
    assert!(offset_of!(KpExternal, ranges_id) == 16);
    assert!(offset_of!(KpExternal, snat) == 20);
    assert!(size_of::<KpRangeKey>() == 24);
    assert!(offset_of!(KpRangeKey, ranges_id) == 4);
    assert!(offset_of!(KpRangeKey, addr) == 8);
    assert!(size_of::<KpCtKey>() == 40);
    assert!(offset_of!(KpCtKey, daddr) == 16);
    assert!(offset_of!(KpCtKey, sport) == 32);
    assert!(offset_of!(KpCtKey, dport) == 34);
    assert!(offset_of!(KpCtKey, proto) == 36);
    assert!(offset_of!(KpCtKey, family) == 37);
    assert!(size_of::<KpCt>() == 40);
    assert!(offset_of!(KpCt, dst) == 20);
    assert!(size_of::<KpClientKey>() == 24);
    assert!(offset_of!(KpClientKey, service_id) == 16);
    assert!(offset_of!(KpClientKey, family) == 20);
};

/// An address as four words in network byte order, and its family (4 or 6).
fn words(ip: IpAddr) -> ([u32; 4], u8) {
    match ip {
        IpAddr::V4(v4) => ([u32::from_ne_bytes(v4.octets()), 0, 0, 0], 4),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let word = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            ([word(0), word(4), word(8), word(12)], 6)
        }
    }
}

/// The IP protocol number of `protocol`.
pub fn ip_proto(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

impl KpAddr {
    /// `addr` in map form.
    pub fn new(addr: SocketAddr) -> Self {
        let (addr_words, family) = words(addr.ip());
        Self { addr: addr_words, port: addr.port().to_be(), family, pad: 0 }
    }

    /// Back to a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(ip_of(self.addr, self.family), u16::from_be(self.port))
    }
}

impl KpServiceKey {
    /// The key of `ip:port` over `protocol`.
    pub fn new(ip: IpAddr, port: u16, protocol: Protocol) -> Self {
        let (addr, family) = words(ip);
        Self { addr, port: port.to_be(), proto: ip_proto(protocol), family }
    }

    /// The service address as a socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(ip_of(self.addr, self.family), u16::from_be(self.port))
    }
}

impl KpExternal {
    /// The value for `service`, checking `ranges_id`'s ranges, masquerading to `snat`.
    pub fn new(service: KpService, ranges_id: u32, snat: Option<IpAddr>) -> Self {
        let snat = snat.map_or([0; 4], |ip| words(ip).0);
        Self { service, ranges_id, snat, pad: 0 }
    }
}

impl KpRangeKey {
    /// The key of source range `range` under `ranges_id`.
    pub fn new(ranges_id: u32, range: ipnet::IpNet) -> Self {
        let (addr, _) = words(range.network());
        Self { prefixlen: 32 + u32::from(range.prefix_len()), ranges_id, addr }
    }
}

fn ip_of(addr: [u32; 4], family: u8) -> IpAddr {
    if family == 4 {
        return Ipv4Addr::from(addr[0].to_ne_bytes()).into();
    }
    let mut octets = [0u8; 16];
    for (chunk, word) in octets.chunks_exact_mut(4).zip(addr) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    Ipv6Addr::from(octets).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_stored_in_network_order_in_the_first_word() {
        let key = KpServiceKey::new("10.96.0.1".parse().unwrap(), 80, Protocol::Tcp);
        assert_eq!(key.addr[0].to_ne_bytes(), [10, 96, 0, 1]);
        assert_eq!(key.addr[1..], [0, 0, 0]);
        assert_eq!(key.port.to_ne_bytes(), [0, 80]);
        assert_eq!((key.proto, key.family), (6, 4));
    }

    #[test]
    fn addresses_round_trip_in_both_families() {
        for text in ["10.0.1.10:8080", "[fd00:10:1::10]:53"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(KpAddr::new(addr).socket_addr(), addr);
            assert_eq!(KpServiceKey::new(addr.ip(), addr.port(), Protocol::Udp).socket_addr(), addr);
        }
        let v6 = KpAddr::new("[fd00::1]:1".parse().unwrap());
        assert_eq!(v6.addr[0].to_ne_bytes(), [0xfd, 0, 0, 0]);
        assert_eq!(v6.family, 6);
    }

    #[test]
    fn a_source_range_key_counts_the_id_in_its_prefix() {
        let key = KpRangeKey::new(7, "192.168.0.0/24".parse().unwrap());
        assert_eq!((key.prefixlen, key.ranges_id), (56, 7));
        assert_eq!(key.addr[0].to_ne_bytes(), [192, 168, 0, 0]);
        let v6 = KpRangeKey::new(7, "fd00::/8".parse().unwrap());
        assert_eq!(v6.prefixlen, 40);
    }

    #[test]
    fn an_external_value_carries_the_masquerade_address() {
        let value = KpExternal::new(KpService::default(), 3, Some("192.168.0.2".parse().unwrap()));
        assert_eq!(value.snat[0].to_ne_bytes(), [192, 168, 0, 2]);
        assert_eq!(value.ranges_id, 3);
        assert_eq!(KpExternal::new(KpService::default(), 0, None).snat, [0; 4]);
    }

    #[test]
    fn protocols_have_their_ip_numbers() {
        assert_eq!([Protocol::Tcp, Protocol::Udp, Protocol::Sctp].map(ip_proto), [6, 17, 132]);
    }
}
