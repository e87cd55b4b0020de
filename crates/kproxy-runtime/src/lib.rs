//! kproxy's runtime: what drives a [`Dataplane`](kproxy_core::Dataplane) over time.
//!
//! - [`runner`]: the sync runner. A [`SyncRunner`] calls a [`SyncFn`] when a [`SyncHandle`]
//!   asks, at most once per minimum interval (measured from the end of the previous run),
//!   at least once per maximum interval (a full sync), and again after a retryable error
//!   (a full sync). It is upstream kube-proxy's bounded-frequency runner, on tokio time.
//!   [`SyncRunner::drive`] also takes a [`Driver`]'s own inputs between runs: the daemon's
//!   runner task owns the `ProxyLoop` and the dataplane that way, folding source events in
//!   while it waits, with nothing shared.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use kproxy_runtime::{RunError, StopReason, SyncConfig, SyncKind, SyncRunner};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = SyncConfig { min_interval: Duration::from_secs(1), ..SyncConfig::default() };
//! let (runner, handle) = SyncRunner::new(config)?;
//!
//! // Events from the watches ask for a sync; a burst of them causes one run.
//! for _ in 0..10 {
//!     handle.request();
//! }
//! drop(handle); // No more events: the runner stops once the pending run is done.
//!
//! let syncer = |kind: SyncKind| async move {
//!     println!("sync, full: {}", kind.is_full());
//!     Ok::<(), RunError<std::io::Error>>(())
//! };
//! assert_eq!(runner.run(syncer).await?, StopReason::HandlesDropped);
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod daemon;
pub mod explain;
pub mod health;
pub mod health_server;
pub mod metrics;
pub mod metrics_server;
pub mod node_setup;
pub mod runner;
pub mod service_health;
pub mod source;
#[cfg(test)]
mod test_http;

pub use runner::{
    DEFAULT_FULL_INTERVAL, DEFAULT_MIN_INTERVAL, DEFAULT_SYNC_PERIOD, Driver, RetryableError, RunError, StopReason,
    SyncConfig, SyncConfigError, SyncFn, SyncHandle, SyncKind, SyncRunner,
};
