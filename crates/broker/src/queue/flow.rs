//! Publisher flow control: a publisher feeding a queue whose consumers are falling behind waits
//! until they have caught up, so that the backlog stays bounded instead of growing for as long
//! as the publisher is faster (RabbitMQ holds such publishers with its credit flow). A queue
//! without consumers is not "behind": it stores what comes, as a queue should. Nor is one whose
//! consumers did not catch up within a whole hold (slow by nature, or hung): it is marked
//! stalled and absorbs what comes, as RabbitMQ's queues do, until its consumers are down to the
//! resume mark again; so a hung consumer costs each publisher one hold, not one per read.

use super::{Queue, QueueState, CONSUMERS_BEHIND_READY};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// Ready messages down to which a queue's consumers must catch up before the publishers held
/// for it are read again (half the mark at which they are held: hysteresis, so that a held
/// publisher is let go for a whole batch, not message by message).
pub const FLOW_RESUME_READY: usize = CONSUMERS_BEHIND_READY / 2;

/// The publishers held for one queue.
#[derive(Default)]
pub(super) struct Held {
    /// Some publisher waits: dispatch checks whether to let it go (one load per round while
    /// nobody waits).
    waiting: AtomicBool,
    released: Notify,
    /// A hold ran out before the consumers caught up: no more holds until they do.
    stalled: AtomicBool,
}

impl Held {
    /// Called under the queue's lock whenever its backlog or consumers may have changed.
    pub(super) fn check(&self, st: &QueueState) {
        if (self.waiting.load(Ordering::Relaxed) || self.stalled.load(Ordering::Relaxed)) && !holds(st) {
            self.waiting.store(false, Ordering::Relaxed);
            self.stalled.store(false, Ordering::Relaxed);
            self.released.notify_waiters();
        }
    }
}

/// A queue holds its publishers while it has consumers and they are behind (see
/// [`FLOW_RESUME_READY`]); a deleted queue holds nobody.
fn holds(st: &QueueState) -> bool {
    !st.deleted && !st.consumers.is_empty() && st.messages.ready_count() > FLOW_RESUME_READY
}

impl Queue {
    /// Waits until this queue's consumers have caught up (or it lost them, or was deleted),
    /// for at most `max`. True if they caught up; false if the time ran out, which marks the
    /// queue stalled: later waits return at once until its consumers catch up.
    pub async fn wait_for_consumers(&self, max: Duration) -> bool {
        if self.held.stalled.load(Ordering::Relaxed) {
            return false;
        }
        let wait = async {
            loop {
                let released = self.held.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                {
                    // Checked and marked under the lock that dispatch checks under: a release
                    // after this look finds `waiting` set and wakes the enabled waiter.
                    let st = self.state.lock();
                    if !holds(&st) {
                        return;
                    }
                    self.held.waiting.store(true, Ordering::Relaxed);
                }
                released.await;
            }
        };
        let caught_up = tokio::time::timeout(max, wait).await.is_ok();
        if !caught_up {
            // Marked under the lock that `check` clears it under, after a last look: consumers
            // that caught up meanwhile leave it unmarked.
            let st = self.state.lock();
            if holds(&st) {
                self.held.stalled.store(true, Ordering::Relaxed);
            }
        }
        caught_up
    }

    /// Whether this queue stopped holding its publishers because a hold ran out.
    pub fn flow_stalled(&self) -> bool {
        self.held.stalled.load(Ordering::Relaxed)
    }
}
