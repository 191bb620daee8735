//! What the last frame of a connection left waiting on the disk: durable definitions (their
//! reply is held in the output buffer) or the persistent messages of a `tx.commit` (whose
//! `commit-ok` is sent only once they are all durable). The connection reads nothing more until
//! it is settled, so later frames never overtake the reply.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// The durable work a connection waits for before it goes on.
pub enum Pending {
    /// Definition changes up to this mark; the reply is held in the output.
    Definitions(warren_broker::definitions::DefsMark),
    /// The persistent messages of a `tx.commit` on `channel`; `commit-ok` follows them.
    TxCommit { channel: u16, wait: Arc<DurableCount> },
}

/// Counts messages still on their way to the disk; the last one wakes the waiter.
#[derive(Default)]
pub struct DurableCount {
    remaining: AtomicUsize,
    failed: AtomicBool,
    done: Notify,
}

impl DurableCount {
    /// One more message to wait for; call before it can be settled.
    pub fn add(&self) {
        self.remaining.fetch_add(1, Ordering::AcqRel);
    }

    /// One message is durable (`true`) or could not be written.
    pub fn settle(&self, durable: bool) {
        if !durable {
            self.failed.store(true, Ordering::Release);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
        }
    }

    /// Whether nothing is left to wait for.
    pub fn is_settled(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Waits until every message is settled; true if all were written.
    pub async fn wait(&self) -> bool {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_settled() {
                return !self.failed.load(Ordering::Acquire);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_the_last_settlement_and_reports_failures() {
        let count = Arc::new(DurableCount::default());
        assert!(count.wait().await, "nothing to wait for");
        count.add();
        count.add();
        let waiter = tokio::spawn({
            let count = count.clone();
            async move { count.wait().await }
        });
        count.settle(true);
        assert!(!count.is_settled());
        count.settle(false);
        assert!(!waiter.await.unwrap(), "one write failed");
    }
}
