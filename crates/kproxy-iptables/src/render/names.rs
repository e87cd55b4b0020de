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
    /// What the hashes of the names are computed from.
    hash_base: HashBase,
}

/// What chain hashes are computed from. Upstream hashes `ns/svc:port`, which tells every
/// valid name apart; a namespace holding `/` or a Service name holding `:` (which
/// validation refuses) could spell another port's text, so such a name is hashed from an
/// unambiguous spelling instead, and its hash is written in lower case, which upstream's
/// (upper-case base32) never is: two ports never share a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HashBase {
    /// Upstream's `ns/svc:port`.
    Upstream(String),
    /// Each part prefixed with its length.
    Unambiguous(String),
}

impl HashBase {
    fn of(port: &ServicePortName, text: &str) -> Self {
        let svc = &port.service;
        if svc.namespace.contains('/') || svc.name.contains(':') {
            let parts = [svc.namespace.as_str(), svc.name.as_str(), port.port.as_str()];
            Self::Unambiguous(parts.iter().map(|p| format!("{}:{p}/", p.len())).collect())
        } else {
            Self::Upstream(text.to_owned())
        }
    }

    /// The hash of the base followed by `suffix`.
    fn hash(&self, suffix: &str) -> String {
        match self {
            Self::Upstream(base) => hash16(&format!("{base}{suffix}")),
            Self::Unambiguous(base) => hash16(&format!("{base}{suffix}")).to_ascii_lowercase(),
        }
    }
}

impl PortChains {
    /// The names of `port`'s chains.
    pub fn of(port: &ServicePortName) -> Self {
        let name = port.to_string();
        let hash_base = HashBase::of(port, &name);
        let hash = hash_base.hash(port.protocol.as_lower_str());
        Self {
            cluster: format!("KUBE-SVC-{hash}"),
            local: format!("KUBE-SVL-{hash}"),
            external: format!("KUBE-EXT-{hash}"),
            firewall: format!("KUBE-FW-{hash}"),
            name,
            hash_base,
        }
    }

    /// `KUBE-SEP-…` of `endpoint` (upstream's `servicePortEndpointChainName`).
    pub fn endpoint(&self, protocol: &str, endpoint: &Endpoint) -> String {
        format!("KUBE-SEP-{}", self.hash_base.hash(&format!("{protocol}{endpoint}")))
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
    fn names_that_spell_the_same_text_get_different_chains() {
        let plain = ServicePortName::new(NamespacedName::new("a", "b"), "c", Protocol::Tcp);
        let colon = ServicePortName::new(NamespacedName::new("a", "b:c"), "", Protocol::Tcp);
        let slash = ServicePortName::new(NamespacedName::new("a/b", "x"), "c", Protocol::Tcp);
        assert_eq!(plain.to_string(), colon.to_string());
        let chains: Vec<PortChains> = [&plain, &colon, &slash].map(PortChains::of).into_iter().collect();
        assert_eq!(chains[0].cluster, format!("KUBE-SVC-{}", port_proto_hash("a/b:c", "tcp")));
        assert_ne!(chains[0].cluster, chains[1].cluster);
        assert_ne!(chains[1].cluster, chains[2].cluster);
        assert!(chains[1].cluster["KUBE-SVC-".len()..].chars().all(|c| !c.is_ascii_uppercase()));
        let ep = endpoint("10.0.0.1", 80);
        assert_ne!(chains[0].endpoint("tcp", &ep), chains[1].endpoint("tcp", &ep));
        assert_eq!(chains[0].name, chains[1].name, "comments keep upstream's text");
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
