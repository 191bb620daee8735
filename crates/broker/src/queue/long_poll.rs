//! Long polls on a queue: HTTP receives that wait for messages. Dispatch wakes them when
//! messages are ready and no consumer took them; a publish pays one atomic load while nobody
//! waits.

use super::Queue;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct Waiting {
    count: AtomicUsize,
    ready: Notify,
}

impl Waiting {
    /// Called under the queue's lock: a long poll that counted itself before taking that lock
    /// is seen here.
    pub(super) fn wake(&self) {
        if self.count.load(Ordering::Relaxed) > 0 {
            self.ready.notify_waiters();
        }
    }
}

/// One long poll on a queue, counted while it lives.
pub struct LongPoll<'a> {
    queue: &'a Queue,
}

impl Queue {
    /// Starts a long poll. Take [`LongPoll::ready`] before each look at the queue, then wait
    /// on it: messages made ready after the look wake it.
    pub fn long_poll(&self) -> LongPoll<'_> {
        self.long_polls.count.fetch_add(1, Ordering::Relaxed);
        LongPoll { queue: self }
    }

    /// Long polls waiting on this queue now.
    pub fn long_polls(&self) -> usize {
        self.long_polls.count.load(Ordering::Relaxed)
    }
}

impl LongPoll<'_> {
    /// Completes once a dispatch round after this call leaves messages ready.
    pub fn ready(&self) -> Notified<'_> {
        self.queue.long_polls.ready.notified()
    }
}

impl Drop for LongPoll<'_> {
    fn drop(&mut self) {
        self.queue.long_polls.count.fetch_sub(1, Ordering::Relaxed);
    }
}
