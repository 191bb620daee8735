//! The message state of one queue: ready messages in order, requeued messages that go out first in
//! their original order, and delivered-but-unacknowledged messages keyed by queue sequence number.

use crate::Message;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// A message's place in one queue.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position in this queue, increasing with publish order; stable across requeues.
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    pub delivery_count: u32,
    /// The message's id in the durable store, when this queue persisted it.
    pub stored: Option<u64>,
}

#[derive(Debug, Default)]
pub struct QueueMessages {
    next_seq: u64,
    ready: VecDeque<Entry>,
    /// Requeued messages; delivered before `ready` so a queue keeps its order across redelivery.
    returned: BTreeMap<u64, Entry>,
    unacked: HashMap<u64, Entry>,
    ready_bytes: u64,
    unacked_bytes: u64,
}

impl QueueMessages {
    pub fn push(&mut self, message: Arc<Message>) -> u64 {
        self.push_with(message, None, false)
    }

    /// Appends a message, persisted under store id `stored` if any; `redelivered` for messages
    /// recovered after a restart that had been delivered before it.
    pub fn push_with(&mut self, message: Arc<Message>, stored: Option<u64>, redelivered: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.ready_bytes += message.body_len() as u64;
        self.ready.push_back(Entry { seq, message, redelivered, delivery_count: 0, stored });
        seq
    }

    /// Take the next message to deliver. The caller either hands it to `track_unacked` (manual ack)
    /// or lets it go (auto-ack / no-ack).
    pub fn pop_next(&mut self) -> Option<Entry> {
        let mut entry = match self.returned.first_entry() {
            Some(e) => e.remove(),
            None => self.ready.pop_front()?,
        };
        self.ready_bytes -= entry.message.body_len() as u64;
        entry.delivery_count += 1;
        Some(entry)
    }

    pub fn track_unacked(&mut self, entry: Entry) {
        self.unacked_bytes += entry.message.body_len() as u64;
        let previous = self.unacked.insert(entry.seq, entry);
        debug_assert!(previous.is_none(), "a message is unacked at most once");
    }

    /// Settle a delivered message; `None` if it was not unacked (already settled).
    pub fn ack(&mut self, seq: u64) -> Option<Entry> {
        let entry = self.unacked.remove(&seq)?;
        self.unacked_bytes -= entry.message.body_len() as u64;
        Some(entry)
    }

    /// Put a delivered message back, marked redelivered, at its original position.
    pub fn requeue(&mut self, seq: u64) -> bool {
        let Some(mut entry) = self.ack(seq) else { return false };
        entry.redelivered = true;
        self.ready_bytes += entry.message.body_len() as u64;
        self.returned.insert(seq, entry);
        true
    }

    /// Drop every ready message (unacked ones stay, as in AMQP), showing each to `dropped`;
    /// returns how many were dropped.
    pub fn purge(&mut self, mut dropped: impl FnMut(&Entry)) -> usize {
        let n = self.ready_count();
        self.returned.values().for_each(&mut dropped);
        self.ready.iter().for_each(&mut dropped);
        self.ready.clear();
        self.returned.clear();
        self.ready_bytes = 0;
        n
    }

    /// Removes the ready message stored under `id` (its write failed, so its publisher was
    /// nacked); false if it is not ready (already delivered, or never here). Looks from the
    /// back: a failed write is reported moments after the publish.
    pub fn remove_ready_stored(&mut self, id: u64) -> bool {
        let found = self.ready.iter().rposition(|e| e.stored == Some(id));
        let Some(entry) = found.and_then(|i| self.ready.remove(i)) else { return false };
        self.ready_bytes -= entry.message.body_len() as u64;
        true
    }

    /// Unacked messages that are persisted in the store.
    pub fn unacked_stored(&self) -> usize {
        self.unacked.values().filter(|e| e.stored.is_some()).count()
    }

    pub fn ready_count(&self) -> usize {
        self.ready.len() + self.returned.len()
    }

    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    pub fn ready_bytes(&self) -> u64 {
        self.ready_bytes
    }

    pub fn unacked_bytes(&self) -> u64 {
        self.unacked_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.ready_count() == 0 && self.unacked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::ShortStr;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn msg(n: u8) -> Arc<Message> {
        Arc::new(Message::new(
            ShortStr::from_static(""),
            ShortStr::from_static("q"),
            Bytes::new(),
            Bytes::from(vec![n]),
        ))
    }

    #[test]
    fn requeued_messages_go_first_in_original_order() {
        let mut q = QueueMessages::default();
        for i in 0..4 {
            q.push(msg(i));
        }
        let a = q.pop_next().unwrap();
        let b = q.pop_next().unwrap();
        q.track_unacked(a.clone());
        q.track_unacked(b.clone());
        assert!(q.requeue(b.seq));
        assert!(q.requeue(a.seq));
        let order: Vec<(u64, bool)> = std::iter::from_fn(|| q.pop_next()).map(|e| (e.seq, e.redelivered)).collect();
        assert_eq!(order, vec![(0, true), (1, true), (2, false), (3, false)]);
    }

    #[test]
    fn ack_is_idempotent_and_purge_keeps_unacked() {
        let mut q = QueueMessages::default();
        q.push(msg(1));
        q.push(msg(2));
        let e = q.pop_next().unwrap();
        q.track_unacked(e.clone());
        assert_eq!(q.purge(|_| {}), 1);
        assert_eq!(q.unacked_count(), 1);
        assert!(q.ack(e.seq).is_some());
        assert!(q.ack(e.seq).is_none());
        assert!(q.is_empty());
        assert_eq!((q.ready_bytes(), q.unacked_bytes()), (0, 0));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push,
        Deliver,
        Ack(usize),
        Requeue(usize),
    }

    proptest! {
        /// Against a model: every pushed message is, at all times, exactly one of ready, unacked or
        /// acked; nothing is lost or duplicated.
        #[test]
        fn nothing_lost_or_duplicated(ops in prop::collection::vec(prop_oneof![
            Just(Op::Push), Just(Op::Deliver), (0usize..16).prop_map(Op::Ack), (0usize..16).prop_map(Op::Requeue)
        ], 0..200)) {
            let mut q = QueueMessages::default();
            let mut pushed = 0u64;
            let mut unacked: Vec<u64> = Vec::new();
            let mut acked = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Push => { q.push(msg(0)); pushed += 1; }
                    Op::Deliver => if let Some(e) = q.pop_next() {
                        prop_assert!(!acked.contains(&e.seq));
                        prop_assert!(!unacked.contains(&e.seq));
                        unacked.push(e.seq);
                        q.track_unacked(e);
                    },
                    Op::Ack(i) if !unacked.is_empty() => {
                        let seq = unacked.remove(i % unacked.len());
                        prop_assert!(q.ack(seq).is_some());
                        acked.insert(seq);
                    }
                    Op::Requeue(i) if !unacked.is_empty() => {
                        let seq = unacked.remove(i % unacked.len());
                        prop_assert!(q.requeue(seq));
                    }
                    _ => {}
                }
                prop_assert_eq!(q.ready_count() + q.unacked_count() + acked.len(), pushed as usize);
                prop_assert_eq!(q.unacked_count(), unacked.len());
            }
        }
    }
}
