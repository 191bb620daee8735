//! `Store`: the public handle of the message log. Appends, acks and delivered markers go to the
//! writer thread over a channel (appends in flight are bounded by `channel_capacity`); reads go
//! straight to the segment files via the index, from any thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::fs::{FileSystem, FsFile};
use crate::index::{Index, ANCHOR_SPACING_BYTES};
use crate::read::{Cursor, Walker};
use crate::record::{self, kind};
use crate::recovery::{recover, Recovery};
use crate::segment::{self, MSGS_DIR};
use crate::writer::{QueueIds, Request, Writer};
use crate::{StoreError, StoreOptions};

/// Message ids are assigned by the store, densely and increasing.
pub type MessageId = u64;
/// Queues are opaque ids to the store.
pub type QueueId = u64;
/// Called exactly once, on the writer thread, when the request is durable (`Ok`) or failed.
/// Keep it short: it runs inside the group commit loop (send on a channel, wake a task). It must
/// never call back into the `Store` (the writer would wait on itself when the channel is full).
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send + 'static>;

/// How long an appended message is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Until acked: recovery brings it back after a restart (a MESSAGE record).
    Durable,
    /// Until acked or the next restart: a copy of a transient message paged out of memory,
    /// which recovery ignores (a PAGED record).
    UntilRestart,
}

/// Most acks in one request: a group commit takes them whole.
const MAX_ACKS_PER_REQUEST: usize = 1024;

/// State shared by the writer thread and readers.
pub(crate) struct Shared {
    pub inner: Mutex<SharedInner>,
    /// Appends sent to the writer that it has not taken into a batch yet (bounded by
    /// `channel_capacity`).
    pub pending_appends: AtomicUsize,
    /// How long the writer's fsyncs take.
    pub sync_times: crate::sync_stats::SyncTimes,
}

pub(crate) struct SharedInner {
    pub index: Index,
    pub files: BTreeMap<u32, Arc<dyn FsFile>>,
    /// Where the last read stopped (see [`crate::read`]).
    pub cursor: Option<Cursor>,
}

/// Figures about the running store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Segment files alive (including the active one).
    pub segments: usize,
    /// Index anchors held (one per about [`Store::INDEX_ANCHOR_SPACING_BYTES`] of log).
    pub index_anchors: usize,
    /// Bytes allocated by the index.
    pub index_bytes: usize,
}

/// The durable message log. `Send + Sync`: share it behind an `Arc`.
pub struct Store {
    /// Next id; held while sending an append so ids reach the writer in order.
    next_id: Mutex<MessageId>,
    tx: Sender<Request>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    options: StoreOptions,
    dir: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, recovers it and starts its writer thread.
    /// Fails with [`StoreError::IncompatibleVersion`] on files of another format version.
    pub fn open(dir: &Path, options: StoreOptions, fs: Arc<dyn FileSystem>) -> Result<(Store, Recovery), StoreError> {
        options.validate()?;
        let msgs = dir.join(MSGS_DIR);
        fs.create_dir_all(&msgs).map_err(|e| StoreError::io("create store directory", &e))?;
        let log = recover(&*fs, &msgs, &options)?;
        let next_id = log.state.next_id;
        let shared = Arc::new(Shared {
            inner: Mutex::new(SharedInner { index: log.index, files: log.files, cursor: None }),
            pending_appends: AtomicUsize::new(0),
            sync_times: Default::default(),
        });
        let mut writer = Writer {
            fs,
            dir: msgs.clone(),
            options: options.clone(),
            shared: shared.clone(),
            state: log.state,
            active: 0,
            active_file: None,
            active_len: 0,
            fresh: true,
            retry: Vec::new(),
            failed: None,
            chunk: Default::default(),
        };
        writer.start(log.last_seq)?;
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("warren-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::io("spawn writer thread", &e))?;
        let store =
            Store { next_id: Mutex::new(next_id), tx, shared, writer: Mutex::new(Some(handle)), options, dir: msgs };
        Ok((store, log.report))
    }

    /// Appends a message for `queues` (deduplicated; 1..=max_queues_per_message of them) and
    /// returns its id at once; `done` is called when it is durable or failed (with
    /// [`StoreError::DiskFull`] when the disk is full). Never blocks: the channel to the writer is
    /// unbounded, and once `channel_capacity` appends wait for the writer the append fails with
    /// [`StoreError::Busy`]. On `Err`, `done` is dropped uncalled.
    pub fn append(&self, queues: &[QueueId], body: Bytes, done: Completion) -> Result<MessageId, StoreError> {
        self.append_with(Keep::Durable, queues, body, |_| done)
    }

    /// Like [`Store::append`], but the record is kept as `keep` says, and the completion is
    /// made by `make_done` from the id the message gets (so it can name the message). On `Err`,
    /// the completion is dropped uncalled.
    pub fn append_with(
        &self,
        keep: Keep,
        queues: &[QueueId],
        body: Bytes,
        make_done: impl FnOnce(MessageId) -> Completion,
    ) -> Result<MessageId, StoreError> {
        let kind = match keep {
            Keep::Durable => kind::MESSAGE,
            Keep::UntilRestart => kind::PAGED,
        };
        self.send_append(kind, Vec::new(), queues, body, make_done)
    }

    fn send_append(
        &self,
        kind: u8,
        settles: Vec<(QueueId, MessageId)>,
        queues: &[QueueId],
        body: Bytes,
        make_done: impl FnOnce(MessageId) -> Completion,
    ) -> Result<MessageId, StoreError> {
        let queues = self.check_append(queues, &body)?;
        if settles.len() > u16::MAX as usize {
            return Err(StoreError::Invalid("a message settles at most 65535 others".into()));
        }
        if record::settling_len(settles.len(), queues.len(), body.len()) > self.options.max_record_bytes {
            return Err(StoreError::Invalid(format!("message larger than a segment ({} bytes)", body.len())));
        }
        if self.pending_appends() >= self.options.channel_capacity {
            return Err(StoreError::Busy);
        }
        let mut next_id = self.next_id.lock();
        let id = *next_id;
        if id == u64::MAX {
            return Err(StoreError::Invalid("message ids exhausted".into()));
        }
        self.shared.pending_appends.fetch_add(1, Ordering::Relaxed);
        let done = make_done(id);
        if self.tx.send(Request::Append { kind, id, queues, body, done, settles }).is_err() {
            // The writer is gone (closed): the completion is dropped uncalled, like on any Err.
            self.shared.pending_appends.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Closed);
        }
        *next_id += 1;
        Ok(id)
    }

    /// Appends message body `body` for `queues` and settles message `from.1` of queue `from.0`
    /// in one record: after a crash either both happened or neither (a message moved from one
    /// queue to others is never lost and never doubled). Otherwise as [`Store::append_with`]
    /// with [`Keep::Durable`].
    pub fn append_moved(
        &self,
        from: (QueueId, MessageId),
        queues: &[QueueId],
        body: Bytes,
        make_done: impl FnOnce(MessageId) -> Completion,
    ) -> Result<MessageId, StoreError> {
        self.send_append(kind::MOVED, vec![from], queues, body, make_done)
    }

    /// Appends message body `body` for `queues` and settles each (queue, message) of `settles`
    /// in one record, as [`Store::append_moved`] does for one (an aggregate written with the
    /// acks of its parts: after a crash, the aggregate and not the parts, or the parts and not
    /// the aggregate).
    pub fn append_settling(
        &self,
        settles: Vec<(QueueId, MessageId)>,
        queues: &[QueueId],
        body: Bytes,
        make_done: impl FnOnce(MessageId) -> Completion,
    ) -> Result<MessageId, StoreError> {
        self.send_append(kind::SETTLING, settles, queues, body, make_done)
    }

    /// Appends the messages `parts` (each its store queues and body) as one record, with ids
    /// `first..first + parts.len()`; returns `first`. After a crash either all of them are in
    /// the log or none. `done` is called once, for the whole group. Fails like
    /// [`Store::append`], and with [`StoreError::Invalid`] for no parts, more than 65,535, or a
    /// group larger than a record may be.
    pub fn append_group(
        &self,
        parts: Vec<(Vec<QueueId>, Bytes)>,
        make_done: impl FnOnce(MessageId) -> Completion,
    ) -> Result<MessageId, StoreError> {
        if parts.is_empty() || parts.len() > u16::MAX as usize {
            return Err(StoreError::Invalid("a group needs 1..=65535 messages".into()));
        }
        let mut checked = Vec::with_capacity(parts.len());
        for (queues, body) in parts {
            checked.push((self.check_append(&queues, &body)?, body));
        }
        if record::group_len(checked.iter().map(|(q, b)| (q.len(), b.len()))) > self.options.max_record_bytes {
            return Err(StoreError::Invalid("a group larger than the largest record".into()));
        }
        if self.pending_appends() >= self.options.channel_capacity {
            return Err(StoreError::Busy);
        }
        let mut next_id = self.next_id.lock();
        let first = *next_id;
        let Some(end) = first.checked_add(checked.len() as u64).filter(|&end| end < u64::MAX) else {
            return Err(StoreError::Invalid("message ids exhausted".into()));
        };
        self.shared.pending_appends.fetch_add(1, Ordering::Relaxed);
        let done = make_done(first);
        if self.tx.send(Request::AppendGroup { first_id: first, parts: checked, done }).is_err() {
            self.shared.pending_appends.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::Closed);
        }
        *next_id = end;
        Ok(first)
    }

    /// Appends sent that the writer has not taken into a batch yet.
    pub fn pending_appends(&self) -> usize {
        self.shared.pending_appends.load(Ordering::Relaxed)
    }

    fn check_append(&self, queues: &[QueueId], body: &Bytes) -> Result<QueueIds, StoreError> {
        let mut queues = QueueIds::from_slice(queues);
        queues.sort_unstable();
        queues.dedup();
        let max = self.options.max_queues_per_message;
        if queues.is_empty() || queues.len() > max {
            return Err(StoreError::Invalid(format!("a message needs 1..={max} queues")));
        }
        if record::message_len(queues.len(), body.len()) > self.options.max_record_bytes {
            return Err(StoreError::Invalid(format!("message larger than a segment ({} bytes)", body.len())));
        }
        Ok(queues)
    }

    /// Records that `queue` acked message `id`. Written with the next batch; needs no completion
    /// (a lost ack only means a redelivery after a crash). Acking twice is harmless.
    pub fn ack(&self, queue: QueueId, id: MessageId) -> Result<(), StoreError> {
        self.send_pair(kind::ACK, queue, id)
    }

    /// [`Store::ack`] for many messages of `queue`, in fewer requests to the writer.
    pub fn ack_many(&self, queue: QueueId, ids: &[MessageId]) -> Result<(), StoreError> {
        for part in ids.chunks(MAX_ACKS_PER_REQUEST) {
            let ids = part.to_vec();
            self.tx.send(Request::Acks { queue, ids }).map_err(|_| StoreError::Closed)?;
        }
        Ok(())
    }

    /// Records that every message of `queue` with id <= `up_to` has been delivered, so recovery
    /// reports them with `redelivered = true`. Markers only grow.
    pub fn mark_delivered(&self, queue: QueueId, up_to: MessageId) -> Result<(), StoreError> {
        self.send_pair(kind::DELIVERED, queue, up_to)
    }

    /// Acks, for `queue`, every message with id <= `up_to` (queue purge; a deleted queue is
    /// purged with `up_to = MessageId::MAX`, which also forgets its delivered marker). One
    /// record instead of one ack per message; needs no completion, like acks.
    pub fn purge(&self, queue: QueueId, up_to: MessageId) -> Result<(), StoreError> {
        self.send_pair(kind::PURGE, queue, up_to)
    }

    fn send_pair(&self, kind: u8, queue: QueueId, id: MessageId) -> Result<(), StoreError> {
        self.tx.send(Request::Pair { kind, queue, id }).map_err(|_| StoreError::Closed)
    }

    /// Calls `done` once everything submitted before is durable.
    pub fn sync(&self, done: Completion) -> Result<(), StoreError> {
        self.tx.send(Request::Sync { done }).map_err(|_| StoreError::Closed)
    }

    /// Reads the body of message `id` from its segment, verifying its checksum. Valid once the
    /// append's completion said `Ok` and until the segment is reclaimed.
    pub fn read(&self, id: MessageId) -> Result<Bytes, StoreError> {
        let mut out = Err(StoreError::NotFound(id));
        self.read_many(&[id], |_, read| {
            out = read;
            false
        });
        out
    }

    /// Reads the bodies of `ids` as [`Store::read`] does, showing each to `each` in the order
    /// given until it answers false. Ids in increasing order are read in one pass over their
    /// segments.
    pub fn read_many(&self, ids: &[MessageId], mut each: impl FnMut(MessageId, Result<Bytes, StoreError>) -> bool) {
        let mut walker: Option<Walker> = None;
        let mut cursor = self.shared.inner.lock().cursor;
        for &id in ids {
            let found = (|| {
                let place = {
                    let shared = self.shared.inner.lock();
                    let place = shared.index.get(id).ok_or(StoreError::NotFound(id))?;
                    match walker.as_mut() {
                        Some(w) if w.segment() == place.segment => w.extend_to(place),
                        _ => {
                            let file = shared.files.get(&place.segment).cloned().ok_or(StoreError::NotFound(id))?;
                            walker = Some(Walker::new(file, place, self.options.max_record_bytes));
                        }
                    }
                    place
                };
                // Go on from where the last read stopped when that is past the anchor.
                let from = match cursor {
                    Some(c) if c.segment == place.segment && c.after_id < id && c.offset >= place.walk_from => c.offset,
                    _ => place.walk_from,
                };
                let (body, next, last) = walker.as_mut().expect("set above").find(from, id)?;
                cursor = Some(Cursor { segment: place.segment, offset: next, after_id: last });
                Ok(body)
            })();
            if !each(id, found) {
                break;
            }
        }
        self.shared.inner.lock().cursor = cursor;
    }

    /// Current figures.
    pub fn stats(&self) -> StoreStats {
        let shared = self.shared.inner.lock();
        StoreStats {
            segments: shared.files.len(),
            index_anchors: shared.index.len(),
            index_bytes: shared.index.allocated_bytes(),
        }
    }

    /// How many fsyncs the writer made and how long they took.
    pub fn fsync_stats(&self) -> crate::FsyncStats {
        self.shared.sync_times.snapshot()
    }

    /// Bytes of log per index anchor: the index costs no memory per message.
    pub const INDEX_ANCHOR_SPACING_BYTES: u32 = ANCHOR_SPACING_BYTES;

    /// The directory holding the segments.
    pub fn segments_dir(&self) -> &Path {
        &self.dir
    }

    /// Path of segment `seq` (for tests and tools).
    pub fn segment_path(&self, seq: u32) -> PathBuf {
        segment::path(&self.dir, seq)
    }

    /// Writes everything pending, stops the writer thread and waits for it.
    pub fn close(self) {
        drop(self);
    }

    /// Like [`Store::close`] through a shared handle: writes everything submitted so far, stops
    /// the writer and waits for it. Later requests fail with [`StoreError::Closed`].
    pub fn shutdown(&self) {
        let Some(handle) = self.writer.lock().take() else { return };
        let _ = self.tx.send(Request::Shutdown);
        let _ = handle.join();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}
