//! The table's named counters as metrics: read over netlink in both families at each
//! scrape and summed (`nft list counter` would fetch the whole ruleset each time).

use std::sync::Arc;

use kproxy_core::{IpFamily, PacketCounter, PacketCounters};
use kproxy_netfilter::NftRunner;

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
                match self.nft.counter_packets(family, &self.table, name).await {
                    Ok(Some(packets)) => *total.get_or_insert(0) += packets,
                    // Not loaded yet (or this family is off): nothing counted there.
                    Ok(None) => {}
                    Err(error) => tracing::debug!(%error, counter = name, "cannot read nftables counter"),
                }
            }
            out.extend(total.map(|packets| (kind, packets)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use kproxy_netfilter::FakeNft;

    use super::*;

    #[tokio::test]
    async fn counters_sum_both_families_and_leave_out_what_no_table_has() {
        let nft = FakeNft::default();
        nft.set_counter(IpFamily::V4, LOCALHOST_NODEPORTS_REJECTED, 3);
        nft.set_counter(IpFamily::V6, LOCALHOST_NODEPORTS_REJECTED, 2);
        let counters =
            TableCounters { nft: Arc::new(nft), table: "kproxy".to_owned(), localhost_nodeports_served: false };
        assert_eq!(counters.read().await, [(PacketCounter::NftablesLocalhostNodePortsRejected, 5)]);
        let served = TableCounters { localhost_nodeports_served: true, ..counters };
        assert_eq!(served.kinds(), [PacketCounter::NftablesCtStateInvalidDropped]);
    }
}
