//! A queue's paged-out messages: restoring them from the store at start, and loading the next
//! ones ahead of delivery on the store's reader thread.

use super::{Queue, QueueState, LOAD_AHEAD};
use crate::durable;
use std::collections::BTreeMap;
use std::sync::Arc;
use warren_core::{Load, Message};

impl Queue {
    /// Appends messages recovered from the store, paged out: `count` consecutive store ids from
    /// `first_id`. Call before the queue takes anything else. A priority queue, or one with a
    /// message TTL, reads each one back to learn its level and deadline (the bodies are not
    /// kept), so that the timer expires them on time though none is in memory.
    pub(crate) fn restore_paged(self: &Arc<Self>, first_id: u64, count: u64, redelivered: bool) {
        if count == 0 {
            return;
        }
        let mut st = self.state.lock();
        let args = self.args();
        let read_each = args.max_priority.is_some() || args.message_ttl_ms.is_some() || args.max_length_bytes.is_some();
        match (&self.persist, read_each) {
            (Some(p), true) => {
                for id in first_id..first_id + count {
                    let (level, bytes, deadline) = match p.durability.load(id) {
                        Some(m) => {
                            (st.messages.level_of(&m), m.body_len() as u64, Some(m.deadline_ms(args.message_ttl_ms)))
                        }
                        // Unreadable: skipped when it comes to be delivered.
                        None => (0, 0, None),
                    };
                    st.messages.push_paged(level, id, 1, redelivered, bytes, deadline);
                }
                self.schedule(&mut st);
            }
            _ => st.messages.push_paged(0, first_id, count, redelivered, 0, None),
        }
        if redelivered {
            st.marked_delivered = st.marked_delivered.max(first_id + count - 1);
        }
    }

    /// What dispatch has for paged-out message `id`: its body if the reader thread loaded it,
    /// `NotYet` otherwise (dispatch then waits for `load_ahead`'s request). An unreadable one is
    /// settled in the store so it never comes back (the reader logged why).
    pub(super) fn take_loaded(&self, loaded: &mut BTreeMap<u64, Option<Arc<Message>>>, id: u64) -> Load {
        match loaded.remove(&id) {
            Some(Some(message)) => Load::Loaded(message),
            Some(None) => {
                self.forget_stored(Some(id));
                Load::Unreadable
            }
            None => Load::NotYet,
        }
    }

    /// When the next message in line is paged out and not loaded, asks the reader thread for it
    /// and the few after it; their arrival dispatches again. Only while consumers wait.
    pub(super) fn load_ahead(self: &Arc<Self>, st: &mut QueueState) {
        let Some(p) = &self.persist else { return };
        let Some(first) = st.messages.first_paged_id() else { return };
        if st.loading || st.consumers.is_empty() || st.loaded.contains_key(&first) {
            return;
        }
        let queue = self.clone();
        let done = Box::new(move |loaded: durable::reader::Loaded| {
            let mut st = queue.state.lock();
            st.loading = false;
            if st.deleted {
                return;
            }
            // A purge may have taken these messages meanwhile: keep what is still in line.
            let front = st.messages.first_paged_id().unwrap_or(u64::MAX);
            st.loaded.extend(loaded.into_iter().filter(|(id, _)| *id >= front));
            queue.dispatch_locked(&mut st);
            queue.unlock(st);
        });
        st.loading = p.durability.reader.request(st.messages.next_paged_ids(LOAD_AHEAD), done);
    }
}
