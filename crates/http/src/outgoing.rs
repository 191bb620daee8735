//! The limit on outgoing requests (callbacks and pushes share it) and its end at shutdown: no
//! request starts once the API is stopping, and the ones already sent finish and are recorded
//! first.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Outgoing {
    limit: Semaphore,
    size: u32,
    stopping: AtomicBool,
}

impl Outgoing {
    pub fn new(size: usize) -> Outgoing {
        let size = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
        Outgoing { limit: Semaphore::new(size as usize), size, stopping: AtomicBool::new(false) }
    }

    /// A turn to send one request, held until its result is recorded; `None` once the API is
    /// stopping (also for a caller that was already waiting for its turn).
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        let permit = self.limit.acquire().await.ok()?;
        (!self.stopping.load(Ordering::Acquire)).then_some(permit)
    }

    /// Lets no request start, and waits (at most `timeout`) for those in flight to be recorded.
    pub async fn drain(&self, timeout: Duration) {
        self.stopping.store(true, Ordering::Release);
        let held = tokio::time::timeout(timeout, self.limit.acquire_many(self.size)).await;
        self.limit.close();
        drop(held);
    }
}
