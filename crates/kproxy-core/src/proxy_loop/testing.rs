//! Test support for the loop's tests: a dataplane that accepts everything, and a way to
//! run the loop's futures without a runtime.

use std::future::Future;

use crate::dataplane::{Dataplane, SyncError, SyncStats};
use crate::proxy_state::{Changes, ProxyState};

/// Runs a future that never waits (the test dataplanes answer at once).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut context) {
            return out;
        }
    }
}

/// Accepts every state; remembers the last one.
#[derive(Debug, Default)]
pub(crate) struct Accepting {
    pub(crate) last: Option<(ProxyState, Changes)>,
}

#[async_trait::async_trait]
impl Dataplane for Accepting {
    fn name(&self) -> &'static str {
        "accepting"
    }

    async fn sync(&mut self, state: &ProxyState, changes: &Changes) -> Result<SyncStats, SyncError> {
        self.last = Some((state.clone(), changes.clone()));
        Ok(SyncStats { full: changes.full(), ..SyncStats::default() })
    }

    async fn cleanup(&mut self) -> Result<(), SyncError> {
        Ok(())
    }
}
