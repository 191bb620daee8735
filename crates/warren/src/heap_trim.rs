//! Hands the heap memory that drained queues freed back to the operating system. The C
//! allocator keeps freed memory in its arenas: a queue that held 300 MB of messages left the
//! broker at 300 MB of RSS long after it was empty. `malloc_trim` returns the free pages.

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
    loop {
        ticker.tick().await;
        let peak = durability.take_memory_peak();
        let now = durability.memory_bytes();
        if peak.saturating_sub(now) >= MIN_RELEASED_BYTES {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks glibc's own arenas; it has no preconditions.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(released = released != 0, "returned free heap memory to the system");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
