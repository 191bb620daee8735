//! The message state of one queue: ready messages in order, requeued messages that go out first in
//! their original order, and delivered-but-unacknowledged messages keyed by queue sequence number.
//! Ready messages whose bodies are safely in the store can be paged out: they then cost a few
//! bytes per run of consecutive store ids instead of their bodies, and are loaded back (through a
//! loader the caller passes: this crate does no IO) when they are delivered. Messages expire by
//! their deadline (queue TTL or `expiration`, time passed in): at the head whenever the queue is
//! looked at, and anywhere in the queue on a sweep.

mod browse;
pub use browse::Peeked;

use crate::Message;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
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
    /// When the message expires in this queue (ms since the epoch); `None` if never.
    pub expires_at_ms: Option<u64>,
}

impl Entry {
    fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|d| d <= now_ms)
    }
}

/// A ready message taken out of the queue without being delivered (expired, or dropped to keep
/// a length limit).
#[derive(Debug, Clone)]
pub enum Dropped {
    Entry(Entry),
    /// A paged-out message, by store id: its body is only in the store.
    Paged(u64),
}

impl Dropped {
    pub fn stored(&self) -> Option<u64> {
        match self {
            Dropped::Entry(e) => e.stored,
            Dropped::Paged(id) => Some(*id),
        }
    }
}

/// When the messages of a paged run expire: all at once, at the latest deadline among them.
/// Runs merge messages whose deadlines lie within [`RUN_DEADLINE_SPAN_MS`], so a paged-out
/// message may leave up to that much after its deadline; it is never delivered after it (a
/// loaded message's own deadline is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunDeadline {
    Never,
    /// The latest deadline in the run.
    At(u64),
    /// Recovered after a restart: known once a message is loaded (from its timestamp).
    Unknown,
}

impl RunDeadline {
    fn of(deadline: Option<u64>) -> RunDeadline {
        deadline.map_or(RunDeadline::Never, RunDeadline::At)
    }

    fn passed(self, now_ms: u64) -> bool {
        matches!(self, RunDeadline::At(d) if d <= now_ms)
    }
}

/// Ready messages that live only in the store: consecutive queue positions holding consecutive
/// store ids, all with the same redelivered flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PagedRun {
    first_seq: u64,
    first_id: u64,
    count: u64,
    redelivered: bool,
    /// Body bytes of the run as far as known (counted in `ready_bytes`); recovered runs have
    /// none known, so a queue's byte count after a restart starts from what is published later.
    bytes: u64,
    deadline: RunDeadline,
    /// The earliest deadline in the run (with `RunDeadline::At`), for merging.
    deadline_from_ms: u64,
}

/// What a loader of paged-out messages has for one store id.
#[derive(Debug)]
pub enum Load {
    /// The body, read back from the store.
    Loaded(Arc<Message>),
    /// Not read yet: delivery waits (the loader has asked for it).
    NotYet,
    /// It cannot be read: it is skipped (the loader reports it).
    Unreadable,
}

/// How far apart the deadlines of the messages of one paged run may be: a paged-out message
/// expires at most this late, and a TTL queue's backlog pages out in runs of this much
/// publishing instead of one run per message.
pub const RUN_DEADLINE_SPAN_MS: u64 = 1000;

/// Memory an in-memory ready message is charged beyond its body (entry, message, headers).
pub const ENTRY_OVERHEAD_BYTES: u64 = 256;

#[derive(Debug, Default)]
pub struct QueueMessages {
    next_seq: u64,
    /// Paged-out ready messages, oldest first; all of them precede `ready`.
    paged: VecDeque<PagedRun>,
    paged_count: u64,
    /// Bodies of the in-memory ready messages, plus [`ENTRY_OVERHEAD_BYTES`] each.
    memory_bytes: u64,
    /// In-memory ready messages with a lower seq have been considered by `spill`.
    spill_cursor: u64,
    ready: VecDeque<Entry>,
    /// Requeued messages; delivered before `ready` so a queue keeps its order across redelivery.
    returned: BTreeMap<u64, Entry>,
    /// By sequence number; Fx hashing, as every delivery and ack touches it.
    unacked: FxHashMap<u64, Entry>,
    ready_bytes: u64,
    unacked_bytes: u64,
    /// The queue's `x-message-ttl`.
    message_ttl_ms: Option<u64>,
    /// No deadline among the ready messages is earlier than this (exact after a sweep).
    min_deadline_ms: Option<u64>,
    /// Some ready message has an earlier deadline than one before it, so the head is not
    /// necessarily the first to expire and expiry needs a sweep.
    out_of_order: bool,
    /// Deadline of the last message pushed (`u64::MAX`: never), for `out_of_order`.
    last_deadline_ms: u64,
}

impl QueueMessages {
    /// Messages of a queue whose `x-message-ttl` is `message_ttl_ms`.
    pub fn with_message_ttl(message_ttl_ms: Option<u64>) -> QueueMessages {
        QueueMessages { message_ttl_ms, ..QueueMessages::default() }
    }

    /// A new `x-message-ttl` (a policy changed): it applies to messages pushed from now on.
    pub fn set_message_ttl(&mut self, message_ttl_ms: Option<u64>) {
        if self.message_ttl_ms != message_ttl_ms {
            self.message_ttl_ms = message_ttl_ms;
            // The next deadlines may come before those queued: expiry must look past the head.
            self.out_of_order |= self.ready_count() > 0;
        }
    }

    pub fn push(&mut self, message: Arc<Message>) -> u64 {
        self.push_with(message, None)
    }

    /// Appends a message, stored in the log under id `stored` if any.
    pub fn push_with(&mut self, message: Arc<Message>, stored: Option<u64>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires_at_ms = message.deadline_ms(self.message_ttl_ms);
        self.note_deadline(expires_at_ms);
        self.ready_bytes += message.body_len() as u64;
        self.memory_bytes += message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
        self.ready.push_back(Entry { seq, message, redelivered: false, delivery_count: 0, stored, expires_at_ms });
        seq
    }

    fn note_deadline(&mut self, deadline: Option<u64>) {
        if self.ready_count() == 0 {
            self.out_of_order = false;
            self.last_deadline_ms = 0;
        }
        let d = deadline.unwrap_or(u64::MAX);
        self.out_of_order |= d < self.last_deadline_ms;
        self.last_deadline_ms = d;
        if let Some(d) = deadline {
            self.min_deadline_ms = Some(self.min_deadline_ms.map_or(d, |m| m.min(d)));
        }
    }

    /// Appends `count` messages stored under consecutive ids from `first_id`, paged out from the
    /// start (a queue recovered after a restart). They must come before anything in memory.
    /// `deadline` is when they all expire if known (`Some(None)`: never); unknown deadlines
    /// are learnt when each message is loaded.
    /// `bytes` is their body size if known (for `x-max-length-bytes`).
    pub fn push_paged(
        &mut self,
        first_id: u64,
        count: u64,
        redelivered: bool,
        bytes: u64,
        deadline: Option<Option<u64>>,
    ) {
        debug_assert!(self.ready.is_empty(), "paged messages precede in-memory ones");
        if count == 0 {
            return;
        }
        let deadline = match deadline {
            Some(d) => {
                self.note_deadline(d);
                RunDeadline::of(d)
            }
            None => {
                // The head may hide an earlier deadline: expiry must look past it.
                self.out_of_order = true;
                RunDeadline::Unknown
            }
        };
        let deadline_from_ms = match deadline {
            RunDeadline::At(d) => d,
            _ => 0,
        };
        self.ready_bytes += bytes;
        let run =
            PagedRun { first_seq: self.next_seq, first_id, count, redelivered, bytes, deadline, deadline_from_ms };
        self.next_seq += count;
        self.paged_count += count;
        self.append_run(run);
    }

    fn append_run(&mut self, run: PagedRun) {
        if let Some(last) = self.paged.back_mut() {
            let follows = last.first_seq + last.count == run.first_seq && last.first_id + last.count == run.first_id;
            let deadline = match (last.deadline, run.deadline) {
                (RunDeadline::At(a), RunDeadline::At(b)) => {
                    let (from, to) = (last.deadline_from_ms.min(run.deadline_from_ms), a.max(b));
                    (to - from <= RUN_DEADLINE_SPAN_MS).then_some((RunDeadline::At(to), from))
                }
                (a, b) if a == b => Some((a, 0)),
                _ => None,
            };
            if let (true, true, Some((deadline, from))) = (follows, last.redelivered == run.redelivered, deadline) {
                last.count += run.count;
                last.bytes += run.bytes;
                (last.deadline, last.deadline_from_ms) = (deadline, from);
                return;
            }
        }
        self.paged.push_back(run);
    }

    /// Pages out in-memory ready messages, oldest first, while they take more than
    /// `budget_bytes`. Only messages stored under an id up to `durable_up_to` (so the store can
    /// read them back) that were never delivered can go; paging stops at the first that cannot,
    /// so the order of the queue is kept. Returns how many were paged out.
    pub fn page_out(&mut self, budget_bytes: u64, durable_up_to: u64) -> u64 {
        let mut paged = 0;
        while self.memory_bytes > budget_bytes {
            let Some(front) = self.ready.front() else { break };
            let Some(id) = front.stored.filter(|&id| id <= durable_up_to && front.delivery_count == 0) else { break };
            let entry = self.ready.pop_front().expect("front exists");
            self.memory_bytes -= entry.message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
            self.paged_count += 1;
            let bytes = entry.message.body_len() as u64;
            self.append_run(PagedRun {
                first_seq: entry.seq,
                first_id: id,
                count: 1,
                redelivered: entry.redelivered,
                bytes,
                deadline: RunDeadline::of(entry.expires_at_ms),
                deadline_from_ms: entry.expires_at_ms.unwrap_or(0),
            });
            paged += 1;
        }
        paged
    }

    /// While in-memory ready messages take more than `budget_bytes`, writes every one not in the
    /// store yet through `store` (which returns its store id, or `None` when it cannot write
    /// now), so that `page_out` can drop them once durable. Each message is offered once.
    /// Returns how many were written.
    pub fn spill(&mut self, budget_bytes: u64, store: &mut dyn FnMut(&Arc<Message>) -> Option<u64>) -> u64 {
        if self.memory_bytes <= budget_bytes {
            return 0;
        }
        let mut written = 0;
        let from = self.ready.partition_point(|e| e.seq < self.spill_cursor);
        for entry in self.ready.range_mut(from..) {
            if entry.stored.is_none() {
                let Some(id) = store(&entry.message) else { break };
                entry.stored = Some(id);
                written += 1;
            }
            self.spill_cursor = entry.seq + 1;
        }
        written
    }

    /// Forgets the store id of the ready message written under `id` (the write failed): it
    /// stays in memory and may be written again.
    pub fn unstore(&mut self, id: u64) {
        if let Some(entry) = self.ready.iter_mut().rev().find(|e| e.stored == Some(id)) {
            entry.stored = None;
            self.spill_cursor = self.spill_cursor.min(entry.seq);
        }
    }

    /// Take the next message to deliver, loading a paged-out one with `load` (given its store
    /// id). The caller either hands the entry to `track_unacked` (manual ack) or lets it go
    /// (no-ack). Messages whose deadline passed by `now_ms` are taken out on the way, into
    /// `expired`. `None` when nothing is ready, or when the next message is paged out and its
    /// body is not loaded yet ([`Load::NotYet`]: it stays first in line).
    pub fn pop_next(
        &mut self,
        now_ms: u64,
        expired: &mut Vec<Dropped>,
        load: &mut dyn FnMut(u64) -> Load,
    ) -> Option<Entry> {
        loop {
            self.expire_head(now_ms, expired);
            let mut entry = self.take_head(load)?;
            if entry.expired(now_ms) {
                expired.push(Dropped::Entry(entry));
                continue;
            }
            entry.delivery_count += 1;
            return Some(entry);
        }
    }

    /// Takes the first ready message (loading it if paged out), without counting a delivery.
    fn take_head(&mut self, load: &mut dyn FnMut(u64) -> Load) -> Option<Entry> {
        if let Some((_, entry)) = self.returned.pop_first() {
            self.ready_bytes -= entry.message.body_len() as u64;
            return Some(entry);
        }
        while let Some(run) = self.paged.front() {
            let (seq, id, redelivered, deadline) = (run.first_seq, run.first_id, run.redelivered, run.deadline);
            let message = match load(id) {
                Load::NotYet => return None,
                Load::Loaded(m) => Some(m),
                Load::Unreadable => None,
            };
            self.advance_paged_front(message.as_ref().map(|m| m.body_len() as u64));
            if let Some(message) = message {
                let expires_at_ms = match deadline {
                    RunDeadline::Never => None,
                    // The run's deadline is its latest: the message's own is exact.
                    RunDeadline::At(_) | RunDeadline::Unknown => message.deadline_ms(self.message_ttl_ms),
                };
                return Some(Entry { seq, message, redelivered, delivery_count: 0, stored: Some(id), expires_at_ms });
            }
        }
        let entry = self.ready.pop_front()?;
        self.ready_bytes -= entry.message.body_len() as u64;
        self.memory_bytes -= entry.message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
        Some(entry)
    }

    /// Takes the first message off the first paged run; `body_len` if known (else the run's
    /// average is uncounted).
    fn advance_paged_front(&mut self, body_len: Option<u64>) {
        let run = self.paged.front_mut().expect("a paged run");
        let known = match body_len {
            _ if run.count == 1 => run.bytes,
            Some(len) => len.min(run.bytes),
            None => run.bytes / run.count,
        };
        run.first_seq += 1;
        run.first_id += 1;
        run.count -= 1;
        run.bytes -= known;
        self.ready_bytes -= known;
        if run.count == 0 {
            self.paged.pop_front();
        }
        self.paged_count -= 1;
    }

    /// Takes the first ready message out without delivering it or reading a paged-out body
    /// (to keep a length limit by dropping the head).
    pub fn drop_head(&mut self) -> Option<Dropped> {
        if let Some((_, entry)) = self.returned.pop_first() {
            self.ready_bytes -= entry.message.body_len() as u64;
            return Some(Dropped::Entry(entry));
        }
        if let Some(id) = self.paged.front().map(|r| r.first_id) {
            self.advance_paged_front(None);
            return Some(Dropped::Paged(id));
        }
        let entry = self.ready.pop_front()?;
        self.ready_bytes -= entry.message.body_len() as u64;
        self.memory_bytes -= entry.message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
        Some(Dropped::Entry(entry))
    }

    /// Takes out the messages at the head of the queue whose deadline passed by `now_ms`.
    pub fn expire_head(&mut self, now_ms: u64, expired: &mut Vec<Dropped>) {
        if self.min_deadline_ms.is_none_or(|d| d > now_ms) {
            return;
        }
        loop {
            if let Some((_, first)) = self.returned.first_key_value() {
                if !first.expired(now_ms) {
                    return;
                }
                let (_, entry) = self.returned.pop_first().expect("first exists");
                self.ready_bytes -= entry.message.body_len() as u64;
                expired.push(Dropped::Entry(entry));
                continue;
            }
            if let Some(run) = self.paged.front() {
                if !run.deadline.passed(now_ms) {
                    return;
                }
                let run = self.paged.pop_front().expect("front exists");
                self.paged_count -= run.count;
                self.ready_bytes -= run.bytes;
                expired.extend((run.first_id..run.first_id + run.count).map(Dropped::Paged));
                continue;
            }
            match self.ready.front() {
                Some(e) if e.expired(now_ms) => {
                    let entry = self.ready.pop_front().expect("front exists");
                    self.ready_bytes -= entry.message.body_len() as u64;
                    self.memory_bytes -= entry.message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
                    expired.push(Dropped::Entry(entry));
                }
                _ => return,
            }
        }
    }

    /// Takes out every ready message whose deadline passed by `now_ms`, wherever it is in the
    /// queue (a full pass only when deadlines are out of queue order; else the head suffices).
    /// Paged-out messages recovered after a restart expire when they are loaded.
    pub fn sweep_expired(&mut self, now_ms: u64, expired: &mut Vec<Dropped>) {
        self.expire_head(now_ms, expired);
        if !self.out_of_order || self.min_deadline_ms.is_none_or(|d| d > now_ms) {
            return;
        }
        let gone: Vec<u64> = self.returned.iter().filter(|(_, e)| e.expired(now_ms)).map(|(s, _)| *s).collect();
        for seq in gone {
            let entry = self.returned.remove(&seq).expect("listed");
            self.ready_bytes -= entry.message.body_len() as u64;
            expired.push(Dropped::Entry(entry));
        }
        let mut kept_runs = VecDeque::with_capacity(self.paged.len());
        for run in std::mem::take(&mut self.paged) {
            if run.deadline.passed(now_ms) {
                self.paged_count -= run.count;
                self.ready_bytes -= run.bytes;
                expired.extend((run.first_id..run.first_id + run.count).map(Dropped::Paged));
            } else {
                kept_runs.push_back(run);
            }
        }
        self.paged = kept_runs;
        let mut kept = VecDeque::with_capacity(self.ready.len());
        for entry in std::mem::take(&mut self.ready) {
            if entry.expired(now_ms) {
                self.ready_bytes -= entry.message.body_len() as u64;
                self.memory_bytes -= entry.message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
                expired.push(Dropped::Entry(entry));
            } else {
                kept.push_back(entry);
            }
        }
        self.ready = kept;
        self.recompute_deadlines();
    }

    /// Exact `min_deadline_ms`, `out_of_order` and `last_deadline_ms` from what is ready.
    fn recompute_deadlines(&mut self) {
        let run_deadline = |r: &PagedRun| match r.deadline {
            RunDeadline::At(d) => Some(d),
            _ => None,
        };
        let deadlines = self
            .returned
            .values()
            .map(|e| e.expires_at_ms)
            .chain(self.paged.iter().map(run_deadline))
            .chain(self.ready.iter().map(|e| e.expires_at_ms));
        let unknown = self.paged.iter().any(|r| r.deadline == RunDeadline::Unknown);
        let (mut min, mut last, mut out_of_order) = (None, 0, unknown);
        for d in deadlines {
            let key = d.unwrap_or(u64::MAX);
            out_of_order |= key < last;
            last = key;
            if let Some(d) = d {
                min = Some(min.map_or(d, |m: u64| m.min(d)));
            }
        }
        (self.min_deadline_ms, self.last_deadline_ms, self.out_of_order) = (min, last, out_of_order);
    }

    /// Whether the head is always the next to expire (else expiry needs `sweep_expired`).
    pub fn deadlines_in_order(&self) -> bool {
        !self.out_of_order
    }

    /// When the next message may expire (for the caller's timer); `None` if none can.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        if self.out_of_order {
            return self.min_deadline_ms;
        }
        if let Some((_, e)) = self.returned.first_key_value() {
            return e.expires_at_ms;
        }
        if let Some(run) = self.paged.front() {
            return match run.deadline {
                RunDeadline::At(d) => Some(d),
                _ => None,
            };
        }
        self.ready.front().and_then(|e| e.expires_at_ms)
    }

    /// The store ids of the first paged-out messages in line, at most `max` of them (what to
    /// load next).
    pub fn next_paged_ids(&self, max: usize) -> Vec<u64> {
        self.paged.iter().flat_map(|r| r.first_id..r.first_id + r.count).take(max).collect()
    }

    /// The store id of the first paged-out message in line, if the next message is paged out.
    pub fn first_paged_id(&self) -> Option<u64> {
        self.paged.front().filter(|_| self.returned.is_empty()).map(|r| r.first_id)
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
        let Some(entry) = self.ack(seq) else { return false };
        self.return_entry(entry);
        true
    }

    /// Put back a delivered message the caller took with [`QueueMessages::ack`] (maybe with
    /// its message changed), marked redelivered, at its original position.
    pub fn return_entry(&mut self, mut entry: Entry) {
        entry.redelivered = true;
        let deadline = entry.expires_at_ms;
        if self.ready_count() == 0 {
            (self.out_of_order, self.last_deadline_ms) = (false, deadline.unwrap_or(u64::MAX));
        } else {
            let at_front = self.returned.first_key_value().is_none_or(|(s, _)| entry.seq < *s);
            let head = self.next_deadline_ms().unwrap_or(u64::MAX);
            self.out_of_order |= !at_front || deadline.unwrap_or(u64::MAX) > head;
        }
        if let Some(d) = deadline {
            self.min_deadline_ms = Some(self.min_deadline_ms.map_or(d, |m| m.min(d)));
        }
        self.ready_bytes += entry.message.body_len() as u64;
        self.returned.insert(entry.seq, entry);
    }

    /// Drop every ready message (unacked ones stay, as in AMQP), showing the store id of each
    /// stored one to `dropped`; returns how many were dropped.
    pub fn purge(&mut self, mut dropped: impl FnMut(u64)) -> usize {
        let n = self.ready_count();
        self.returned.values().chain(&self.ready).filter_map(|e| e.stored).for_each(&mut dropped);
        self.paged.iter().flat_map(|r| r.first_id..r.first_id + r.count).for_each(&mut dropped);
        self.ready.clear();
        self.returned.clear();
        self.paged.clear();
        self.paged_count = 0;
        self.ready_bytes = 0;
        self.memory_bytes = 0;
        self.min_deadline_ms = None;
        n
    }

    /// The highest store id among the ready messages (paged out or not).
    pub fn max_ready_stored(&self) -> Option<u64> {
        let in_memory = self.returned.values().chain(&self.ready).filter_map(|e| e.stored).max();
        let paged = self.paged.back().map(|r| r.first_id + r.count - 1);
        in_memory.max(paged)
    }

    /// Removes the ready message stored under `id` (its write failed, so its publisher was
    /// nacked); false if it is not ready (already delivered, or never here). Looks from the
    /// back: a failed write is reported moments after the publish.
    pub fn remove_ready_stored(&mut self, id: u64) -> Option<Entry> {
        let found = self.ready.iter().rposition(|e| e.stored == Some(id));
        let entry = found.and_then(|i| self.ready.remove(i))?;
        self.ready_bytes -= entry.message.body_len() as u64;
        self.memory_bytes -= entry.message.body_len() as u64 + ENTRY_OVERHEAD_BYTES;
        Some(entry)
    }

    /// Unacked messages that are persisted in the store.
    pub fn unacked_stored(&self) -> usize {
        self.unacked.values().filter(|e| e.stored.is_some()).count()
    }

    pub fn ready_count(&self) -> usize {
        self.paged_count as usize + self.ready.len() + self.returned.len()
    }

    /// Ready messages paged out to the store.
    pub fn paged_count(&self) -> u64 {
        self.paged_count
    }

    /// Memory the in-memory ready messages are charged (see [`ENTRY_OVERHEAD_BYTES`]).
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes
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

    fn no_load(_: u64) -> Load {
        Load::Unreadable
    }

    #[test]
    fn paged_out_messages_are_loaded_back_in_order_and_unreadable_ones_skipped() {
        let mut q = QueueMessages::default();
        q.push_paged(10, 3, true, 0, None); // recovered: ids 10..=12, delivered before the restart
        for id in 13..17 {
            q.push_with(msg(id as u8), Some(id));
        }
        q.push(msg(99)); // transient: never paged
        q.push_with(msg(17), Some(17));
        assert_eq!(q.ready_count(), 9);
        // Only what is durable pages out, and paging stops where order would break.
        assert_eq!(q.page_out(0, 14), 2);
        assert_eq!(q.page_out(0, 100), 2, "stops at the transient message");
        assert_eq!((q.paged_count(), q.ready_count()), (7, 9));
        assert_eq!(q.memory_bytes(), 2 * (1 + ENTRY_OVERHEAD_BYTES));
        let mut loads = Vec::new();
        let mut load = |id: u64| {
            loads.push(id);
            if id == 11 {
                Load::Unreadable
            } else {
                Load::Loaded(msg(id as u8))
            }
        };
        assert!(q.pop_next(0, &mut Vec::new(), &mut |_| Load::NotYet).is_none(), "not loaded yet: nothing to deliver");
        assert_eq!((q.ready_count(), q.first_paged_id()), (9, Some(10)), "and it stays first in line");
        assert_eq!(q.next_paged_ids(4), vec![10, 11, 12, 13]);
        let mut got = Vec::new();
        while let Some(e) = q.pop_next(0, &mut Vec::new(), &mut load) {
            got.push((e.seq, e.stored, e.redelivered, e.message.body[0]));
        }
        assert_eq!(loads, vec![10, 11, 12, 13, 14, 15, 16]);
        let expected = vec![
            (0, Some(10), true, 10),
            (2, Some(12), true, 12),
            (3, Some(13), false, 13),
            (4, Some(14), false, 14),
            (5, Some(15), false, 15),
            (6, Some(16), false, 16),
            (7, None, false, 99),
            (8, Some(17), false, 17),
        ];
        assert_eq!(got, expected, "id 11 could not be read and was skipped");
        assert_eq!((q.ready_count(), q.memory_bytes()), (0, 0));
    }

    #[test]
    fn spill_writes_what_is_not_stored_once_and_only_over_budget() {
        let mut q = QueueMessages::default();
        q.push_with(msg(1), Some(1));
        q.push(msg(2));
        q.push(msg(3));
        let mut next_id = 10;
        let mut writes = Vec::new();
        let mut store = |m: &Arc<Message>| {
            writes.push(m.body[0]);
            next_id += 1;
            Some(next_id)
        };
        assert_eq!(q.spill(u64::MAX, &mut store), 0, "within budget: nothing to write");
        assert_eq!(q.spill(0, &mut store), 2);
        assert_eq!(q.spill(0, &mut store), 0, "each message is written once");
        q.push(msg(4));
        assert_eq!(q.spill(0, &mut store), 1);
        assert_eq!(writes, vec![2, 3, 4]);
        q.unstore(12); // the write of message 3 failed: it may be written again
        let mut rewrites = Vec::new();
        assert_eq!(
            q.spill(0, &mut |m: &Arc<Message>| {
                rewrites.push(m.body[0]);
                Some(20)
            }),
            1
        );
        assert_eq!(rewrites, vec![3]);
        assert_eq!(q.page_out(0, 20), 4, "all are stored now and page out in order");
        let ids: Vec<Option<u64>> =
            std::iter::from_fn(|| q.pop_next(0, &mut Vec::new(), &mut |id| Load::Loaded(msg(id as u8))))
                .map(|e| e.stored)
                .collect();
        assert_eq!(ids, vec![Some(1), Some(11), Some(20), Some(13)]);
    }

    #[test]
    fn a_ttl_backlog_pages_out_in_runs_that_expire_whole_and_never_early() {
        let mut q = QueueMessages::with_message_ttl(Some(10_000));
        // 3,000 messages, one per ms: deadlines 1 ms apart.
        for i in 0..3000u64 {
            let m =
                Message::new(ShortStr::from_static(""), ShortStr::from_static("q"), Bytes::new(), Bytes::from(vec![1]));
            q.push_with(Arc::new(m.at(1_000 + i)), Some(i));
        }
        assert_eq!(q.page_out(0, u64::MAX), 3000);
        assert_eq!(q.paged.len(), 3, "one run per second of publishing, not one per message");
        let mut expired = Vec::new();
        q.sweep_expired(11_000 + 998, &mut expired);
        assert!(expired.is_empty(), "the first run's last deadline has not passed");
        q.sweep_expired(11_000 + 1000, &mut expired);
        assert_eq!(expired.len(), 1001, "the whole first run, at its latest deadline");
        // A loaded message's own deadline decides delivery.
        let got = q.pop_next(12_500, &mut expired, &mut |id| {
            let m =
                Message::new(ShortStr::from_static(""), ShortStr::from_static("q"), Bytes::new(), Bytes::from(vec![1]));
            Load::Loaded(Arc::new(m.at(1_000 + id)))
        });
        assert_eq!(got.map(|e| e.stored), Some(Some(1501)), "1001..=1500 expired on the way");
        assert_eq!(expired.len(), 1501);
    }

    #[test]
    fn purge_reports_every_stored_id_including_paged_ones() {
        let mut q = QueueMessages::default();
        q.push_paged(5, 2, false, 0, None);
        q.push_with(msg(7), Some(7));
        q.push(msg(0));
        assert_eq!(q.max_ready_stored(), Some(7));
        let mut ids = Vec::new();
        assert_eq!(q.purge(|id| ids.push(id)), 4);
        assert_eq!(ids, vec![7, 5, 6]);
        assert_eq!((q.ready_count(), q.paged_count(), q.max_ready_stored()), (0, 0, None));
    }

    #[test]
    fn requeued_messages_go_first_in_original_order() {
        let mut q = QueueMessages::default();
        for i in 0..4 {
            q.push(msg(i));
        }
        let a = q.pop_next(0, &mut Vec::new(), &mut no_load).unwrap();
        let b = q.pop_next(0, &mut Vec::new(), &mut no_load).unwrap();
        q.track_unacked(a.clone());
        q.track_unacked(b.clone());
        assert!(q.requeue(b.seq));
        assert!(q.requeue(a.seq));
        let order: Vec<(u64, bool)> = std::iter::from_fn(|| q.pop_next(0, &mut Vec::new(), &mut no_load))
            .map(|e| (e.seq, e.redelivered))
            .collect();
        assert_eq!(order, vec![(0, true), (1, true), (2, false), (3, false)]);
    }

    #[test]
    fn ack_is_idempotent_and_purge_keeps_unacked() {
        let mut q = QueueMessages::default();
        q.push(msg(1));
        q.push(msg(2));
        let e = q.pop_next(0, &mut Vec::new(), &mut no_load).unwrap();
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
        PageOut,
    }

    proptest! {
        /// Against a model: every pushed message is, at all times, exactly one of ready, unacked or
        /// acked; nothing is lost or duplicated, paged out or not.
        #[test]
        fn nothing_lost_or_duplicated(ops in prop::collection::vec(prop_oneof![
            Just(Op::Push), Just(Op::Deliver), (0usize..16).prop_map(Op::Ack), (0usize..16).prop_map(Op::Requeue),
            Just(Op::PageOut)
        ], 0..200)) {
            let mut q = QueueMessages::default();
            let mut pushed = 0u64;
            let mut unacked: Vec<u64> = Vec::new();
            let mut acked = BTreeSet::new();
            for op in ops {
                match op {
                    // Every message is stored under its own id (= its seq), so all can page out.
                    Op::Push => { q.push_with(msg(0), Some(pushed)); pushed += 1; }
                    Op::PageOut => { q.page_out(0, u64::MAX); }
                    Op::Deliver => if let Some(e) = q.pop_next(0, &mut Vec::new(), &mut |_| Load::Loaded(msg(0))) {
                        prop_assert_eq!(e.stored, Some(e.seq));
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

    #[derive(Debug, Clone)]
    enum PolicyOp {
        Push(Option<u64>),
        Deliver,
        Ack(usize),
        Requeue(usize),
        Reject(usize),
        PageOut,
        Tick(u64),
        Sweep,
        DropHead,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fate {
        Ready,
        Unacked,
        Gone,
    }

    fn expiring(n: u64, expiration_ms: Option<u64>, now_ms: u64) -> Arc<Message> {
        let props = amqp_codec::BasicProperties {
            expiration: expiration_ms.map(|e| ShortStr::from(e.to_string().as_str())),
            ..Default::default()
        };
        Arc::new(
            Message::new(
                ShortStr::from_static(""),
                ShortStr::from_static("q"),
                props.to_raw(),
                Bytes::from(n.to_le_bytes().to_vec()),
            )
            .at(now_ms),
        )
    }

    proptest! {
        /// The queue state machine with TTLs, paging, requeues, rejects, length-limit drops and
        /// clock ticks, against a model: every message is ready, unacked or gone (acked,
        /// rejected, expired, dropped), never two at once; a delivered message had not expired;
        /// an expired one had; after a sweep nothing expired is left; first deliveries keep
        /// publish order; a dropped head is the oldest ready message.
        #[test]
        fn policies_keep_every_message_accounted_for(
            queue_ttl in prop::option::of(0u64..3000),
            ops in prop::collection::vec(prop_oneof![
                3 => prop::option::of(0u64..3000).prop_map(PolicyOp::Push),
                3 => Just(PolicyOp::Deliver),
                1 => (0usize..16).prop_map(PolicyOp::Ack),
                1 => (0usize..16).prop_map(PolicyOp::Requeue),
                1 => (0usize..16).prop_map(PolicyOp::Reject),
                1 => Just(PolicyOp::PageOut),
                2 => (0u64..600).prop_map(PolicyOp::Tick),
                1 => Just(PolicyOp::Sweep),
                1 => Just(PolicyOp::DropHead),
            ], 0..250),
        ) {
            let mut q = QueueMessages::with_message_ttl(queue_ttl);
            let mut now = 1_000u64;
            let mut fate: Vec<Fate> = Vec::new();
            let mut deadline: Vec<Option<u64>> = Vec::new();
            let mut bodies: Vec<Arc<Message>> = Vec::new();
            let mut unacked: Vec<u64> = Vec::new();
            let mut last_first_delivery: Option<u64> = None;
            let mut expired = Vec::new();
            for op in ops {
                expired.clear();
                match op {
                    PolicyOp::Push(ttl) => {
                        let n = fate.len() as u64;
                        let m = expiring(n, ttl, now);
                        let d = match (queue_ttl, ttl) { (Some(a), Some(b)) => Some(a.min(b)), (a, b) => a.or(b) };
                        prop_assert_eq!(m.deadline_ms(queue_ttl), d.map(|d| now + d));
                        deadline.push(d.map(|d| now + d));
                        bodies.push(m.clone());
                        fate.push(Fate::Ready);
                        prop_assert_eq!(q.push_with(m, Some(n)), n);
                    }
                    PolicyOp::Deliver => {
                        let got = q.pop_next(now, &mut expired, &mut |id| Load::Loaded(bodies[id as usize].clone()));
                        if let Some(e) = got {
                            let seq = e.seq as usize;
                            prop_assert_eq!(fate[seq], Fate::Ready);
                            prop_assert!(deadline[seq].is_none_or(|d| d > now), "delivered after its deadline");
                            prop_assert_eq!(e.expires_at_ms, deadline[seq]);
                            if !e.redelivered {
                                prop_assert!(last_first_delivery.is_none_or(|l| e.seq > l), "first deliveries in order");
                                last_first_delivery = Some(e.seq);
                            }
                            fate[seq] = Fate::Unacked;
                            unacked.push(e.seq);
                            q.track_unacked(e);
                        }
                    }
                    PolicyOp::Ack(i) | PolicyOp::Reject(i) if !unacked.is_empty() => {
                        let seq = unacked.remove(i % unacked.len());
                        prop_assert!(q.ack(seq).is_some());
                        fate[seq as usize] = Fate::Gone;
                    }
                    PolicyOp::Requeue(i) if !unacked.is_empty() => {
                        let seq = unacked.remove(i % unacked.len());
                        prop_assert!(q.requeue(seq));
                        fate[seq as usize] = Fate::Ready;
                    }
                    PolicyOp::PageOut => { q.page_out(0, u64::MAX); }
                    PolicyOp::Tick(ms) => now += ms,
                    PolicyOp::Sweep => {
                        q.sweep_expired(now, &mut expired);
                    }
                    PolicyOp::DropHead => {
                        let oldest = fate.iter().position(|f| *f == Fate::Ready).map(|s| s as u64);
                        let dropped = q.drop_head();
                        prop_assert_eq!(dropped.as_ref().map(|d| d.stored().expect("all stored")), oldest);
                        if let Some(seq) = oldest {
                            fate[seq as usize] = Fate::Gone;
                        }
                    }
                    _ => {}
                }
                for gone in &expired {
                    let seq = gone.stored().expect("all stored") as usize;
                    prop_assert_eq!(fate[seq], Fate::Ready, "only ready messages expire");
                    prop_assert!(deadline[seq].is_some_and(|d| d <= now), "expired before its deadline");
                    fate[seq] = Fate::Gone;
                }
                if matches!(op, PolicyOp::Sweep) {
                    // A paged-out message may stay up to the run span past its deadline.
                    for (seq, f) in fate.iter().enumerate() {
                        let late = deadline[seq].is_some_and(|d| d + RUN_DEADLINE_SPAN_MS <= now);
                        prop_assert!(*f != Fate::Ready || !late, "left expired after a sweep");
                    }
                }
                let ready = fate.iter().filter(|f| **f == Fate::Ready).count();
                prop_assert_eq!(q.ready_count(), ready);
                prop_assert_eq!(q.unacked_count(), unacked.len());
                // A timer set too early only ticks for nothing; too late would leave expired
                // messages in the queue.
                let earliest = (0..fate.len()).filter(|s| fate[*s] == Fate::Ready).filter_map(|s| deadline[s]).min();
                if let Some(earliest) = earliest {
                    let next = q.next_deadline_ms();
                    prop_assert!(next.is_some_and(|n| n <= earliest + RUN_DEADLINE_SPAN_MS), "the timer would fire too late");
                }
            }
        }
    }
}
