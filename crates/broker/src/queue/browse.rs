//! Dead-letter queue operations on one queue: browsing its ready messages without taking them,
//! and taking messages out for a move (see `moving.rs`), then settling or restoring them.

use super::Queue;
use crate::message_view::MessageView;
use std::sync::Arc;
use warren_core::dead_letter::Reason;
use warren_core::filter::Filter;
use warren_core::queue::Peeked;
use warren_core::{Entry, Load, Message};

/// A ready message seen by [`Queue::peek`].
pub struct Peek {
    /// The message's place in its queue, for as long as it stays there (what a move's
    /// selection names).
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
}

impl Queue {
    /// Up to `count` ready messages after the first `skip`, in delivery order, without taking
    /// or marking them. Paged-out ones are read back from the store after the lock is released;
    /// one the store cannot read is left out.
    pub fn peek(&self, skip: usize, count: usize) -> Vec<Peek> {
        let seen = self.state.lock().messages.peek(skip, count);
        seen.into_iter()
            .filter_map(|p| match p {
                Peeked::Entry(e) => Some(Peek { seq: e.seq, message: e.message, redelivered: e.redelivered }),
                Peeked::Paged { seq, id, redelivered } => {
                    let message = self.persist.as_ref().and_then(|p| p.durability.load(id))?;
                    Some(Peek { seq, message, redelivered })
                }
            })
            .collect()
    }

    /// Takes up to `max` ready messages for which `wanted` holds, in order, looking at no more
    /// than `max_scan`; the others stay where they were, untouched. The taken ones wait, as
    /// unacknowledged, for [`Queue::moved`] or [`Queue::not_moved`].
    pub fn take_for_move(
        self: &Arc<Self>,
        max: usize,
        max_scan: usize,
        wanted: impl Fn(u64, &Message) -> bool,
    ) -> Vec<Entry> {
        self.take_matching(max, max_scan, false, wanted)
    }

    /// basic.get of the messages a filter admits (an HTTP pull receive with `filter`): up to
    /// `max` of them, unacknowledged, looking at no more than `max_scan`; the others stay where
    /// they were, for other consumers.
    pub fn get_matching(self: &Arc<Self>, max: usize, max_scan: usize, filter: &Filter) -> Vec<Entry> {
        self.take_matching(max, max_scan, true, |_, m| filter.matches(&MessageView::new(m)))
    }

    /// Takes up to `max` ready messages `wanted` admits; `delivered`: as a get (counted and
    /// recorded for tracking), else as a move.
    fn take_matching(
        self: &Arc<Self>,
        max: usize,
        max_scan: usize,
        delivered: bool,
        wanted: impl Fn(u64, &Message) -> bool,
    ) -> Vec<Entry> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let now = self.timers.now_ms();
        let (mut taken, mut passed, mut expired) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..max_scan {
            if taken.len() >= max {
                break;
            }
            let (messages, loaded) = (&mut st.messages, &mut st.loaded);
            let next = messages.pop_next(now, &mut expired, &mut |id| match self.take_loaded(loaded, id) {
                Load::NotYet => match self.persist.as_ref().and_then(|p| p.durability.load(id)) {
                    Some(message) => Load::Loaded(message),
                    None => Load::Unreadable,
                },
                other => other,
            });
            let Some(entry) = next else { break };
            if wanted(entry.seq, &entry.message) {
                if delivered {
                    self.delivered(&entry, now, false, true);
                }
                st.messages.track_unacked(entry.clone());
                taken.push(entry);
            } else {
                passed.push(entry);
            }
        }
        // Last first: each goes back in front of those after it.
        for entry in passed.into_iter().rev() {
            st.messages.put_back(entry);
        }
        st.dead.extend(expired.into_iter().map(|d| (d, Reason::Expired)));
        self.report_memory(st);
        self.schedule(st);
        self.unlock(guard);
        taken
    }

    /// A message taken for a move is safe where it went: forget it. `settled_in_store` says
    /// the store already settled it (the copy's record did); otherwise it is acked there now.
    pub fn moved(&self, seq: u64, settled_in_store: bool) {
        if !settled_in_store {
            self.ack([seq]);
            return;
        }
        self.state.lock().messages.ack(seq);
    }

    /// A message taken for a move could not be moved: it goes back to where it was.
    pub fn not_moved(self: &Arc<Self>, seqs: impl IntoIterator<Item = u64>) {
        let mut st = self.state.lock();
        for seq in seqs {
            if let Some(entry) = st.messages.ack(seq) {
                st.messages.put_back(entry);
            }
        }
        self.dispatch_locked(&mut st);
        self.unlock(st);
    }
}
