//! A queue's consumers: adding one (exclusive and single-active rules), removing and
//! cancelling them.

use super::Queue;
use crate::consumer::Consumer;
use std::sync::Arc;
use warren_core::AmqpError;

/// Result of removing a consumer.
pub struct ConsumerRemoved {
    pub found: bool,
    /// An auto-delete queue just lost its last consumer and should be deleted.
    pub auto_delete_now: bool,
}

impl Queue {
    /// Register a consumer; 403 if an exclusive consumer is involved, as in RabbitMQ. `on_added`
    /// runs once the consumer is accepted and before anything is delivered to it (the transport
    /// sends its consume-ok there).
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>, on_added: impl FnOnce()) -> Result<(), AmqpError> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(AmqpError::not_found(format!("no queue '{}' in vhost '{}'", self.name, self.vhost)));
        }
        let exclusive_conflict =
            !st.consumers.is_empty() && (consumer.exclusive || st.consumers.iter().any(|c| c.exclusive));
        if exclusive_conflict {
            return Err(AmqpError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name, self.vhost
            )));
        }
        let at = st.consumers.iter().position(|c| c.priority < consumer.priority).unwrap_or(st.consumers.len());
        if self.args().single_active_consumer && st.active.is_none() {
            st.active = Some(consumer.clone());
        }
        st.consumers.insert(at, consumer);
        st.last_used_ms = self.timers.now_ms();
        on_added();
        self.dispatch_locked(&mut st);
        self.schedule(&mut st);
        self.unlock(st);
        Ok(())
    }

    pub fn remove_consumer(self: &Arc<Self>, owner: (u64, u16), tag: &str) -> ConsumerRemoved {
        let mut st = self.state.lock();
        let before = st.consumers.len();
        st.consumers.retain(|c| !(c.owner == owner && c.tag.as_str() == tag));
        let found = st.consumers.len() != before;
        // A queue without consumers holds no publishers (see `flow.rs`).
        self.held.check(&st);
        let auto_delete_now = found && self.auto_delete && st.consumers.is_empty() && !st.deleted;
        if found {
            st.last_used_ms = self.timers.now_ms();
            self.schedule(&mut st);
        }
        let was_active = st.active.as_ref().is_some_and(|a| a.owner == owner && a.tag.as_str() == tag);
        if was_active {
            // Fail over to the next consumer: the highest priority, then the longest waiting.
            st.active = st.consumers.first().cloned();
            self.dispatch_locked(&mut st);
            self.unlock(st);
        }
        ConsumerRemoved { found, auto_delete_now }
    }

    /// Removes a consumer the broker cancelled (see [`Queue::remove_consumer`]), deleting an
    /// auto-delete queue that lost its last consumer.
    pub fn cancel_consumer(self: &Arc<Self>, owner: (u64, u16), tag: &str) {
        if self.remove_consumer(owner, tag).auto_delete_now {
            if let Some(vhost) = self.vhost_ref.upgrade() {
                vhost.remove_queue(self);
            }
        }
    }
}
