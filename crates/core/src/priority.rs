//! A queue's messages by priority (`x-max-priority`): one FIFO [`QueueMessages`] per level,
//! highest level first, FIFO within a level. A queue without priorities has one level, so every
//! queue goes through this type. Sequence numbers carry their level in the low byte, so each
//! level keeps consecutive numbers of its own (its paged runs stay compact) and an ack finds its
//! level without a lookup.

use crate::queue::{Dropped, Entry, Load, QueueMessages};
use crate::Message;
use std::sync::Arc;

const LEVEL_BITS: u32 = 8;
const LEVEL_MASK: u64 = (1 << LEVEL_BITS) - 1;

#[derive(Debug)]
pub struct Prioritized {
    /// Index = priority.
    levels: Vec<QueueMessages>,
}

fn global(level: usize, seq: u64) -> u64 {
    (seq << LEVEL_BITS) | level as u64
}

fn split(seq: u64) -> (usize, u64) {
    ((seq & LEVEL_MASK) as usize, seq >> LEVEL_BITS)
}

fn relabel(level: usize, mut entry: Entry) -> Entry {
    entry.seq = global(level, entry.seq);
    entry
}

fn relabel_dropped(level: usize, dropped: Dropped) -> Dropped {
    match dropped {
        Dropped::Entry(e) => Dropped::Entry(relabel(level, e)),
        paged => paged,
    }
}

impl Prioritized {
    /// Messages of a queue with priorities `0..=max_priority` (`None`: one level), and
    /// `x-message-ttl` `message_ttl_ms`.
    pub fn new(max_priority: Option<u8>, message_ttl_ms: Option<u64>) -> Prioritized {
        let count = max_priority.map_or(1, |p| p as usize + 1);
        Prioritized { levels: (0..count).map(|_| QueueMessages::with_message_ttl(message_ttl_ms)).collect() }
    }

    /// A new `x-message-ttl` for messages pushed from now on.
    pub fn set_message_ttl(&mut self, message_ttl_ms: Option<u64>) {
        for level in &mut self.levels {
            level.set_message_ttl(message_ttl_ms);
        }
    }

    /// The level of `message`: its `priority` property, capped at the queue's maximum.
    pub fn level_of(&self, message: &Message) -> usize {
        if self.levels.len() == 1 {
            return 0;
        }
        let priority = amqp_codec::raw_properties::priority(&message.properties).unwrap_or(0) as usize;
        priority.min(self.levels.len() - 1)
    }

    /// Appends a message at its priority level; returns its sequence number.
    pub fn push_with(&mut self, message: Arc<Message>, stored: Option<u64>) -> u64 {
        let level = self.level_of(&message);
        global(level, self.levels[level].push_with(message, stored))
    }

    /// Appends recovered messages, paged out, at `level` (see [`QueueMessages::push_paged`]).
    pub fn push_paged(
        &mut self,
        level: usize,
        first_id: u64,
        count: u64,
        redelivered: bool,
        bytes: u64,
        deadline: Option<Option<u64>>,
    ) {
        let level = level.min(self.levels.len() - 1);
        self.levels[level].push_paged(first_id, count, redelivered, bytes, deadline);
    }

    /// The highest level with a ready message.
    fn top(&self) -> Option<usize> {
        (0..self.levels.len()).rev().find(|&l| self.levels[l].ready_count() > 0)
    }

    /// The next message to deliver: from the highest level that has one (see
    /// [`QueueMessages::pop_next`]). While the top message is paged out and not loaded, nothing
    /// of a lower level overtakes it.
    pub fn pop_next(
        &mut self,
        now_ms: u64,
        expired: &mut Vec<Dropped>,
        load: &mut dyn FnMut(u64) -> Load,
    ) -> Option<Entry> {
        loop {
            let level = self.top()?;
            let before = expired.len();
            let got = self.levels[level].pop_next(now_ms, expired, load);
            for d in &mut expired[before..] {
                *d = relabel_dropped(level, d.clone());
            }
            match got {
                Some(entry) => return Some(relabel(level, entry)),
                // The level emptied by expiry: look at the next one down.
                None if self.levels[level].ready_count() == 0 => continue,
                None => return None,
            }
        }
    }

    pub fn track_unacked(&mut self, entry: Entry) {
        let (level, seq) = split(entry.seq);
        let mut entry = entry;
        entry.seq = seq;
        self.levels[level].track_unacked(entry);
    }

    /// Settles a delivered message; returns it (with its queue-wide sequence number).
    pub fn ack(&mut self, seq: u64) -> Option<Entry> {
        let (level, local) = split(seq);
        self.levels.get_mut(level)?.ack(local).map(|e| relabel(level, e))
    }

    /// Puts back a message taken with [`Prioritized::ack`] (see [`QueueMessages::return_entry`]).
    pub fn return_entry(&mut self, mut entry: Entry) {
        let (level, local) = split(entry.seq);
        entry.seq = local;
        self.levels[level].return_entry(entry);
    }

    /// Puts back a message taken with [`Prioritized::pop_next`] that nobody received (see
    /// [`QueueMessages::put_back`]).
    pub fn put_back(&mut self, mut entry: Entry) {
        let (level, local) = split(entry.seq);
        entry.seq = local;
        self.levels[level].put_back(entry);
    }

    /// Up to `count` ready messages after the first `skip`, in delivery order (highest
    /// priority first), without taking them.
    pub fn peek(&self, mut skip: usize, count: usize) -> Vec<crate::queue::Peeked> {
        let mut out = Vec::new();
        for level in (0..self.levels.len()).rev() {
            let before = out.len();
            self.levels[level].peek(&mut skip, count - before, &mut out);
            for p in &mut out[before..] {
                match p {
                    crate::queue::Peeked::Entry(e) => e.seq = global(level, e.seq),
                    crate::queue::Peeked::Paged { seq, .. } => *seq = global(level, *seq),
                }
            }
            if out.len() >= count {
                break;
            }
        }
        out
    }

    pub fn requeue(&mut self, seq: u64) -> bool {
        match self.ack(seq) {
            Some(entry) => {
                self.return_entry(entry);
                true
            }
            None => false,
        }
    }

    /// Drops the head: the next message to be delivered (the highest priority's oldest), as
    /// RabbitMQ's priority queues do.
    pub fn drop_head(&mut self) -> Option<Dropped> {
        let level = self.top()?;
        self.levels[level].drop_head().map(|d| relabel_dropped(level, d))
    }

    pub fn expire_head(&mut self, now_ms: u64, expired: &mut Vec<Dropped>) {
        self.each_collecting(expired, |level, out| level.expire_head(now_ms, out));
    }

    pub fn sweep_expired(&mut self, now_ms: u64, expired: &mut Vec<Dropped>) {
        self.each_collecting(expired, |level, out| level.sweep_expired(now_ms, out));
    }

    fn each_collecting(&mut self, out: &mut Vec<Dropped>, mut f: impl FnMut(&mut QueueMessages, &mut Vec<Dropped>)) {
        for (l, level) in self.levels.iter_mut().enumerate() {
            let before = out.len();
            f(level, out);
            for d in &mut out[before..] {
                *d = relabel_dropped(l, d.clone());
            }
        }
    }

    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.levels.iter().filter_map(QueueMessages::next_deadline_ms).min()
    }

    pub fn deadlines_in_order(&self) -> bool {
        self.levels.iter().all(QueueMessages::deadlines_in_order)
    }

    /// Pages out the oldest in-memory messages of the lowest levels first, until all levels
    /// together take at most `budget_bytes` (see [`QueueMessages::page_out`]).
    pub fn page_out(&mut self, budget_bytes: u64, durable_up_to: u64) -> u64 {
        let mut total = self.memory_bytes();
        let mut paged = 0;
        for level in &mut self.levels {
            if total <= budget_bytes {
                break;
            }
            let own = level.memory_bytes();
            let others = total - own;
            paged += level.page_out(budget_bytes.saturating_sub(others), durable_up_to);
            total = others + level.memory_bytes();
        }
        paged
    }

    /// Writes messages not in the store yet, lowest levels first, while over `budget_bytes`
    /// (see [`QueueMessages::spill`]).
    pub fn spill(&mut self, budget_bytes: u64, store: &mut dyn FnMut(&Arc<Message>) -> Option<u64>) -> u64 {
        let total = self.memory_bytes();
        let mut written = 0;
        let mut rest = total;
        for level in &mut self.levels {
            let own = level.memory_bytes();
            written += level.spill(budget_bytes.saturating_sub(rest - own), store);
            rest -= own;
        }
        written
    }

    pub fn unstore(&mut self, id: u64) {
        self.levels.iter_mut().for_each(|l| l.unstore(id));
    }

    /// Store ids of the next paged-out messages of the top level, at most `max`.
    pub fn next_paged_ids(&self, max: usize) -> Vec<u64> {
        self.top().map(|l| self.levels[l].next_paged_ids(max)).unwrap_or_default()
    }

    /// The store id of the next message, if it is paged out.
    pub fn first_paged_id(&self) -> Option<u64> {
        self.top().and_then(|l| self.levels[l].first_paged_id())
    }

    pub fn purge(&mut self, mut dropped: impl FnMut(u64)) -> usize {
        self.levels.iter_mut().map(|l| l.purge(&mut dropped)).sum()
    }

    pub fn max_ready_stored(&self) -> Option<u64> {
        self.levels.iter().filter_map(QueueMessages::max_ready_stored).max()
    }

    pub fn remove_ready_stored(&mut self, id: u64) -> Option<Entry> {
        self.levels.iter_mut().find_map(|l| l.remove_ready_stored(id))
    }

    pub fn unacked_stored(&self) -> usize {
        self.levels.iter().map(QueueMessages::unacked_stored).sum()
    }

    pub fn ready_count(&self) -> usize {
        self.levels.iter().map(QueueMessages::ready_count).sum()
    }

    pub fn paged_count(&self) -> u64 {
        self.levels.iter().map(QueueMessages::paged_count).sum()
    }

    pub fn memory_bytes(&self) -> u64 {
        self.levels.iter().map(QueueMessages::memory_bytes).sum()
    }

    pub fn unacked_count(&self) -> usize {
        self.levels.iter().map(QueueMessages::unacked_count).sum()
    }

    pub fn ready_bytes(&self) -> u64 {
        self.levels.iter().map(QueueMessages::ready_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::{BasicProperties, ShortStr};
    use bytes::Bytes;

    fn msg(priority: Option<u8>, n: u8) -> Arc<Message> {
        let props = BasicProperties { priority, ..Default::default() };
        Arc::new(Message::new(
            ShortStr::from_static(""),
            ShortStr::from_static("q"),
            props.to_raw(),
            Bytes::from(vec![n]),
        ))
    }

    fn drain(q: &mut Prioritized) -> Vec<u8> {
        std::iter::from_fn(|| q.pop_next(0, &mut Vec::new(), &mut |_| Load::Unreadable))
            .map(|e| e.message.body[0])
            .collect()
    }

    #[test]
    fn higher_priority_first_fifo_within_a_level_capped_at_the_maximum() {
        let mut q = Prioritized::new(Some(5), None);
        for (p, n) in [(None, 1), (Some(3), 2), (Some(9), 3), (Some(3), 4), (Some(0), 5), (Some(5), 6)] {
            q.push_with(msg(p, n), None);
        }
        assert_eq!(drain(&mut q), vec![3, 6, 2, 4, 1, 5], "9 counts as 5; FIFO among equals");
    }

    #[test]
    fn without_priorities_the_property_is_ignored() {
        let mut q = Prioritized::new(None, None);
        for (p, n) in [(Some(1), 1), (Some(9), 2), (None, 3)] {
            q.push_with(msg(p, n), None);
        }
        assert_eq!(drain(&mut q), vec![1, 2, 3]);
    }

    #[test]
    fn acks_and_requeues_find_their_level_and_drops_take_the_lowest() {
        let mut q = Prioritized::new(Some(2), None);
        q.push_with(msg(Some(2), 20), None);
        q.push_with(msg(Some(0), 1), None);
        q.push_with(msg(Some(0), 2), None);
        let high = q.pop_next(0, &mut Vec::new(), &mut |_| Load::Unreadable).unwrap();
        assert_eq!(high.message.body[0], 20);
        q.track_unacked(high.clone());
        assert_eq!(q.unacked_count(), 1);
        assert!(q.requeue(high.seq));
        let again = q.pop_next(0, &mut Vec::new(), &mut |_| Load::Unreadable).unwrap();
        assert_eq!((again.message.body[0], again.redelivered, again.seq), (20, true, high.seq));
        q.track_unacked(again.clone());
        assert!(q.ack(again.seq).is_some());
        q.push_with(msg(Some(1), 10), None);
        let Some(Dropped::Entry(dropped)) = q.drop_head() else { panic!("a message to drop") };
        assert_eq!(dropped.message.body[0], 10, "the head: the highest level's oldest");
        assert_eq!((q.ready_count(), q.unacked_count()), (2, 0));
    }
}
