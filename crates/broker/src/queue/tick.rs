//! A queue's deadlines and what the timer task does when one comes: expire messages anywhere
//! in the queue, and delete the queue once it has gone unused for `x-expires`.

use super::{Queue, QueueState};
use std::sync::Arc;
use warren_core::dead_letter::Reason;

/// A queue whose messages' deadlines are out of queue order is swept (a pass over all of it) at
/// most this often; its head still expires exactly, whenever the queue is looked at.
const SWEEP_INTERVAL_MS: u64 = 1000;

impl Queue {
    /// Called by the timer task at (or after) the deadline the queue scheduled.
    pub(crate) fn tick(self: &Arc<Self>, now_ms: u64) {
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        st.scheduled_ms = None;
        self.retry_due(&mut st, now_ms);
        let mut expired = Vec::new();
        st.messages.sweep_expired(now_ms, &mut expired);
        st.last_sweep_ms = now_ms;
        st.dead.extend(expired.into_iter().map(|d| (d, Reason::Expired)));
        let unused = self
            .args()
            .expires_ms
            .is_some_and(|expires| st.consumers.is_empty() && now_ms >= st.last_used_ms.saturating_add(expires));
        if unused {
            // Decided under the lock: a consumer arriving from now on finds the queue gone.
            st.deleted = true;
        }
        self.dispatch_locked(&mut st);
        self.report_memory(&mut st);
        let undelivered = self.take_undelivered_dead(&mut st, now_ms);
        self.schedule(&mut st);
        self.unlock(st);
        if !undelivered.is_empty() {
            self.dead_letter(undelivered);
        }
        if unused {
            if let Some(vhost) = self.vhost_ref.upgrade() {
                vhost.remove_queue(self);
            }
        }
    }

    /// Asks the timer task to tick this queue at its next deadline, if that is earlier than
    /// what is already scheduled.
    pub(super) fn schedule(self: &Arc<Self>, st: &mut QueueState) {
        let mut messages = st.messages.next_deadline_ms();
        if !st.messages.deadlines_in_order() {
            messages = messages.map(|at| at.max(st.last_sweep_ms.saturating_add(SWEEP_INTERVAL_MS)));
        }
        let unused = self
            .args()
            .expires_ms
            .filter(|_| st.consumers.is_empty())
            .map(|expires| st.last_used_ms.saturating_add(expires));
        let retry = st.retrying.first_key_value().map(|((due, _), _)| *due);
        let Some(at) = messages.into_iter().chain(unused).chain(retry).chain(st.retry_dead_at_ms).min() else {
            return;
        };
        if st.scheduled_ms.is_none_or(|s| at < s) {
            self.timers.reschedule(st.scheduled_ms, at, self);
            st.scheduled_ms = Some(at);
        }
    }
}
