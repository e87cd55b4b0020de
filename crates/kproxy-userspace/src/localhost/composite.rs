//! A dataplane that also serves localhost node ports.

use std::time::Duration;

use kproxy_core::explain::{ModeProfile, PortTarget, RuleRef};
use kproxy_core::{Changes, Dataplane, ProxyState, SyncError, SyncStats};

use super::LocalhostNodePorts;

/// `D` (the nftables dataplane) plus [`LocalhostNodePorts`], synced after it from the same
/// state. Everything else is `D`'s.
pub struct WithLocalhostNodePorts<D> {
    inner: D,
    localhost: LocalhostNodePorts,
}

impl<D: Dataplane> WithLocalhostNodePorts<D> {
    /// `inner`, with localhost node ports served by `localhost`.
    pub fn new(inner: D, localhost: LocalhostNodePorts) -> Self {
        Self { inner, localhost }
    }

    /// The wrapped dataplane.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The localhost node ports.
    pub fn localhost(&self) -> &LocalhostNodePorts {
        &self.localhost
    }
}

#[async_trait::async_trait]
impl<D: Dataplane> Dataplane for WithLocalhostNodePorts<D> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let stats = self.inner.sync(state, changes).await?;
        let listeners = self.localhost.sync(state);
        Ok(SyncStats { rules: stats.rules + listeners, ..stats })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        self.localhost.stop();
        self.inner.cleanup().await
    }

    async fn shutdown(&mut self, drain: Duration) {
        let cut = self.localhost.shutdown(drain).await;
        tracing::info!(cut, "localhost node ports drained");
        self.inner.shutdown(drain).await;
    }

    fn render(&self, state: &ProxyState) -> String {
        let mut out = self.inner.render(state);
        out.push_str(&self.localhost.render(state));
        out
    }

    fn explain_profile(&self) -> ModeProfile {
        self.inner.explain_profile()
    }

    fn explain_rules(&self, state: &ProxyState, target: &PortTarget<'_>) -> Vec<RuleRef> {
        self.inner.explain_rules(state, target)
    }

    fn packet_counters(&self) -> Option<std::sync::Arc<dyn kproxy_core::PacketCounters>> {
        self.inner.packet_counters()
    }
}
