//! Who waits for which tracked message: one `Notify` per message id with a long poll on it, so
//! that a change wakes only the requests waiting for that message. Thousands of idle long polls
//! then cost nothing while other messages come and go, and a change to a message nobody waits
//! for costs one atomic load.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Default)]
pub(super) struct Waiters {
    /// Bounded by the requests waiting (each holds a [`Waiting`]): the HTTP connection limit.
    by_id: Mutex<HashMap<u64, Arc<Notify>>>,
    waiting: AtomicUsize,
}

impl Waiters {
    /// Wakes the requests waiting for message `id`. Call after the change is visible.
    pub fn notify(&self, id: u64) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(notify) = self.by_id.lock().get(&id) {
            notify.notify_waiters();
        }
    }

    /// Registers a request waiting for message `id` until the returned guard is dropped.
    pub fn register(&self, id: u64) -> Waiting<'_> {
        let notify = self.by_id.lock().entry(id).or_default().clone();
        self.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting { waiters: self, id, notify }
    }

    #[cfg(test)]
    fn ids(&self) -> usize {
        self.by_id.lock().len()
    }
}

/// A registered waiter; dropping it forgets the id once nobody else waits for it.
pub(super) struct Waiting<'a> {
    waiters: &'a Waiters,
    id: u64,
    notify: Arc<Notify>,
}

impl Waiting<'_> {
    /// A future woken by the next [`Waiters::notify`] of this id: create it before reading the
    /// state it waits on (a notification after its creation is never missed).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut by_id = self.waiters.by_id.lock();
        self.waiters.waiting.fetch_sub(1, Ordering::SeqCst);
        // Clones are made under this lock only: the map's and ours mean nobody else waits.
        if Arc::strong_count(&self.notify) == 2 {
            by_id.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    fn ready(f: impl Future<Output = ()>) -> bool {
        let mut f = std::pin::pin!(f);
        f.as_mut().poll(&mut Context::from_waker(Waker::noop())) == Poll::Ready(())
    }

    #[test]
    fn a_change_wakes_only_the_waiters_of_its_message() {
        let waiters = Waiters::default();
        let (a1, a2, b) = (waiters.register(1), waiters.register(1), waiters.register(2));
        let (fa1, fa2, fb) = (a1.notified(), a2.notified(), b.notified());
        waiters.notify(1);
        waiters.notify(3);
        assert!(ready(fa1) && ready(fa2));
        assert!(!ready(fb), "message 2 did not change");
        assert_eq!(waiters.ids(), 2);
        drop(a1);
        assert_eq!(waiters.ids(), 2, "message 1 still has a waiter");
        drop((a2, b));
        assert_eq!((waiters.ids(), waiters.waiting.load(Ordering::SeqCst)), (0, 0));
    }
}
