//! Heap profiling for memory work (feature `heap-profile`, never in a release): every
//! allocation is recorded by DHAT with its call stack. When the environment names a file in
//! [`PROFILE_FILE_VAR`], the profile is written there on `SIGUSR1` (or when the daemon
//! stops): the heap at its peak so far and at that moment, by allocation site
//! (`cargo xtask bench --only heap` reads it). Without the variable nothing is recorded.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The environment variable naming the profile's file.
pub const PROFILE_FILE_VAR: &str = "DHAT_HEAP_PROFILE_FILE";

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The running profiler and the profile's file, until the profile is written.
static PROFILER: Mutex<Option<(dhat::Profiler, PathBuf)>> = Mutex::new(None);

/// Starts recording if [`PROFILE_FILE_VAR`] names a file.
pub fn start() {
    let Some(file) = std::env::var_os(PROFILE_FILE_VAR) else { return };
    let file = PathBuf::from(file);
    // Written under a temporary name, renamed once complete.
    let profiler = dhat::Profiler::builder().file_name(partial(&file)).trim_backtraces(Some(48)).build();
    *lock() = Some((profiler, file));
}

/// Writes the profile now (at most once): the peak so far and what is live now.
pub fn write() {
    let Some((profiler, file)) = lock().take() else { return };
    let stats = dhat::HeapStats::get();
    eprintln!("kproxy: heap now {} bytes, peak {} bytes; writing the profile", stats.curr_bytes, stats.max_bytes);
    drop(profiler);
    if let Err(error) = std::fs::rename(partial(&file), &file) {
        eprintln!("kproxy: cannot complete the heap profile {}: {error}", file.display());
    }
}

fn partial(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// Writes the profile on the first `SIGUSR1` (call inside the runtime).
pub fn write_on_signal() {
    if lock().is_none() {
        return;
    }
    tokio::spawn(async {
        let Ok(mut usr1) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) else {
            eprintln!("kproxy: cannot listen for SIGUSR1; the heap profile is written at exit");
            return;
        };
        if usr1.recv().await.is_some() {
            write();
        }
    });
}

fn lock() -> std::sync::MutexGuard<'static, Option<(dhat::Profiler, PathBuf)>> {
    PROFILER.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
