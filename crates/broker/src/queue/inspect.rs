//! What a queue holds, for the transports and the management API: counts, memory, consumers,
//! and the deleted mark.

use super::Queue;
use crate::consumer::Consumer;
use std::sync::Arc;
use warren_core::Prioritized;

impl Queue {
    /// Memory charged to the in-memory ready messages, and how many ready ones are paged out.
    pub fn memory(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.messages.memory_bytes(), st.messages.paged_count())
    }

    /// Ready messages (as reported in declare-ok, purge-ok and get-ok) and consumers.
    pub fn counts(&self) -> (u32, u32) {
        let st = self.state.lock();
        (st.messages.ready_count() as u32, st.consumers.len() as u32)
    }

    /// Mark deleted; returns the consumers to notify and the number of ready messages dropped.
    pub(crate) fn mark_deleted(&self) -> (Vec<Arc<Consumer>>, u32) {
        let mut st = self.state.lock();
        st.deleted = true;
        let dropped = st.messages.ready_count() as u32;
        st.messages = Prioritized::new(self.args().max_priority, self.args().message_ttl_ms);
        st.active = None;
        st.retrying.clear();
        st.undelivered_dead.clear();
        st.dead.clear();
        st.loaded.clear();
        self.report_memory(&mut st);
        if let Some(p) = self.persist.as_ref().filter(|p| p.durable || st.paged_any) {
            // Settles every message of the queue in the store and forgets its delivered marker.
            let _ = p.durability.store.purge(p.id, u64::MAX);
        }
        self.held.check(&st);
        (std::mem::take(&mut st.consumers), dropped)
    }

    /// Ready and unacknowledged messages, and consumers (for the management API).
    pub fn message_counts(&self) -> (usize, usize, usize) {
        let st = self.state.lock();
        (st.messages.ready_count(), st.messages.unacked_count(), st.consumers.len())
    }

    /// The queue's consumers, as registered.
    pub fn consumers(&self) -> Vec<Arc<Consumer>> {
        self.state.lock().consumers.clone()
    }

    /// The queue was deleted (consumers holding it learn this late).
    pub fn is_deleted(&self) -> bool {
        self.state.lock().deleted
    }

    /// Whether queue.delete with if-unused / if-empty would be refused.
    pub fn in_use(&self) -> (bool, bool) {
        let st = self.state.lock();
        (!st.consumers.is_empty(), st.messages.ready_count() > 0)
    }
}
