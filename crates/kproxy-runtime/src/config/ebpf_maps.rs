//! `--ebpf-map-sizes`: how many entries the eBPF mode's maps hold. A map's size is fixed
//! when it is created; the defaults hold about 26,000 service ports of 10 endpoints, so a
//! larger cluster names the maps it needs bigger (`endpoints=524288,services=131072`).

use super::ConfigError;

/// The maps whose size can be set, as the flag names them.
pub const EBPF_MAPS: [&str; 6] = ["services", "endpoints", "reverse-nat", "affinity", "conntrack", "source-ranges"];

/// The most entries a map may be given (a hash map of 16M entries takes gigabytes).
pub const EBPF_MAP_MAX_ENTRIES: u32 = 1 << 24;

/// Entries per map as configured; `None`: the dataplane's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EbpfMapSizes {
    /// Service addresses (ClusterIPs, external and load-balancer IPs, node ports).
    pub services: Option<u32>,
    /// Endpoint slots over every service port.
    pub endpoints: Option<u32>,
    /// Sockets whose peer shows as the service address.
    pub reverse_nat: Option<u32>,
    /// Clients with session affinity.
    pub affinity: Option<u32>,
    /// Tracked flows from outside the node.
    pub conntrack: Option<u32>,
    /// loadBalancerSourceRanges over every load-balancer service.
    pub source_ranges: Option<u32>,
}

impl EbpfMapSizes {
    /// Parses `MAP=ENTRIES[,MAP=ENTRIES…]` (empty: every default).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut sizes = Self::default();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (map, entries) = item.split_once('=').ok_or_else(|| invalid(format!("{item:?} is not MAP=ENTRIES")))?;
            let map = map.trim();
            let entries =
                entries.trim().parse::<u32>().ok().filter(|n| (1..=EBPF_MAP_MAX_ENTRIES).contains(n)).ok_or_else(
                    || invalid(format!("{map}: {entries:?} is not a size from 1 to {EBPF_MAP_MAX_ENTRIES}")),
                )?;
            let expected = || invalid(format!("unknown map {map:?}: expected one of {}", EBPF_MAPS.join(", ")));
            let slot = sizes.slot(map).ok_or_else(expected)?;
            if slot.replace(entries).is_some() {
                return Err(invalid(format!("{map} is given twice")));
            }
        }
        Ok(sizes)
    }

    fn slot(&mut self, map: &str) -> Option<&mut Option<u32>> {
        Some(match map {
            "services" => &mut self.services,
            "endpoints" => &mut self.endpoints,
            "reverse-nat" => &mut self.reverse_nat,
            "affinity" => &mut self.affinity,
            "conntrack" => &mut self.conntrack,
            "source-ranges" => &mut self.source_ranges,
            _ => return None,
        })
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(format!("ebpf-map-sizes: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_maps_get_their_sizes_and_the_rest_keep_defaults() {
        let sizes = EbpfMapSizes::parse(" endpoints=524288, services = 131072,").unwrap();
        assert_eq!(
            sizes,
            EbpfMapSizes { endpoints: Some(524_288), services: Some(131_072), ..EbpfMapSizes::default() }
        );
        assert_eq!(EbpfMapSizes::parse("").unwrap(), EbpfMapSizes::default());
        let every = EBPF_MAPS.map(|m| format!("{m}=7")).join(",");
        let sizes = EbpfMapSizes::parse(&every).unwrap();
        let all =
            [sizes.services, sizes.endpoints, sizes.reverse_nat, sizes.affinity, sizes.conntrack, sizes.source_ranges];
        assert!(all.iter().all(|s| *s == Some(7)), "each flag name sets its own map: {sizes:?}");
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        let message = |text| EbpfMapSizes::parse(text).unwrap_err().to_string();
        assert!(message("endpoints").contains("is not MAP=ENTRIES"));
        assert!(message("endpoint=10").contains("unknown map \"endpoint\": expected one of services, endpoints"));
        assert!(message("endpoints=0").contains("not a size from 1 to 16777216"));
        assert!(message("endpoints=-1").contains("not a size"));
        assert!(message("endpoints=16777217").contains("not a size"));
        assert!(message("endpoints=1,endpoints=2").contains("endpoints is given twice"));
    }
}
