//! Durability: the message store and the definitions writer behind one handle, the gate that
//! bounds what publishers may have in flight towards the disk, and the disk-full state that turns
//! into publisher nacks.

pub mod access_defs;
pub mod aggregator_defs;
pub mod contract_defs;
pub mod defs;
pub mod policy_defs;
pub mod reader;
pub mod record;
pub mod restore;
pub mod transform_defs;

pub use defs::{DefsWriter, DestKind, StoredBinding, StoredQueue};
pub use restore::{restore, RestoreReport};

use crate::Queue;
use parking_lot::Mutex;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use warren_core::Message;
use warren_store::{Definitions, DefinitionsOptions, FileSystem, Keep, Recovery, Store, StoreError, StoreOptions};

/// Called once when a persisted message is durable (`true`) or could not be written (`false`).
pub type OnDurable = Box<dyn FnOnce(bool) + Send + 'static>;

/// The meeting point of a publisher enqueueing a persisted message and the store completing its
/// write: whichever of the two comes second removes the message from its queues if the write
/// failed, so a nacked message is never delivered (unless a consumer already took it).
pub(crate) struct Landing {
    queues: LandingQueues,
    id: AtomicU64,
    state: AtomicU8,
}

/// The durable queues of one message, inline for the usual one or two.
pub(crate) type LandingQueues = smallvec::SmallVec<[Arc<Queue>; 2]>;

const ENQUEUED: u8 = 1;
const FAILED: u8 = 2;

impl Landing {
    pub fn new(queues: LandingQueues) -> Arc<Landing> {
        Arc::new(Landing { queues, id: AtomicU64::new(0), state: AtomicU8::new(0) })
    }

    pub fn set_id(&self, id: u64) {
        self.id.store(id, Ordering::Release);
    }

    /// The publisher enqueued the message on every queue.
    pub fn enqueued(&self) {
        if self.state.fetch_or(ENQUEUED, Ordering::AcqRel) & FAILED != 0 {
            self.discard();
        }
    }

    /// The store could not write the message.
    pub fn failed(&self) {
        if self.state.fetch_or(FAILED, Ordering::AcqRel) & ENQUEUED != 0 {
            self.discard();
        }
    }

    fn discard(&self) {
        let id = self.id.load(Ordering::Acquire);
        for q in &self.queues {
            q.discard_stored(id);
        }
    }
}

/// Set in the store ids of queues that only page messages out (see
/// [`Durability::allocate_paging_queue_id`]).
pub const PAGING_QUEUE_ID_BIT: u64 = 1 << 63;

/// While the disk is full, one publish per interval is let through to find out whether space
/// came back (nothing else would write and so notice).
const DISK_FULL_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Bounds of what may be in flight to the store.
#[derive(Debug, Clone)]
pub struct DurabilityOptions {
    pub store: StoreOptions,
    /// Bytes of persistent messages appended and not yet durable above which publishing
    /// connections stop reading until the writer catches up.
    pub max_in_flight_bytes: usize,
    /// Messages appended and not yet durable above which publishing connections stop reading
    /// (kept well under the store's hard `channel_capacity`, past which appends are refused).
    pub max_in_flight_messages: usize,
    /// Memory the ready messages of one queue may take before the oldest ones already in the
    /// log are paged out (dropped from memory, read back from the log when delivered).
    pub queue_memory_bytes: u64,
    /// Memory all queues' in-memory ready messages may take together before queues over
    /// `queue_memory_bytes` also write their other messages (transient ones, or those of
    /// queues that are not durable) to the log, to page them out too.
    pub memory_high_watermark_bytes: u64,
}

impl Default for DurabilityOptions {
    fn default() -> Self {
        DurabilityOptions {
            store: StoreOptions::default(),
            max_in_flight_bytes: 32 << 20,
            max_in_flight_messages: 8192,
            queue_memory_bytes: 4 << 20,
            memory_high_watermark_bytes: 512 << 20,
        }
    }
}

pub struct Durability {
    pub store: Store,
    pub defs: DefsWriter,
    next_queue_id: AtomicU64,
    next_paging_queue_id: AtomicU64,
    pressure: Arc<Pressure>,
    /// See [`DurabilityOptions::queue_memory_bytes`].
    pub queue_memory_bytes: u64,
    memory_high_watermark_bytes: u64,
    /// In-memory ready bytes of all queues, as they report them (in steps, see `Queue`).
    memory_bytes: AtomicI64,
    /// The highest `memory_bytes` since the last [`Durability::take_memory_peak`].
    memory_peak_bytes: AtomicI64,
    /// Loads paged-out messages ahead of delivery.
    pub reader: reader::Reader,
}

/// The in-flight accounting and disk-full state, shared with the store's completions.
struct Pressure {
    /// The highest message id whose write completed: the store can read it back. Completions
    /// come in id order, so every id below is either readable or failed (and then discarded).
    durable_up_to: AtomicU64,
    in_flight_bytes: AtomicUsize,
    max_in_flight_bytes: usize,
    in_flight_messages: AtomicUsize,
    max_in_flight_messages: usize,
    drained: Notify,
    disk_full: AtomicBool,
    last_probe: Mutex<Instant>,
}

/// What was found on disk at start.
pub struct Opened {
    pub durability: Arc<Durability>,
    pub recovery: Recovery,
    pub definitions: defs::Loaded,
}

impl Durability {
    /// Opens the definitions and the message log in `dir` (which the caller has locked).
    pub fn open(dir: &Path, options: DurabilityOptions, fs: Arc<dyn FileSystem>) -> Result<Opened, StoreError> {
        let definitions = Arc::new(Definitions::open(dir, definitions_options(), fs.clone())?);
        if definitions.skipped_records() > 0 {
            tracing::warn!(records = definitions.skipped_records(), "skipped unreadable definition records");
        }
        let loaded = defs::load(definitions.entries());
        for key in &loaded.unreadable {
            tracing::warn!(key = ?key, "ignoring a definition this version cannot read");
        }
        let (store, recovery) = Store::open(dir, options.store, fs)?;
        let defs = DefsWriter::start(definitions).map_err(|e| StoreError::io("start definitions writer", &e))?;
        let durability = Arc::new(Durability {
            store,
            defs,
            next_queue_id: AtomicU64::new(loaded.next_queue_id),
            next_paging_queue_id: AtomicU64::new(1),
            queue_memory_bytes: options.queue_memory_bytes,
            memory_high_watermark_bytes: options.memory_high_watermark_bytes,
            memory_bytes: AtomicI64::new(0),
            memory_peak_bytes: AtomicI64::new(0),
            reader: reader::Reader::default(),
            pressure: Arc::new(Pressure {
                durable_up_to: AtomicU64::new(0),
                in_flight_bytes: AtomicUsize::new(0),
                max_in_flight_bytes: options.max_in_flight_bytes,
                in_flight_messages: AtomicUsize::new(0),
                max_in_flight_messages: options.max_in_flight_messages,
                drained: Notify::new(),
                disk_full: AtomicBool::new(false),
                last_probe: Mutex::new(Instant::now()),
            }),
        });
        durability.reader.start(Arc::downgrade(&durability)).map_err(|e| StoreError::io("start reader thread", &e))?;
        Ok(Opened { durability, recovery, definitions: loaded })
    }

    /// A store id for a queue that only pages messages out (not durable): the top bit keeps it
    /// apart from durable queue ids; it is never written to the definitions.
    pub fn allocate_paging_queue_id(&self) -> u64 {
        PAGING_QUEUE_ID_BIT | self.next_paging_queue_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A new durable queue id and the changes that persist the counter.
    pub fn allocate_queue_id(&self) -> (u64, defs::Change) {
        let id = self.next_queue_id.fetch_add(1, Ordering::Relaxed);
        let next = bytes::Bytes::copy_from_slice(&(id + 1).to_le_bytes());
        (id, (bytes::Bytes::from_static(defs::NEXT_QUEUE_ID_KEY), Some(next)))
    }

    /// Appends `message` for the store queues `queues`; `make_done(id)` makes the callback
    /// called once it is durable or failed. `None` when it is refused (disk full, or the store
    /// failed): nothing was written and no callback was made.
    pub fn append<F>(&self, queues: &[u64], message: &Message, make_done: impl FnOnce(u64) -> F) -> Option<u64>
    where
        F: FnOnce(bool) + Send + 'static,
    {
        self.write(Vec::new(), Keep::Durable, queues, message, make_done)
    }

    /// Appends `message` for the store queues `queues` and settles each stored (queue,
    /// message) of `settles` in the same record: a message moved from another queue (one
    /// settled), an aggregate and its parts (several). After a crash both are done or neither:
    /// never lost, never doubled. As [`Durability::append`] otherwise.
    pub fn append_settling<F>(
        &self,
        settles: Vec<(u64, u64)>,
        queues: &[u64],
        message: &Message,
        make_done: impl FnOnce(u64) -> F,
    ) -> Option<u64>
    where
        F: FnOnce(bool) + Send + 'static,
    {
        self.write(settles, Keep::Durable, queues, message, make_done)
    }

    /// Appends the messages of `parts` (each for its store queues) as one record: after a crash
    /// all of them are there or none. Returns the first id (the others follow in order);
    /// `make_done(first)` makes the one callback for the group. `None` when refused, as
    /// [`Durability::append`].
    pub fn append_group<F>(&self, parts: &[(&[u64], &Message)], make_done: impl FnOnce(u64) -> F) -> Option<u64>
    where
        F: FnOnce(bool) + Send + 'static,
    {
        let pressure = &self.pressure;
        if parts.is_empty() || (pressure.disk_full.load(Ordering::Relaxed) && !pressure.probe_due()) {
            return None;
        }
        let encoded: Vec<(Vec<u64>, bytes::Bytes)> =
            parts.iter().map(|(queues, message)| (queues.to_vec(), record::encode(message))).collect();
        let len: usize = encoded.iter().map(|(_, b)| b.len()).sum();
        let last_offset = parts.len() as u64 - 1;
        pressure.admit(len);
        let shared = pressure.clone();
        let done = |first: u64| -> warren_store::Completion {
            let on_durable = make_done(first);
            Box::new(move |result: Result<(), StoreError>| {
                shared.settled(len, &result);
                if result.is_ok() {
                    shared.durable_up_to.fetch_max(first + last_offset, Ordering::Release);
                }
                on_durable(result.is_ok());
            })
        };
        match self.store.append_group(encoded, done) {
            Ok(first) => Some(first),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write a group of messages to the store");
                pressure.release(len);
                None
            }
        }
    }

    /// A queue's in-memory ready bytes changed by `delta` (reported in steps, not per message).
    pub fn report_memory(&self, delta: i64) {
        let now = self.memory_bytes.fetch_add(delta, Ordering::Relaxed) + delta;
        if delta > 0 {
            self.memory_peak_bytes.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// In-memory ready bytes of all queues, as reported.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// The peak of [`Durability::memory_bytes`] since the last call; the peak restarts from now.
    pub fn take_memory_peak(&self) -> u64 {
        // Reset first, then read: a report racing with this call raises the new peak rather
        // than being overwritten by an older reading.
        let before = self.memory_peak_bytes.swap(i64::MIN, Ordering::Relaxed);
        let now = self.memory_bytes.load(Ordering::Relaxed);
        self.memory_peak_bytes.fetch_max(now, Ordering::Relaxed);
        before.max(now).max(0) as u64
    }

    /// Whether queues hold so much in memory that messages not in the log yet must be written
    /// there to be paged out.
    pub fn over_memory_watermark(&self) -> bool {
        self.memory_bytes.load(Ordering::Relaxed) > self.memory_high_watermark_bytes as i64
    }

    /// Writes a paged copy of `message` (transient, or of a queue that is not durable) for store
    /// queue `queue`, so the queue can drop it from memory once it is on disk; `on_failed(id)` is
    /// called if the write fails. `None` when the store refuses it now (disk full, too much in
    /// flight): the message stays in memory.
    pub fn page(&self, queue: u64, message: &Message, on_failed: impl FnOnce(u64) + Send + 'static) -> Option<u64> {
        if !self.pressure.has_room() {
            return None;
        }
        self.write(Vec::new(), Keep::UntilRestart, &[queue], message, |id| {
            move |ok| {
                if !ok {
                    on_failed(id);
                }
            }
        })
    }

    /// Submits a message record, counting it in flight until its write completes. A failed
    /// message's callback runs before `durable_up_to` can move past its id (completions come in
    /// order: it leaves the queues before a later success moves the mark, so it is never paged
    /// out); a written message's id is marked durable before its callback, so that whoever the
    /// callback answers (a publisher's confirm) finds it pageable.
    /// `make_done` returns a closure, not a box: this function boxes it once, together with
    /// its own accounting (one allocation per message instead of two).
    fn write<F>(
        &self,
        settles: Vec<(u64, u64)>,
        keep: Keep,
        queues: &[u64],
        message: &Message,
        make_done: impl FnOnce(u64) -> F,
    ) -> Option<u64>
    where
        F: FnOnce(bool) + Send + 'static,
    {
        let pressure = &self.pressure;
        if pressure.disk_full.load(Ordering::Relaxed) && !pressure.probe_due() {
            return None;
        }
        let bytes = record::encode(message);
        let len = bytes.len();
        pressure.admit(len);
        let shared = pressure.clone();
        let done = |id| -> warren_store::Completion {
            let on_durable = make_done(id);
            Box::new(move |result: Result<(), StoreError>| {
                shared.settled(len, &result);
                if result.is_ok() {
                    shared.durable_up_to.fetch_max(id, Ordering::Release);
                }
                on_durable(result.is_ok());
            })
        };
        let written = match settles.as_slice() {
            [] => self.store.append_with(keep, queues, bytes, done),
            [from] => self.store.append_moved(*from, queues, bytes, done),
            _ => self.store.append_settling(settles, queues, bytes, done),
        };
        match written {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write a message to the store");
                pressure.release(len);
                None
            }
        }
    }

    /// The highest message id the store can read back (see `Pressure::durable_up_to`).
    pub fn durable_up_to(&self) -> u64 {
        self.pressure.durable_up_to.load(Ordering::Acquire)
    }

    /// The body of stored message `id`, read back from the log; `None` (logged) when it cannot
    /// be read or decoded.
    pub fn load(&self, id: u64) -> Option<Arc<Message>> {
        let mut out = None;
        self.load_many(&[id], |_, message| {
            out = message;
            false
        });
        out
    }

    /// Loads `ids` as [`Durability::load`] does, in one pass over the log when they increase,
    /// showing each to `each` until it answers false.
    pub fn load_many(&self, ids: &[u64], mut each: impl FnMut(u64, Option<Arc<Message>>) -> bool) {
        self.store.read_many(ids, |id, read| {
            let message = match read.map(record::decode) {
                Ok(Some(message)) => Some(Arc::new(message)),
                Ok(None) => {
                    tracing::error!(id, "a stored message does not decode; skipping it");
                    None
                }
                Err(e) => {
                    tracing::error!(id, error = %e, "a stored message cannot be read back; skipping it");
                    None
                }
            };
            each(id, message)
        });
    }

    /// Writes everything submitted and stops the storage threads (at shutdown, once no
    /// connection is left). Later appends and definition changes fail.
    pub fn close(&self) {
        self.reader.close();
        // The store first: its last completions write deduplication keys to the definitions
        // (a key is written after its message is durable), which must not find them closed.
        self.store.shutdown();
        self.defs.close();
    }

    /// Waits while more than the allowed bytes are on their way to the disk.
    pub async fn wait_for_room(&self) {
        let pressure = &self.pressure;
        // Every publisher's read passes here: the common case takes no lock (a Notify waiter
        // registers under one).
        if pressure.has_room() {
            return;
        }
        loop {
            let notified = pressure.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pressure.has_room() {
                return;
            }
            notified.await;
        }
    }
}

impl Pressure {
    /// Counts a message of `len` bytes on its way to the disk.
    fn admit(&self, len: usize) {
        self.in_flight_bytes.fetch_add(len, Ordering::Relaxed);
        self.in_flight_messages.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether publishers may go on (both in-flight bounds are respected).
    fn has_room(&self) -> bool {
        self.in_flight_bytes.load(Ordering::Relaxed) < self.max_in_flight_bytes
            && self.in_flight_messages.load(Ordering::Relaxed) < self.max_in_flight_messages
    }

    /// A message counted by `admit` left the way to the disk (written, failed, or never
    /// submitted); wakes the publishers when that brings the counts under their bounds.
    fn release(&self, len: usize) {
        let bytes = self.in_flight_bytes.fetch_sub(len, Ordering::Relaxed);
        let messages = self.in_flight_messages.fetch_sub(1, Ordering::Relaxed);
        let crossed = |before: usize, after: usize, max: usize| before >= max && after < max;
        if crossed(bytes, bytes - len, self.max_in_flight_bytes)
            || crossed(messages, messages - 1, self.max_in_flight_messages)
        {
            self.drained.notify_waiters();
        }
    }

    /// The store completed a write of `len` bytes with `result`; updates the disk-full state.
    fn settled(&self, len: usize, result: &Result<(), StoreError>) {
        self.release(len);
        let full = matches!(result, Err(StoreError::DiskFull));
        if full != self.disk_full.load(Ordering::Relaxed) && (full || result.is_ok()) {
            self.disk_full.store(full, Ordering::Relaxed);
            if full {
                tracing::error!("disk full: refusing persistent messages until space is freed");
            } else {
                tracing::warn!("disk space is back: accepting persistent messages again");
            }
        }
    }

    fn probe_due(&self) -> bool {
        let mut last = self.last_probe.lock();
        if last.elapsed() < DISK_FULL_PROBE_INTERVAL {
            return false;
        }
        *last = Instant::now();
        true
    }
}

fn definitions_options() -> DefinitionsOptions {
    // Binding keys carry their arguments, so keys may be larger than the default.
    DefinitionsOptions { max_key_bytes: 1 << 20, ..DefinitionsOptions::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_store::FaultyFs;

    #[test]
    fn the_memory_peak_is_kept_until_taken() {
        let fs: Arc<dyn FileSystem> = Arc::new(FaultyFs::new());
        let opened = Durability::open(Path::new("/data"), DurabilityOptions::default(), fs).unwrap();
        let d = opened.durability;
        d.report_memory(100 << 20);
        d.report_memory(-90 << 20);
        d.report_memory(20 << 20);
        assert_eq!(d.memory_bytes(), 30 << 20);
        assert_eq!(d.take_memory_peak(), 100 << 20);
        // The peak restarts from what the queues hold now.
        assert_eq!(d.take_memory_peak(), 30 << 20);
        d.report_memory(-30 << 20);
        assert_eq!(d.take_memory_peak(), 30 << 20, "a fall is not a new peak");
        assert_eq!(d.take_memory_peak(), 0);
        d.close();
    }
}
