//! Chain names exactly as upstream computes them (`pkg/proxy/iptables/proxier.go`):
//! a prefix and the first 16 characters of the base32 (RFC 4648, upper case) encoding of
//! the SHA-256 of `ns/svc:port` + lower-case protocol (+ the endpoint `ip:port`).

use kproxy_core::{Endpoint, ServicePortName};
use sha2::{Digest, Sha256};

/// nat: every service VIP rule; jumped to from PREROUTING and OUTPUT. filter: rejects and
/// drops for ClusterIPs without usable endpoints.
pub const KUBE_SERVICES: &str = "KUBE-SERVICES";
/// filter: rejects and drops for external destinations without usable endpoints.
pub const KUBE_EXTERNAL_SERVICES: &str = "KUBE-EXTERNAL-SERVICES";
/// nat: node ports (the last rule of KUBE-SERVICES jumps here); filter: health-check ports.
pub const KUBE_NODEPORTS: &str = "KUBE-NODEPORTS";
/// nat: masquerades marked packets; jumped to from POSTROUTING.
pub const KUBE_POSTROUTING: &str = "KUBE-POSTROUTING";
/// nat: marks a packet for masquerading.
pub const KUBE_MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// filter: drops INVALID packets and accepts marked and established ones in FORWARD.
pub const KUBE_FORWARD: &str = "KUBE-FORWARD";
/// filter: drops load-balancer traffic that no source range admitted.
pub const KUBE_PROXY_FIREWALL: &str = "KUBE-PROXY-FIREWALL";
/// filter: kubelet's martian-packet rule for 127.0.0.0/8, needed with localhost node ports.
pub const KUBE_FIREWALL: &str = "KUBE-FIREWALL";
/// mangle, nat, filter: an empty chain whose disappearance means the tables were flushed.
pub const KUBE_PROXY_CANARY: &str = "KUBE-PROXY-CANARY";

/// Prefixes of the per-service-port chains (nat).
pub const SERVICE_CHAIN_PREFIXES: [&str; 5] = ["KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"];

/// Whether `chain` is a per-service-port chain (upstream's `isServiceChainName`).
pub fn is_service_chain(chain: &str) -> bool {
    SERVICE_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p))
}

/// The chain names of one service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChains {
    /// `ns/svc:port`, upstream's `ServicePortName.String()`.
    pub name: String,
    /// `KUBE-SVC-…`: endpoints for Cluster traffic policy.
    pub cluster: String,
    /// `KUBE-SVL-…`: endpoints for Local traffic policy.
    pub local: String,
    /// `KUBE-EXT-…`: the entry of external traffic.
    pub external: String,
    /// `KUBE-FW-…`: loadBalancerSourceRanges.
    pub firewall: String,
}

impl PortChains {
    /// The names of `port`'s chains.
    pub fn of(port: &ServicePortName) -> Self {
        let name = port.to_string();
        let hash = port_proto_hash(&name, port.protocol.as_lower_str());
        Self {
            cluster: format!("KUBE-SVC-{hash}"),
            local: format!("KUBE-SVL-{hash}"),
            external: format!("KUBE-EXT-{hash}"),
            firewall: format!("KUBE-FW-{hash}"),
            name,
        }
    }

    /// `KUBE-SEP-…` of `endpoint` (upstream's `servicePortEndpointChainName`).
    pub fn endpoint(&self, protocol: &str, endpoint: &Endpoint) -> String {
        format!("KUBE-SEP-{}", hash16(&format!("{}{protocol}{endpoint}", self.name)))
    }
}

/// Upstream's `portProtoHash`.
pub fn port_proto_hash(service_port_name: &str, protocol: &str) -> String {
    hash16(&format!("{service_port_name}{protocol}"))
}

/// The first 16 characters of base32(sha256(`text`)).
fn hash16(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut encoded = base32(&digest[..10]);
    encoded.truncate(16);
    encoded
}

/// RFC 4648 base32 (upper case), for inputs whose length is a multiple of 5 bytes.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len() * 8 / 5);
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 8];
        block[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from_be_bytes(block) >> 24;
        for i in (0..8).rev() {
            out.push(char::from(ALPHABET[((bits >> (i * 5)) & 31) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use kproxy_core::{NamespacedName, Protocol};

    use super::*;

    fn port(ns: &str, svc: &str) -> ServicePortName {
        ServicePortName::new(NamespacedName::new(ns, svc), "p80", Protocol::Tcp)
    }

    fn endpoint(ip: &str, port: u16) -> Endpoint {
        Endpoint::new(ip.parse::<IpAddr>().expect("IP"), port)
    }

    /// Values from upstream's `TestOverallIPTablesRules` (`pkg/proxy/iptables/proxier_test.go`).
    #[test]
    fn service_hashes_match_upstream() {
        assert_eq!(PortChains::of(&port("ns1", "svc1")).cluster, "KUBE-SVC-XPGD46QRK7WJZT7O");
        assert_eq!(PortChains::of(&port("ns2", "svc2")).external, "KUBE-EXT-GNZBNJ2PO5MGZ6GT");
        assert_eq!(PortChains::of(&port("ns3", "svc3")).cluster, "KUBE-SVC-X27LE4BHSL4DOUIK");
        assert_eq!(PortChains::of(&port("ns4", "svc4")).cluster, "KUBE-SVC-4SW47YFZTEDKD3PK");
        assert_eq!(PortChains::of(&port("ns5", "svc5")).firewall, "KUBE-FW-NUKIZ6OKUXPJNT4C");
    }

    #[test]
    fn endpoint_hashes_match_upstream() {
        let svc1 = PortChains::of(&port("ns1", "svc1"));
        assert_eq!(svc1.endpoint("tcp", &endpoint("10.180.0.1", 80)), "KUBE-SEP-SXIVWICOYRO3J4NJ");
        let svc4 = PortChains::of(&port("ns4", "svc4"));
        assert_eq!(svc4.endpoint("tcp", &endpoint("10.180.0.4", 80)), "KUBE-SEP-UKSFD7AGPMPPLUHC");
        assert_eq!(svc4.endpoint("tcp", &endpoint("10.180.0.5", 80)), "KUBE-SEP-C6EBXVWJJZMIWKLZ");
        let svc5 = PortChains::of(&port("ns5", "svc5"));
        assert_eq!(svc5.endpoint("tcp", &endpoint("10.180.0.3", 80)), "KUBE-SEP-I77PXRDZVX7PMWMN");
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"fooba\0\0\0\0\0"), "MZXW6YTBAAAAAAAA");
    }

    #[test]
    fn service_chain_prefixes_are_recognised() {
        assert!(is_service_chain("KUBE-SEP-SXIVWICOYRO3J4NJ"));
        assert!(!is_service_chain("KUBE-SERVICES"));
        assert!(!is_service_chain("KUBE-FORWARD"));
    }
}
