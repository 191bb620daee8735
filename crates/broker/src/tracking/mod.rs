//! Outcome tracking of single messages: an HTTP publish (and an AMQP one that opts in) gets a
//! tracking id, and the broker records what happens to it: routed (to which queues) or
//! unroutable, each delivery, and how each queue's copy ends (acked, dead-lettered, dropped,
//! expired). A message is finished when every copy has ended; it succeeded if every copy was
//! acked. Records are bounded in number and in age; long polls wait on a version counter.

mod events;
mod status;
mod waiters;

pub use status::*;

use crate::tracking_journal::{self, Journal, Op};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use warren_core::dead_letter::Reason;

/// While the journal's writer is behind, a snapshot is tried once per this many changes.
const SNAPSHOT_RETRY_CHANGES: u64 = 4096;

/// Changed records wait this long to be written, so that the changes a message goes through
/// within it (accepted, routed, delivered, acked) cost one journal line, not one each.
#[cfg(not(test))]
const JOURNAL_GATHER: std::time::Duration = std::time::Duration::from_millis(2);
/// Tests write on [`MAX_DIRTY`] alone, so that what they count does not depend on their speed.
#[cfg(test)]
const JOURNAL_GATHER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Changed records waiting to be written at most; more are written at once.
#[cfg(not(test))]
const MAX_DIRTY: usize = 4096;
#[cfg(test)]
const MAX_DIRTY: usize = 4;

/// Events kept per message; later ones are counted but not kept.
const MAX_EVENTS: usize = 64;

/// Attempts kept per callback (the last ones win).
const MAX_ATTEMPTS_KEPT: usize = 32;

#[derive(Serialize, Deserialize)]
struct Callback {
    url: String,
    secret: Vec<u8>,
    state: CallbackState,
    attempts: Vec<Attempt>,
}

#[derive(Serialize, Deserialize)]
struct Record {
    created_ms: u64,
    events: Vec<Event>,
    events_dropped: u64,
    /// Copies still in a queue, by queue name (a queue may hold several after requeues).
    open_copies: HashMap<String, u32>,
    routed: bool,
    failed: bool,
    version: u64,
    reply: Option<Reply>,
    callback: Option<Callback>,
    /// The vhost and `message_id` property it can be looked up by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lookup: Option<(String, String)>,
    /// Lines written before origins were recorded are HTTP publishes' (the only kind then).
    #[serde(default, skip_serializing_if = "Origin::is_http")]
    origin: Origin,
}

/// Where a tracked message came from. Each origin has its own pool of records, so that AMQP
/// publishes opting in by the thousand cannot push out the records HTTP clients were given
/// status URLs for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    #[default]
    Http,
    Amqp,
}

impl Origin {
    const ALL: [Origin; 2] = [Origin::Http, Origin::Amqp];

    fn index(self) -> usize {
        self as usize
    }

    fn is_http(&self) -> bool {
        *self == Origin::Http
    }
}

impl Record {
    fn outcome(&self) -> Outcome {
        if self.failed {
            Outcome::Failed
        } else if self.routed && self.open_copies.is_empty() {
            Outcome::Succeeded
        } else {
            Outcome::Pending
        }
    }

    /// Final: it failed somewhere, or every copy was acked.
    fn finished(&self) -> bool {
        self.failed || (self.routed && self.open_copies.is_empty())
    }

    fn push(&mut self, event: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(event);
        } else {
            self.events_dropped += 1;
        }
        self.version += 1;
    }
}

/// Bounds of what the tracker keeps.
#[derive(Debug, Clone, Copy)]
pub struct TrackingLimits {
    /// Records kept at most per [`Origin`]; the oldest of that origin go first.
    pub max_records: usize,
    /// How long a record is kept after it was created.
    pub retention_ms: u64,
}

impl Default for TrackingLimits {
    fn default() -> Self {
        TrackingLimits { max_records: 100_000, retention_ms: 24 * 60 * 60 * 1000 }
    }
}

pub struct Tracker {
    limits: TrackingLimits,
    state: Mutex<State>,
    /// Long polls, per message.
    waiters: waiters::Waiters,
    /// Where the ids of finished messages with a callback go (the HTTP API's sender).
    finished: Mutex<Option<UnboundedSender<u64>>>,
    /// Where records are kept across restarts (a broker with a data directory).
    journal: Option<Journal>,
    /// Messages tracked and callbacks made since the start.
    pub stats: crate::stats::TrackingStats,
}

/// A journal line: one record's whole state.
#[derive(Serialize, Deserialize)]
struct Line {
    id: u64,
    record: Record,
}

#[derive(Default)]
struct State {
    records: HashMap<u64, Record>,
    /// (created, id) per origin, oldest first, for the bounds.
    order: [VecDeque<(u64, u64)>; 2],
    /// Tracking ids by (vhost, `message_id` property); the latest message with an id wins.
    by_message_id: HashMap<(String, String), u64>,
    /// Lines in the journal since it was last rewritten.
    journal_lines: usize,
    /// Changes not written since the writer fell behind (0: it is not behind).
    journal_missed: u64,
    /// Records changed and not yet written (an id may repeat), and since when.
    dirty: Vec<u64>,
    dirty_since: Option<std::time::Instant>,
}

impl State {
    fn forget(&mut self, id: u64) {
        let Some(record) = self.records.remove(&id) else { return };
        if let Some(key) = record.lookup {
            if self.by_message_id.get(&key) == Some(&id) {
                self.by_message_id.remove(&key);
            }
        }
    }
}

/// Every record's line, for a journal rewritten whole.
fn snapshot(st: &State) -> Vec<Vec<u8>> {
    st.records.iter().map(|(id, r)| line_of(*id, r)).collect()
}

fn line_of(id: u64, record: &Record) -> Vec<u8> {
    serde_json::to_vec(&LineRef { id, record }).expect("a record serializes")
}

#[derive(Serialize)]
struct LineRef<'a> {
    id: u64,
    record: &'a Record,
}

/// The header (on a message) or argument (on an exchange) by which an AMQP publish opts in to
/// tracking.
pub const TRACK_HEADER: &str = "x-warren-track";

/// The header a tracked AMQP-published message carries its tracking id in.
pub const ID_HEADER: &str = "x-warren-id";

/// An opt-in value: `true`, `"true"`, or a non-zero integer.
pub fn truthy(value: &amqp_codec::FieldValue) -> bool {
    value.as_bool().or_else(|| value.as_str().map(|s| s.eq_ignore_ascii_case("true"))).unwrap_or(false)
        || value.as_i64().is_some_and(|n| n != 0)
}

/// Whether raw properties may carry an `x-warren-*` header ([`TRACK_HEADER`], [`ID_HEADER`]):
/// one byte search, so that the many messages that carry neither are never decoded for it.
pub fn mentions_warren_headers(raw: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"x-warren-";
    amqp_codec::raw_properties::has_headers(raw) && raw.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

/// The external form of a tracking id.
pub fn id_text(id: u64) -> String {
    format!("{id:016x}")
}

/// A tracking id from its external form.
pub fn parse_id(text: &str) -> Option<u64> {
    (text.len() == 16).then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

impl Tracker {
    /// A tracker that keeps its records in memory only.
    pub fn new(limits: TrackingLimits) -> Arc<Tracker> {
        Arc::new(Tracker {
            limits,
            state: Mutex::new(State::default()),
            waiters: Default::default(),
            finished: Mutex::new(None),
            journal: None,
            stats: Default::default(),
        })
    }

    /// A tracker whose records survive restarts in the journal at `path`: what it holds is
    /// read back (within the bounds as of `now_ms`) before anything else happens.
    pub fn open(limits: TrackingLimits, path: PathBuf, now_ms: u64) -> std::io::Result<Arc<Tracker>> {
        let mut records: HashMap<u64, Record> = HashMap::new();
        for line in tracking_journal::read_lines(&path) {
            if let Ok(Line { id, record }) = serde_json::from_slice::<Line>(&line) {
                records.insert(id, record);
            }
        }
        let order = Origin::ALL.map(|origin| {
            let mut order: Vec<(u64, u64)> = records
                .iter()
                .filter(|(_, r)| r.origin == origin && r.created_ms.saturating_add(limits.retention_ms) > now_ms)
                .map(|(id, r)| (r.created_ms, *id))
                .collect();
            order.sort_unstable();
            let keep = order.len().saturating_sub(limits.max_records);
            order.into_iter().skip(keep).collect::<VecDeque<(u64, u64)>>()
        });
        let records: HashMap<u64, Record> =
            order.iter().flatten().filter_map(|(_, id)| records.remove_entry(id)).collect();
        let live = records.iter().map(|(id, r)| line_of(*id, r)).collect();
        let journal = Journal::start(path, live)?;
        let journal_lines = records.len();
        let mut by_message_id = HashMap::new();
        // Oldest first, so the latest message with an id wins.
        let mut oldest_first: Vec<&(u64, u64)> = order.iter().flatten().collect();
        oldest_first.sort_unstable();
        for (_, id) in oldest_first {
            if let Some(key) = records.get(id).and_then(|r| r.lookup.clone()) {
                by_message_id.insert(key, *id);
            }
        }
        Ok(Arc::new(Tracker {
            limits,
            state: Mutex::new(State {
                records,
                order,
                by_message_id,
                journal_lines,
                journal_missed: 0,
                dirty: Vec::new(),
                dirty_since: None,
            }),
            waiters: Default::default(),
            finished: Mutex::new(None),
            journal: Some(journal),
            stats: Default::default(),
        }))
    }

    /// How many messages' records are kept now.
    pub fn len(&self) -> usize {
        self.state.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the journal out and stops its writer. Changes the writer had no room for go out
    /// as one last snapshot.
    pub fn close(&self) {
        let Some(journal) = &self.journal else { return };
        {
            let mut st = self.state.lock();
            Self::write_dirty(journal, &mut st);
            if std::mem::take(&mut st.journal_missed) > 0 {
                // Under the lock, so that no newer line can go out before this older snapshot.
                // The one wait for the disk under this lock: nothing is tracked any more.
                journal.send(Op::Compact(snapshot(&st)));
            }
        }
        journal.close();
    }

    /// Writes the changes still gathering, and a snapshot if changes were dropped while the
    /// writer was behind and it has room again; called every second, so that a burst followed
    /// by quiet is not left unwritten.
    pub fn catch_up(&self) {
        let Some(journal) = &self.journal else { return };
        let mut st = self.state.lock();
        // Changes of a burst that ended within JOURNAL_GATHER.
        Self::write_dirty(journal, &mut st);
        // While the writer's queue is still full a snapshot would only be built to be dropped.
        if st.journal_missed > 0 && journal.has_room() {
            Self::try_snapshot(journal, &mut st);
        }
    }

    /// Marks record `id` changed: its state is appended to the journal once [`JOURNAL_GATHER`]
    /// has passed since the oldest unwritten change (at the next change, or by
    /// [`Tracker::catch_up`] every second), or once [`MAX_DIRTY`] records wait; the journal is
    /// rewritten when it has grown to several times the live records. Called under the state
    /// lock, so a record's lines keep the order of its changes.
    ///
    /// When the writer is behind (its queue full), changes are dropped and counted, and a
    /// snapshot of every record replaces the file once the queue takes one again (tried every
    /// [`SNAPSHOT_RETRY_CHANGES`] changes, every second by [`Tracker::catch_up`], and at
    /// [`Tracker::close`], which waits for room).
    fn journal(&self, st: &mut State, id: u64) {
        let Some(journal) = &self.journal else { return };
        if st.dirty.last() != Some(&id) {
            st.dirty.push(id);
        }
        let since = *st.dirty_since.get_or_insert_with(std::time::Instant::now);
        if st.dirty.len() >= MAX_DIRTY || since.elapsed() >= JOURNAL_GATHER {
            Self::write_dirty(journal, st);
        }
    }

    /// Writes the current state of every record changed since the last write (once each).
    fn write_dirty(journal: &Journal, st: &mut State) {
        st.dirty_since = None;
        if st.dirty.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut st.dirty);
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if st.journal_missed > 0 {
                st.journal_missed += 1;
            } else if let Some(r) = st.records.get(&id) {
                if journal.try_send(Op::Line(line_of(id, r))) {
                    st.journal_lines += 1;
                } else {
                    tracing::warn!("the tracking journal is behind the disk; it will catch up with a snapshot");
                    st.journal_missed = 1;
                }
            }
            let behind = st.journal_missed > 0 && st.journal_missed % SNAPSHOT_RETRY_CHANGES == 1;
            if behind || st.journal_lines > 4 * st.records.len() + 10_000 {
                Self::try_snapshot(journal, st);
            }
        }
    }

    /// Replaces the journal with every record, if the writer's queue takes it.
    fn try_snapshot(journal: &Journal, st: &mut State) {
        if journal.try_send(Op::Compact(snapshot(st))) {
            st.journal_lines = st.records.len();
            st.journal_missed = 0;
            // The snapshot holds every record as it is now.
            st.dirty.clear();
            st.dirty_since = None;
        }
    }

    /// Starts tracking a new message from `origin`; returns its id (never 0: 0 means
    /// untracked). With `lookup` (its vhost and `message_id` property) it can also be found by
    /// that.
    pub fn start(&self, now_ms: u64, lookup: Option<(&str, &str)>, origin: Origin) -> u64 {
        crate::stats::count(&self.stats.tracked);
        let mut st = self.state.lock();
        let mut id = rand::random::<u64>();
        while id == 0 || st.records.contains_key(&id) {
            id = rand::random::<u64>();
        }
        let retention_ms = self.limits.retention_ms;
        for o in Origin::ALL {
            let full = if o == origin { self.limits.max_records } else { usize::MAX };
            loop {
                let order = &mut st.order[o.index()];
                let expired = order.front().is_some_and(|(at, _)| at.saturating_add(retention_ms) <= now_ms);
                if order.len() < full && !expired {
                    break;
                }
                let Some((_, old)) = order.pop_front() else { break };
                st.forget(old);
            }
        }
        let lookup = lookup
            .filter(|(_, message_id)| !message_id.is_empty())
            .map(|(vhost, message_id)| (vhost.to_owned(), message_id.to_owned()));
        if let Some(key) = &lookup {
            st.by_message_id.insert(key.clone(), id);
        }
        let mut record = Record {
            created_ms: now_ms,
            events: Vec::new(),
            events_dropped: 0,
            open_copies: HashMap::new(),
            routed: false,
            failed: false,
            version: 0,
            reply: None,
            callback: None,
            lookup,
            origin,
        };
        record.push(Event::Accepted { at_ms: now_ms });
        st.records.insert(id, record);
        st.order[origin.index()].push_back((now_ms, id));
        self.journal(&mut st, id);
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Record)) {
        if id == 0 {
            return;
        }
        let mut st = self.state.lock();
        let Some(record) = st.records.get_mut(&id) else { return };
        f(record);
        let finished = record.finished();
        let call_back = match &mut record.callback {
            Some(c) if finished && c.state == CallbackState::Waiting => {
                c.state = CallbackState::Sending;
                true
            }
            _ => false,
        };
        self.journal(&mut st, id);
        drop(st);
        if call_back {
            if let Some(tx) = self.finished.lock().as_ref() {
                let _ = tx.send(id);
            }
        }
        self.waiters.notify(id);
    }

    /// Where to send the ids of finished messages that have a callback; callbacks that were
    /// being sent when the broker stopped are sent again.
    pub fn on_finished(&self, tx: UnboundedSender<u64>) {
        let sending: Vec<u64> = {
            let st = self.state.lock();
            let sending = |r: &Record| r.callback.as_ref().is_some_and(|c| c.state == CallbackState::Sending);
            st.records.iter().filter(|(_, r)| sending(r)).map(|(id, _)| *id).collect()
        };
        for id in sending {
            let _ = tx.send(id);
        }
        *self.finished.lock() = Some(tx);
    }

    /// Asks for a callback to `url` once message `id` is finished, signed with `secret`.
    pub fn call_back(&self, id: u64, url: String, secret: Vec<u8>) {
        self.update(id, |r| {
            r.callback = Some(Callback { url, secret, state: CallbackState::Waiting, attempts: Vec::new() });
        });
    }

    /// The callback's URL and secret, and the status to send, for a message being called back.
    pub fn callback_payload(&self, id: u64) -> Option<(String, Vec<u8>, Status)> {
        let status = self.status(id)?;
        let st = self.state.lock();
        let c = st.records.get(&id)?.callback.as_ref()?;
        Some((c.url.clone(), c.secret.clone(), status))
    }

    /// Records an attempt to call back, and the callback's state after it.
    pub fn callback_attempt(&self, id: u64, attempt: Attempt, state: CallbackState) {
        crate::stats::count(&self.stats.callback_attempts);
        match state {
            CallbackState::Delivered => crate::stats::count(&self.stats.callbacks_delivered),
            CallbackState::Failed => crate::stats::count(&self.stats.callbacks_failed),
            _ => {}
        }
        self.update(id, |r| {
            if let Some(c) = r.callback.as_mut() {
                if c.attempts.len() == MAX_ATTEMPTS_KEPT {
                    c.attempts.remove(0);
                }
                c.attempts.push(attempt);
                c.state = state;
                r.version += 1;
            }
        });
    }

    /// The tracking id of the latest tracked message of `vhost` with property `message_id`.
    pub fn find(&self, vhost: &str, message_id: &str) -> Option<u64> {
        self.state.lock().by_message_id.get(&(vhost.to_owned(), message_id.to_owned())).copied()
    }

    /// The status of message `id`, if it is (still) tracked.
    pub fn status(&self, id: u64) -> Option<Status> {
        let st = self.state.lock();
        let r = st.records.get(&id)?;
        Some(Status {
            id: id_text(id),
            outcome: r.outcome(),
            finished: r.finished(),
            created_ms: r.created_ms,
            events: r.events.clone(),
            events_dropped: r.events_dropped,
            version: r.version,
            reply: r.reply.clone(),
            callback: r.callback.as_ref().map(|c| CallbackStatus {
                url: c.url.clone(),
                state: c.state,
                attempts: c.attempts.clone(),
            }),
        })
    }

    /// Waits up to `wait` for message `id` to change past `version` (given: even once it is
    /// finished, e.g. to follow its callback) or, without one, to change or finish; returns its
    /// status then (or at once if that already happened, or the message is unknown).
    pub async fn wait_for_change(&self, id: u64, version: Option<u64>, wait: Duration) -> Option<Status> {
        let deadline = tokio::time::Instant::now() + wait;
        let first = self.status(id)?;
        let since = version.unwrap_or(first.version);
        let waiting = self.waiters.register(id);
        loop {
            let notified = waiting.notified();
            let status = self.status(id)?;
            if status.version != since || (version.is_none() && status.finished) {
                return Some(status);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.status(id);
            }
        }
    }
}

#[cfg(test)]
mod tests;
