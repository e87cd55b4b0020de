//! A downstream dataplane: counts what it programs, reading kproxy-core's model as any
//! dataplane does, and hands the programming itself to another dataplane.

use kproxy_core::{Changes, Dataplane, ProxyState, SyncError, SyncStats, categorize_endpoints};

/// Counts syncs and the endpoints this node uses, then lets `inner` program them.
pub struct CountingDataplane<D> {
    /// The dataplane that programs the node.
    pub inner: D,
    /// Successful syncs, and how many of them were full.
    pub syncs: (usize, usize),
    /// Endpoints this node uses, summed over the service ports, as of the last sync.
    pub endpoints: usize,
}

#[async_trait::async_trait]
impl<D: Dataplane> Dataplane for CountingDataplane<D> {
    fn name(&self) -> &'static str {
        "counting"
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        let stats = self.inner.sync(state, changes).await?;
        self.endpoints = 0;
        for family in state.families() {
            for (name, port) in family.services.iter() {
                let used = categorize_endpoints(family.endpoints.get(name), port, state.node.topology());
                self.endpoints += used.all_reachable.len();
            }
        }
        self.syncs = (self.syncs.0 + 1, self.syncs.1 + usize::from(changes.full()));
        Ok(stats)
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        self.inner.cleanup().await
    }

    async fn shutdown(&mut self, drain: std::time::Duration) {
        self.inner.shutdown(drain).await;
    }

    fn render(&self, state: &ProxyState) -> String {
        self.inner.render(state)
    }
}
