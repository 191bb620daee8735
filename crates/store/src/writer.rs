//! The writer thread and its group commit: take a batch of requests from the channel,
//! encode them, write them with one append, `fdatasync` once, then apply them to the index and
//! state and call every completion. Also rolls segments and deletes reclaimable ones.

use std::mem;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use bytes::Bytes;

use crate::fs::{FileSystem, FsFile};
use crate::header::HEADER_LEN;
use crate::index::Slot;
use crate::log::Shared;
use crate::record::{self, kind, PAIR_RECORD_LEN};
use crate::segment;
use crate::state::LogState;
use crate::{Completion, StoreError, StoreOptions};

/// The store queues of one message; almost always one or two, kept inline.
pub(crate) type QueueIds = smallvec::SmallVec<[u64; 2]>;

/// A request to the writer thread.
pub(crate) enum Request {
    Append {
        /// `kind::MESSAGE`, `kind::PAGED` for a transient message paged out of memory, or
        /// `kind::MOVED` / `kind::SETTLING` (with `settles`: one, or several).
        kind: u8,
        id: u64,
        queues: QueueIds,
        body: Bytes,
        done: Completion,
        /// The (queue, message)s a MOVED or SETTLING record settles.
        settles: Vec<(u64, u64)>,
    },
    /// A GROUP record: messages `first_id..` for `(queues, body)` each, one completion.
    AppendGroup {
        first_id: u64,
        parts: Vec<(QueueIds, Bytes)>,
        done: Completion,
    },
    /// An ACK, DELIVERED or PURGE record (`queue`, then a message id).
    Pair {
        kind: u8,
        queue: u64,
        id: u64,
    },
    /// ACK records of several messages of one queue (one request for a multiple ack).
    Acks {
        queue: u64,
        ids: Vec<u64>,
    },
    Sync {
        done: Completion,
    },
    Shutdown,
}

enum Effect {
    Message {
        id: u64,
        queues: QueueIds,
        slot: Slot,
    },
    Pair {
        kind: u8,
        queue: u64,
        id: u64,
    },
    /// The settling half of a MOVED record: applied with its message, and (unlike a pair)
    /// never retried on its own when the write fails, since the copy failed with it.
    MovedAck {
        queue: u64,
        id: u64,
    },
}

/// Records of one segment waiting for their write and fdatasync. The writer keeps one and
/// reuses its buffers from batch to batch.
#[derive(Default)]
pub(crate) struct Chunk {
    buf: Vec<u8>,
    effects: Vec<Effect>,
    done: Vec<Completion>,
    /// `Store::sync` barriers: Ok only if no earlier ack still waits for a retry.
    syncs: Vec<Completion>,
}

/// Most acks kept for retry after failed writes (disk full); older ones are dropped, which only
/// means redelivery after a restart.
const MAX_RETRY: usize = 65_536;

/// Capacity of the record buffer kept for the next batch; a batch that grew it further (large
/// messages) gives the memory back.
const KEEP_BUFFER_BYTES: usize = 1 << 20;

pub(crate) struct Writer {
    pub fs: Arc<dyn FileSystem>,
    pub dir: PathBuf,
    pub options: StoreOptions,
    pub shared: Arc<Shared>,
    pub state: LogState,
    pub active: u32,
    pub active_file: Option<Arc<dyn FsFile>>,
    pub active_len: usize,
    /// No record but carried-forward markers written to the active segment yet.
    pub fresh: bool,
    pub retry: Vec<Request>,
    pub failed: Option<StoreError>,
    /// Empty between batches; holds its buffers' capacity.
    pub chunk: Chunk,
}

impl Writer {
    /// Starts a new active segment after `last_seq`, carrying the delivered markers forward, and
    /// deletes what recovery found reclaimable.
    pub fn start(&mut self, last_seq: u32) -> Result<(), StoreError> {
        self.active = last_seq;
        let mut chunk = mem::take(&mut self.chunk);
        match self.roll(&mut chunk) {
            // A full disk here keeps the carried markers for a retry; only a failed fsync is fatal.
            Ok(()) => _ = self.commit(&mut chunk),
            // No room even for a new segment's header: the store opens without an active segment
            // (so the broker starts and consumers can drain it), and the first write tries again.
            Err(StoreError::DiskFull) => {}
            Err(e) => return Err(e),
        }
        self.chunk = chunk;
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        self.reclaim();
        Ok(())
    }

    /// The thread's loop; returns after a `Shutdown` request or when every sender is gone.
    pub fn run(mut self, rx: Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut batch = mem::take(&mut self.retry);
            let mut body_bytes = 0;
            let mut appends = 0;
            let mut shutdown = false;
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match &req {
                    Request::Append { body, .. } => {
                        body_bytes += body.len();
                        appends += 1;
                    }
                    Request::AppendGroup { parts, .. } => {
                        body_bytes += parts.iter().map(|(_, b)| b.len()).sum::<usize>();
                        appends += 1;
                    }
                    Request::Shutdown => shutdown = true,
                    _ => {}
                }
                batch.push(req);
                if batch.len() < self.options.max_batch_records && body_bytes < self.options.max_batch_bytes {
                    next = rx.try_recv().ok();
                }
            }
            // `channel_capacity` bounds the appends waiting in the channel; these left it.
            self.shared.pending_appends.fetch_sub(appends, Ordering::Relaxed);
            self.process(batch);
            if shutdown {
                self.finish(&rx);
                break;
            }
        }
    }

    /// At shutdown: what the last batches' completions submitted (a dead letter's copy, once
    /// durable, acks its original) is written too, so a clean stop leaves nothing to do twice
    /// after the restart. Completions of those submit little more; the rounds are bounded.
    fn finish(&mut self, rx: &Receiver<Request>) {
        for _ in 0..16 {
            let rest: Vec<Request> = rx.try_iter().filter(|r| !matches!(r, Request::Shutdown)).collect();
            if rest.is_empty() {
                return;
            }
            let appends =
                rest.iter().filter(|r| matches!(r, Request::Append { .. } | Request::AppendGroup { .. })).count();
            self.shared.pending_appends.fetch_sub(appends, Ordering::Relaxed);
            self.process(rest);
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        let mut chunk = mem::take(&mut self.chunk);
        // Once a write of this batch failed, the rest of the batch is refused too (appends fail,
        // acks and markers wait for a retry): nothing may reach the log ahead of a record that
        // was submitted before it and is now waiting (a retried PURGE written after a later
        // message would settle that message at recovery).
        let mut failed: Option<StoreError> = None;
        for req in batch {
            if let Some(err) = &failed {
                self.refuse(req, err);
                continue;
            }
            match req {
                Request::Append { kind, id, queues, body, done, settles } => {
                    let len = match settles.len() {
                        0 => record::message_len(queues.len(), body.len()),
                        1 => record::moved_len(queues.len(), body.len()),
                        n => record::settling_len(n, queues.len(), body.len()),
                    };
                    if let Err(err) = self.ensure_room(&mut chunk, len) {
                        done(Err(err.clone()));
                        failed = Some(err);
                        continue;
                    }
                    let offset = (self.active_len + chunk.buf.len()) as u32;
                    let slot = Slot { segment: self.active, offset, len: len as u32 };
                    match settles.as_slice() {
                        [] => record::encode_message(&mut chunk.buf, kind, id, &queues, &body),
                        [from] => record::encode_moved(&mut chunk.buf, *from, id, &queues, &body),
                        many => record::encode_settling(&mut chunk.buf, many, id, &queues, &body),
                    }
                    chunk.effects.push(Effect::Message { id, queues, slot });
                    for (queue, settled) in settles {
                        chunk.effects.push(Effect::MovedAck { queue, id: settled });
                    }
                    chunk.done.push(done);
                }
                Request::AppendGroup { first_id, parts, done } => {
                    let len = record::group_len(parts.iter().map(|(q, b)| (q.len(), b.len())));
                    if let Err(err) = self.ensure_room(&mut chunk, len) {
                        done(Err(err.clone()));
                        failed = Some(err);
                        continue;
                    }
                    let offset = (self.active_len + chunk.buf.len()) as u32;
                    let slot = Slot { segment: self.active, offset, len: len as u32 };
                    let views: Vec<(&[u64], &[u8])> = parts.iter().map(|(q, b)| (q.as_slice(), b.as_ref())).collect();
                    record::encode_group(&mut chunk.buf, first_id, &views);
                    for (i, (queues, _)) in parts.into_iter().enumerate() {
                        chunk.effects.push(Effect::Message { id: first_id + i as u64, queues, slot });
                    }
                    chunk.done.push(done);
                }
                Request::Pair { kind, queue, id } => {
                    if let Err(err) = self.add_pair(&mut chunk, kind, queue, id) {
                        failed = Some(err);
                        continue;
                    }
                }
                Request::Acks { queue, ids } => {
                    let mut ids = ids.into_iter();
                    for id in ids.by_ref() {
                        if let Err(err) = self.add_pair(&mut chunk, kind::ACK, queue, id) {
                            failed = Some(err);
                            break;
                        }
                    }
                    // Those after a failed one wait for a retry too, in order.
                    self.retry_acks(queue, ids);
                    if failed.is_some() {
                        continue;
                    }
                }
                Request::Sync { done } => {
                    chunk.syncs.push(done);
                    continue;
                }
                Request::Shutdown => continue,
            }
            self.fresh = false;
        }
        // A chunk that follows a failure is empty but may hold sync barriers: they fail.
        let _ = self.commit(&mut chunk);
        self.chunk = chunk;
        self.reclaim();
    }

    /// A request of a batch in which an earlier write failed: appends and barriers fail with
    /// that error, acks and markers are kept for a retry.
    fn refuse(&mut self, req: Request, err: &StoreError) {
        match req {
            Request::Append { done, .. } | Request::AppendGroup { done, .. } | Request::Sync { done } => {
                done(Err(err.clone()))
            }
            pair @ Request::Pair { .. } => self.push_retry(pair),
            Request::Acks { queue, ids } => self.retry_acks(queue, ids),
            Request::Shutdown => {}
        }
    }

    /// Keeps acks for a retry, one record each, in order.
    fn retry_acks(&mut self, queue: u64, ids: impl IntoIterator<Item = u64>) {
        for id in ids {
            self.push_retry(Request::Pair { kind: kind::ACK, queue, id });
        }
    }

    /// Adds an ACK, DELIVERED or PURGE record to `chunk`; one that does not fit (disk full)
    /// waits for a retry.
    fn add_pair(&mut self, chunk: &mut Chunk, kind: u8, queue: u64, id: u64) -> Result<(), StoreError> {
        if let Err(err) = self.ensure_room(chunk, PAIR_RECORD_LEN) {
            self.push_retry(Request::Pair { kind, queue, id });
            return Err(err);
        }
        record::encode_pair(&mut chunk.buf, kind, queue, id);
        chunk.effects.push(Effect::Pair { kind, queue, id });
        // Per record, not per request: the acks after this one must fit the segment's size.
        self.fresh = false;
        Ok(())
    }

    /// Commits `chunk` and rolls to a new segment when a record of `len` bytes does not fit in
    /// the active one (a fresh segment takes any record: records never span segments).
    fn ensure_room(&mut self, chunk: &mut Chunk, len: usize) -> Result<(), StoreError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.active_file.is_none() {
            // The segment the start could not create (disk full): now or never for this record.
            return self.roll(chunk);
        }
        if self.active_len + chunk.buf.len() + len <= self.options.segment_size_bytes as usize || self.fresh {
            return Ok(());
        }
        self.commit(chunk)?;
        self.roll(chunk)
    }

    /// Writes, syncs and applies `chunk`, then completes its requests. On failure every
    /// completion of the chunk gets the error, its acks and markers wait for a retry, and the
    /// error is returned.
    fn commit(&mut self, chunk: &mut Chunk) -> Result<(), StoreError> {
        let result = self.write_and_complete(chunk);
        // A failed commit leaves its effects unapplied: they must not reach the next batch.
        chunk.effects.clear();
        chunk.buf.clear();
        if chunk.buf.capacity() > KEEP_BUFFER_BYTES {
            chunk.buf = Vec::new();
        }
        result
    }

    /// [`Writer::commit`] but for the buffers' upkeep: calls every completion of the chunk, and
    /// applies its effects if the write succeeded.
    fn write_and_complete(&mut self, chunk: &mut Chunk) -> Result<(), StoreError> {
        let Chunk { buf, effects, done, syncs } = chunk;
        if let Some(err) = self.failed.clone() {
            done.append(syncs);
            fail(done, &err);
            return Err(err);
        }
        let file = match self.active_file.clone() {
            Some(file) => Some(file),
            // No segment yet (the disk was full at start) and nothing to write: a barrier only.
            None if buf.is_empty() => None,
            None => {
                done.append(syncs);
                fail(done, &StoreError::DiskFull);
                return Err(StoreError::DiskFull);
            }
        };
        if let Some(file) = file.filter(|_| !buf.is_empty()) {
            if let Err(e) = file.append(buf) {
                let err = StoreError::io("append", &e);
                self.roll_back(&*file);
                for effect in effects.drain(..) {
                    if let Effect::Pair { kind, queue, id } = effect {
                        self.push_retry(Request::Pair { kind, queue, id });
                    }
                }
                done.append(syncs);
                fail(done, &err);
                return Err(err);
            }
            let started = std::time::Instant::now();
            let synced = file.sync_data();
            self.shared.sync_times.record(started.elapsed());
            if let Err(e) = synced {
                let err = StoreError::Failed(e.to_string());
                self.failed = Some(err.clone());
                done.append(syncs);
                fail(done, &err);
                return Err(err);
            }
            self.active_len += buf.len();
        }
        self.apply(effects);
        for d in done.drain(..) {
            d(Ok(()));
        }
        // Acks waiting for a retry (disk full) are not durable yet: the barrier is not reached.
        let barrier = if self.retry.is_empty() { Ok(()) } else { Err(StoreError::DiskFull) };
        for s in syncs.drain(..) {
            s(barrier.clone());
        }
        Ok(())
    }

    /// After a failed append, cuts the partial record so the log stays a sequence of whole
    /// records. If even that fails, later offsets follow the garbage (recovery skips it).
    fn roll_back(&mut self, file: &dyn FsFile) {
        if file.truncate(self.active_len as u64).is_ok() {
            return;
        }
        match file.size_bytes() {
            Ok(len) => self.active_len = len as usize,
            Err(e) => self.failed = Some(StoreError::Failed(e.to_string())),
        }
        self.shared.inner.lock().index.break_walks();
    }

    fn apply(&mut self, effects: &mut Vec<Effect>) {
        let mut shared = self.shared.inner.lock();
        for effect in effects.drain(..) {
            match effect {
                Effect::Message { id, queues, slot } => {
                    self.state.on_message(&mut shared.index, id, &queues, slot);
                }
                Effect::Pair { kind, queue, id } => self.state.on_pair(&shared.index, self.active, kind, queue, id),
                Effect::MovedAck { queue, id } => self.state.on_pair(&shared.index, self.active, kind::ACK, queue, id),
            }
        }
    }

    fn push_retry(&mut self, req: Request) {
        if self.retry.len() < MAX_RETRY {
            self.retry.push(req);
        }
    }

    /// Starts segment `active + 1`; its first records repeat every queue's delivered marker so
    /// that deleting older segments never loses one.
    fn roll(&mut self, chunk: &mut Chunk) -> Result<(), StoreError> {
        let seq = self.active.checked_add(1).ok_or(StoreError::Invalid("segment numbers exhausted".into()))?;
        let file = segment::create(&*self.fs, &self.dir, seq, self.state.next_id)?;
        self.active = seq;
        self.active_file = Some(file.clone());
        self.active_len = HEADER_LEN;
        self.fresh = true;
        self.state.segments.entry(seq).or_default();
        {
            let mut shared = self.shared.inner.lock();
            shared.files.insert(seq, file);
            // The segment just closed will not grow: give back its index's growth slack.
            shared.index.shrink_closed();
        }
        for (&queue, &up_to) in &self.state.delivered {
            record::encode_pair(&mut chunk.buf, kind::DELIVERED, queue, up_to);
            // As an effect too, so a failed write retries it.
            chunk.effects.push(Effect::Pair { kind: kind::DELIVERED, queue, id: up_to });
        }
        Ok(())
    }

    /// Deletes every reclaimable segment, oldest first, syncing the directory after each round
    /// so that a segment's deletion is durable before a segment holding acks for it goes.
    fn reclaim(&mut self) {
        loop {
            let victims = self.state.deletable(self.active);
            if victims.is_empty() {
                break;
            }
            for seq in victims {
                match self.fs.remove(&segment::path(&self.dir, seq)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(_) => return,
                }
                self.state.segments.remove(&seq);
                self.shared.inner.lock().files.remove(&seq);
            }
            if self.fs.sync_dir(&self.dir).is_err() {
                return;
            }
        }
        let segments = &self.state.segments;
        self.shared.inner.lock().index.trim(|s| segments.contains_key(&s));
    }
}

fn fail(done: &mut Vec<Completion>, err: &StoreError) {
    for d in done.drain(..) {
        d(Err(err.clone()));
    }
}
