//! `LogState`: what the log means, rebuilt by recovery and then kept by the writer thread —
//! per segment the count of unacked (message, queue) pairs and the older segments its acks refer
//! to, per queue the unacked message ids and the delivered marker.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::id_set::IdSet;

use crate::index::{Index, Slot};
use crate::record::kind;

/// Bookkeeping of one segment.
#[derive(Debug, Default)]
pub struct SegMeta {
    /// (message, queue) pairs stored in this segment and not yet acked.
    pub live: u64,
    /// Older segments holding messages acked by records of this segment. While one of them
    /// exists, this segment's acks are still needed and it must not be deleted.
    pub deps: BTreeSet<u32>,
}

/// The meaning of the log.
#[derive(Debug, Default)]
pub struct LogState {
    pub segments: BTreeMap<u32, SegMeta>,
    /// Keyed by store queue id (small integers): a cheap hash, looked up per message and ack.
    pub queues: FxHashMap<u64, IdSet>,
    pub delivered: FxHashMap<u64, u64>,
    pub next_id: u64,
}

impl LogState {
    /// Applies a MESSAGE record written at `slot`. Returns false if the id was refused.
    pub fn on_message(&mut self, index: &mut Index, id: u64, queues: &[u64], slot: Slot) -> bool {
        if !index.insert(id, slot) {
            return false;
        }
        self.next_id = self.next_id.max(id.saturating_add(1));
        let mut added = 0;
        for &q in queues {
            if self.queues.entry(q).or_default().insert(id) {
                added += 1;
            }
        }
        self.segments.entry(slot.segment).or_default().live += added;
        true
    }

    /// Applies an ACK, DELIVERED or PURGE record written in segment `segment`.
    pub fn on_pair(&mut self, index: &Index, segment: u32, kind: u8, queue: u64, id: u64) {
        match kind {
            kind::ACK => self.on_ack(index, segment, queue, id),
            kind::DELIVERED => self.on_delivered(queue, id),
            kind::PURGE => self.on_purge(index, segment, queue, id),
            _ => {}
        }
    }

    /// Applies a PURGE record: acks every message of `queue` with id <= `up_to`.
    pub fn on_purge(&mut self, index: &Index, segment: u32, queue: u64, up_to: u64) {
        if up_to == u64::MAX {
            self.delivered.remove(&queue);
        }
        let Some(set) = self.queues.get_mut(&queue) else { return };
        let mut purged = Vec::new();
        set.remove_up_to(up_to, |run| purged.push(run));
        if set.is_empty() {
            self.queues.remove(&queue);
        }
        for run in purged {
            index.split_run(run.first, run.count, |stored_in, n| self.release(segment, stored_in, n));
        }
    }

    /// `n` (message, queue) pairs of messages stored in `stored_in` were acked by a record in
    /// `segment`.
    fn release(&mut self, segment: u32, stored_in: u32, n: u64) {
        if let Some(meta) = self.segments.get_mut(&stored_in) {
            meta.live = meta.live.saturating_sub(n);
        }
        if stored_in < segment {
            self.segments.entry(segment).or_default().deps.insert(stored_in);
        }
    }

    /// Applies an ACK record written in segment `segment`. Its id raises `next_id` too: an ack
    /// may name an id whose append failed, and that id must not be handed out again.
    pub fn on_ack(&mut self, index: &Index, segment: u32, queue: u64, id: u64) {
        self.next_id = self.next_id.max(id.saturating_add(1));
        let Some(set) = self.queues.get_mut(&queue) else { return };
        if !set.remove(id) {
            return;
        }
        if set.is_empty() {
            self.queues.remove(&queue);
        }
        if let Some(stored_in) = index.segment_of(id) {
            self.release(segment, stored_in, 1);
        }
    }

    /// Applies a DELIVERED record.
    pub fn on_delivered(&mut self, queue: u64, up_to: u64) {
        self.next_id = self.next_id.max(up_to.saturating_add(1));
        let marker = self.delivered.entry(queue).or_default();
        *marker = (*marker).max(up_to);
    }

    /// Segments that may be deleted now: not `active`, no unacked message, and every older
    /// segment their acks refer to already gone.
    pub fn deletable(&self, active: u32) -> Vec<u32> {
        let gone = |s: &u32| !self.segments.contains_key(s);
        self.segments
            .iter()
            .filter(|(&seq, meta)| seq != active && meta.live == 0 && meta.deps.iter().all(gone))
            .map(|(&seq, _)| seq)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_pin_their_segment_while_the_acked_one_lives() {
        let (mut st, mut ix) = (LogState::default(), Index::default());
        let slot = |segment| Slot { segment, offset: 32, len: 10 };
        st.on_message(&mut ix, 1, &[7], slot(1)); // long-lived in segment 1
        st.on_message(&mut ix, 2, &[7, 8], slot(1));
        st.on_message(&mut ix, 3, &[7], slot(2));
        st.on_ack(&ix, 2, 7, 2);
        st.on_ack(&ix, 2, 8, 2);
        st.on_ack(&ix, 2, 8, 2); // duplicate: ignored
        st.on_ack(&ix, 2, 7, 3);
        assert_eq!(st.segments[&1].live, 1);
        assert_eq!(st.segments[&2].live, 0);
        // Segment 2 holds the acks of message 2 (segment 1): it must outlive segment 1.
        assert_eq!(st.deletable(3), Vec::<u32>::new());
        st.on_ack(&ix, 3, 7, 1);
        assert_eq!(st.deletable(3), vec![1]);
        st.segments.remove(&1);
        assert_eq!(st.deletable(3), vec![2]);
        assert_eq!(st.next_id, 4);
        assert!(st.queues.is_empty());
    }

    #[test]
    fn purge_acks_up_to_an_id_and_delete_forgets_the_marker() {
        let (mut st, mut ix) = (LogState::default(), Index::default());
        let slot = |segment| Slot { segment, offset: 32, len: 10 };
        for id in 1..=4 {
            st.on_message(&mut ix, id, &[7, 8], slot(1 + id as u32 / 3));
        }
        st.on_pair(&ix, 3, kind::DELIVERED, 7, 4);
        st.on_pair(&ix, 3, kind::PURGE, 7, 2);
        assert_eq!(st.queues[&7].runs(), vec![crate::IdRun { first: 3, count: 2 }]);
        assert_eq!(st.segments[&1].live, 2);
        assert_eq!(st.segments[&3].deps.iter().copied().collect::<Vec<_>>(), vec![1]);
        st.on_pair(&ix, 3, kind::PURGE, 7, u64::MAX);
        assert!(!st.queues.contains_key(&7) && !st.delivered.contains_key(&7));
        assert_eq!(st.next_id, 5, "a purge id never raises next_id");
        assert_eq!(st.segments[&2].live, 2);
    }
}
