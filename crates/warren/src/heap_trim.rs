//! Hands the heap memory that drained queues freed back to the operating system. Allocators
//! keep freed memory in their arenas: a queue that held 300 MB of messages left the broker at
//! 264 MB (glibc) or 67 MB (jemalloc) of RSS long after it was empty. `malloc_trim` (glibc) and
//! an arena purge (jemalloc) return the free pages.

use std::sync::Arc;
use std::time::Duration;
use warren_broker::Durability;

/// How often the queues' memory is looked at.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Trim once the queues hold at least this much less than at their peak since the last trim:
/// small swings are not worth a walk over the heap.
const MIN_RELEASED_BYTES: u64 = 32 << 20;

/// Runs until aborted.
pub async fn run(durability: Arc<Durability>) {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The peak since the last trim (not since the last look), so that a backlog draining
    // slowly, less than the threshold per look, still triggers one.
    let mut peak = 0;
    loop {
        ticker.tick().await;
        peak = peak.max(durability.take_memory_peak());
        let now = durability.memory_bytes();
        if peak.saturating_sub(now) >= MIN_RELEASED_BYTES {
            let _ = tokio::task::spawn_blocking(trim).await;
            peak = now;
        }
    }
}

/// Trims both allocators: whichever the binary uses has something to return, the other has
/// nothing and returns at once.
fn trim() {
    trim_glibc();
    purge_jemalloc();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_glibc() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it has no preconditions.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_glibc() {}

#[cfg(feature = "jemalloc")]
fn purge_jemalloc() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena returns its unused dirty pages.
    const PURGE_ALL: &std::ffi::CStr = c"arena.4096.purge";
    // SAFETY: a documented mallctl name that takes and returns nothing, so all pointers are null.
    let failed = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if failed != 0 {
        tracing::debug!(code = failed, "jemalloc did not purge its arenas");
    }
}

#[cfg(not(feature = "jemalloc"))]
fn purge_jemalloc() {}
