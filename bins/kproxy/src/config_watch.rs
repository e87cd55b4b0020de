//! Upstream kube-proxy exits when the content of its `--config` file changes (a Write or a
//! Rename, as a ConfigMap update swaps the file), so that it is restarted with the new
//! configuration: a running proxy never applies half of a new file. kproxy does the same by
//! reading the file again every [`POLL`] and comparing its bytes (no file watcher needed; a
//! file that cannot be read for a moment, or is removed, is not a change).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the file is read again.
pub const POLL: Duration = Duration::from_secs(2);

/// Completes once the content of `path` differs from what it was when this was called (a
/// file unreadable at that time never completes this).
pub async fn content_changed(path: PathBuf, poll: Duration) {
    let Ok(original) = tokio::fs::read(&path).await else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(poll).await;
        if differs(&path, &original).await {
            tracing::error!(path = %path.display(), "content of the configuration file changed; exiting to be restarted with it");
            return;
        }
    }
}

/// Completes on `signal`, or when the content of the `--config` file changes (then sets
/// `changed`, for an error exit).
pub async fn stop_on(signal: impl Future<Output = ()>, config: Option<PathBuf>, changed: Arc<AtomicBool>) {
    stop_on_with(signal, config, changed, POLL).await;
}

async fn stop_on_with(
    signal: impl Future<Output = ()>,
    config: Option<PathBuf>,
    changed: Arc<AtomicBool>,
    poll: Duration,
) {
    let watch = async {
        match config {
            Some(path) => content_changed(path, poll).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = signal => {}
        () = watch => changed.store(true, Ordering::SeqCst),
    }
}

/// Whether `path` now holds something other than `original` (unreadable: no).
async fn differs(path: &Path, original: &[u8]) -> bool {
    tokio::fs::read(path).await.is_ok_and(|now| now != original)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("kproxy-config-watch-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write");
        path
    }

    #[tokio::test]
    async fn a_changed_file_completes_an_unchanged_one_does_not() {
        let path = temp_file("changed", "mode: nftables\n");
        let poll = Duration::from_millis(10);
        let watch = tokio::spawn(content_changed(path.clone(), poll));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watch.is_finished(), "nothing changed yet");
        std::fs::write(&path, "mode: nftables\n").expect("rewrite the same");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watch.is_finished(), "the same content is no change");
        std::fs::remove_file(&path).expect("remove");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!watch.is_finished(), "a file gone for a moment is no change");
        std::fs::write(&path, "mode: iptables\n").expect("change");
        tokio::time::timeout(Duration::from_secs(5), watch).await.expect("completes").expect("no panic");
        std::fs::remove_file(&path).expect("clean up");
    }

    #[tokio::test]
    async fn a_signal_stops_cleanly_a_changed_file_stops_with_the_flag_set() {
        let path = temp_file("stop", "mode: nftables\n");
        let changed = Arc::new(AtomicBool::new(false));
        let poll = Duration::from_millis(10);
        stop_on_with(async {}, Some(path.clone()), changed.clone(), poll).await;
        assert!(!changed.load(Ordering::SeqCst), "stopped by the signal");

        let stop = tokio::spawn(stop_on_with(std::future::pending(), Some(path.clone()), changed.clone(), poll));
        tokio::time::sleep(Duration::from_millis(50)).await;
        std::fs::write(&path, "mode: iptables\n").expect("change");
        tokio::time::timeout(Duration::from_secs(5), stop).await.expect("stops").expect("no panic");
        assert!(changed.load(Ordering::SeqCst), "stopped by the change");
        std::fs::remove_file(&path).expect("clean up");
    }
}
