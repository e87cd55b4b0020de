//! The table's named counters as metrics: read with `nft list counter` in both families at
//! each scrape and summed.

use std::sync::Arc;

use kproxy_core::{IpFamily, PacketCounter, PacketCounters};
use kproxy_netfilter::NftRunner;

use crate::Family;
use crate::render::names::{CT_STATE_INVALID_DROPPED, LOCALHOST_NODEPORTS_REJECTED};

/// Reads the counters of the table `table`.
pub(crate) struct TableCounters {
    pub(crate) nft: Arc<dyn NftRunner>,
    pub(crate) table: String,
    /// The localhost relay serves loopback node ports: no rejected ones to count.
    pub(crate) localhost_nodeports_served: bool,
}

impl TableCounters {
    fn counters(&self) -> Vec<(PacketCounter, &'static str)> {
        let mut out = vec![(PacketCounter::NftablesCtStateInvalidDropped, CT_STATE_INVALID_DROPPED)];
        if !self.localhost_nodeports_served {
            out.push((PacketCounter::NftablesLocalhostNodePortsRejected, LOCALHOST_NODEPORTS_REJECTED));
        }
        out
    }
}

#[async_trait::async_trait]
impl PacketCounters for TableCounters {
    fn kinds(&self) -> Vec<PacketCounter> {
        self.counters().into_iter().map(|(kind, _)| kind).collect()
    }

    async fn read(&self) -> Vec<(PacketCounter, u64)> {
        let mut out = Vec::new();
        for (kind, name) in self.counters() {
            let mut total = None;
            for family in IpFamily::ALL {
                let what = format!("list counter {} {} {name}", Family(family).keyword(), self.table);
                match self.nft.list(&what).await {
                    Ok(text) => *total.get_or_insert(0) += packets_of(&text).unwrap_or(0),
                    // Not loaded yet (or this family is off): nothing counted there.
                    Err(error) => tracing::debug!(%error, counter = name, "cannot read nftables counter"),
                }
            }
            out.extend(total.map(|packets| (kind, packets)));
        }
        out
    }
}

/// The `packets N` of a counter listing.
pub(crate) fn packets_of(listing: &str) -> Option<u64> {
    let mut words = listing.split_whitespace();
    words.by_ref().find(|w| *w == "packets")?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_listing_gives_its_packets() {
        let listing = "table ip kproxy {\n\tcounter localhost-nodeports-rejected {\n\t\tpackets 12 bytes 720\n\t}\n}\n";
        assert_eq!(packets_of(listing), Some(12));
        assert_eq!(packets_of("table ip kproxy {\n}\n"), None);
    }
}
