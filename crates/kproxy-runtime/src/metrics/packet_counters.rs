//! The dataplane's kernel packet counters as Prometheus counters: registered when the
//! daemon starts (only those its mode keeps), brought up to the kernel's values at every
//! scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kproxy_core::{PacketCounter, PacketCounters};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// How long a scrape waits for the kernel's counters.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// One exposed kernel counter and the kernel value it last caught up with.
struct Exposed {
    kind: PacketCounter,
    counter: Counter,
    last_read: AtomicU64,
}

/// The counters of one dataplane.
pub(super) struct PacketCounterMetrics {
    source: Arc<dyn PacketCounters>,
    exposed: Vec<Exposed>,
}

impl PacketCounterMetrics {
    /// Registers `source`'s counters in `registry`.
    pub(super) fn register(source: Arc<dyn PacketCounters>, registry: &mut Registry) -> Self {
        let exposed: Vec<Exposed> = source
            .kinds()
            .into_iter()
            .map(|kind| Exposed { kind, counter: Counter::default(), last_read: AtomicU64::new(0) })
            .collect();
        for e in &exposed {
            // prometheus-client appends `_total` to a counter's samples.
            let name = e.kind.metric_name().trim_end_matches("_total");
            registry.register(name, e.kind.help(), e.counter.clone());
        }
        Self { source, exposed }
    }

    /// Reads the kernel's counters and adds what they counted since the last read. A
    /// kernel counter that went back (recreated) counts again from its new value. A read
    /// that takes longer than [`READ_TIMEOUT`] is given up: the scrape answers with the
    /// values of the last read.
    pub(super) async fn refresh(&self) {
        let Ok(values) = tokio::time::timeout(READ_TIMEOUT, self.source.read()).await else {
            tracing::warn!("reading the kernel's packet counters timed out; the metrics show the last values");
            return;
        };
        for (kind, value) in values {
            let Some(e) = self.exposed.iter().find(|e| e.kind == kind) else {
                continue;
            };
            let last = e.last_read.swap(value, Ordering::Relaxed);
            e.counter.inc_by(if value >= last { value - last } else { value });
        }
    }
}
