//! The words of nft syntax that differ between `ip` and `ip6` tables.

use std::net::IpAddr;

use kproxy_core::IpFamily;

/// nft syntax for one IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family(pub IpFamily);

impl Family {
    /// The table family keyword and address match keyword: `ip` or `ip6`.
    pub fn keyword(self) -> &'static str {
        match self.0 {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }

    /// The address data type: `ipv4_addr` or `ipv6_addr`.
    pub fn addr_type(self) -> &'static str {
        match self.0 {
            IpFamily::V4 => "ipv4_addr",
            IpFamily::V6 => "ipv6_addr",
        }
    }

    /// The loopback range, which never accepts node ports.
    pub fn loopback(self) -> &'static str {
        match self.0 {
            IpFamily::V4 => "127.0.0.0/8",
            IpFamily::V6 => "::1",
        }
    }

    /// An endpoint as a DNAT target: `10.0.0.1:80` or `[fd00::1]:80`.
    pub fn socket(self, ip: IpAddr, port: u16) -> String {
        match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        }
    }
}
