//! Recovery: scan every segment in order, verify each record's checksum, skip and report bad
//! records, truncate torn tails, and rebuild the index and the `LogState` (messages, acks,
//! delivered markers). Also the public recovery report types.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fs::{read_all, FileSystem, FsFile};
use crate::header::{self, FileKind, HEADER_LEN};
use crate::id_set::IdSet;
use crate::index::{Index, Slot};
use crate::record::{self, kind, FRAME_LEN};
use crate::segment;
use crate::state::LogState;
use crate::{MessageId, QueueId, StoreError, StoreOptions};

/// One unacked message of a queue after recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredMessage {
    pub id: MessageId,
    /// The message was delivered (per the queue's delivered marker) before the restart.
    pub redelivered: bool,
}

/// The unacked messages of one queue after recovery: their ids (a compact set, about a bit per
/// message when dense) and the delivered marker.
#[derive(Debug, Clone, Default)]
pub struct RecoveredQueue {
    pub ids: IdSet,
    /// Every message with an id up to this one was delivered before the restart.
    pub delivered_up_to: MessageId,
}

impl RecoveredQueue {
    /// The messages one by one, in id (publish) order.
    pub fn messages(&self) -> impl Iterator<Item = RecoveredMessage> + '_ {
        let marker = self.delivered_up_to;
        self.ids
            .runs()
            .into_iter()
            .flat_map(|r| r.first..r.first + r.count)
            .map(move |id| RecoveredMessage { id, redelivered: id <= marker })
    }
}

/// A record (or stretch of bytes) recovery did not trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub segment: u32,
    pub offset: u64,
    pub len: u64,
    pub reason: &'static str,
}

/// Statistics of one recovery.
#[derive(Debug, Clone, Default)]
pub struct RecoveryStats {
    /// Segment files read.
    pub segments: usize,
    /// Valid records applied.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Count of skipped records (all of them).
    pub skipped_count: u64,
    /// The first `max_skipped_reported` skipped records.
    pub skipped: Vec<SkippedRecord>,
    /// Bytes cut from torn tails.
    pub truncated_bytes: u64,
    /// Segment files removed because they were shorter than their header (crash at creation).
    pub removed_segments: usize,
    /// Wall time of the recovery.
    pub duration: Duration,
}

/// What `Store::open` found on disk.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Per queue, its unacked messages.
    pub queues: BTreeMap<QueueId, RecoveredQueue>,
    pub stats: RecoveryStats,
}

/// The rebuilt log, handed to the writer.
pub(crate) struct RecoveredLog {
    pub state: LogState,
    pub index: Index,
    pub files: BTreeMap<u32, Arc<dyn FsFile>>,
    pub last_seq: u32,
    pub report: Recovery,
}

/// Recovers the segments of `dir` (the `msgs` directory).
pub(crate) fn recover(fs: &dyn FileSystem, dir: &Path, options: &StoreOptions) -> Result<RecoveredLog, StoreError> {
    let started = Instant::now();
    let mut log = RecoveredLog {
        state: LogState { next_id: 1, ..LogState::default() },
        index: Index::default(),
        files: BTreeMap::new(),
        last_seq: 0,
        report: Recovery::default(),
    };
    for seq in segment::list(fs, dir)? {
        log.last_seq = seq;
        recover_segment(fs, dir, seq, options, &mut log)?;
    }
    let RecoveredLog { state, report, .. } = &mut log;
    for (&queue, ids) in &state.queues {
        let delivered_up_to = state.delivered.get(&queue).copied().unwrap_or(0);
        report.queues.insert(queue, RecoveredQueue { ids: ids.clone(), delivered_up_to });
    }
    report.stats.duration = started.elapsed();
    log.index.shrink_closed();
    Ok(log)
}

fn recover_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    seq: u32,
    options: &StoreOptions,
    log: &mut RecoveredLog,
) -> Result<(), StoreError> {
    let path = segment::path(dir, seq);
    let file = fs.open(&path).map_err(|e| StoreError::io("open segment", &e))?;
    let buf = read_all(&*file).map_err(|e| StoreError::io("read segment", &e))?;
    let stats = &mut log.report.stats;
    stats.bytes += buf.len() as u64;
    if buf.len() < HEADER_LEN {
        fs.remove(&path).map_err(|e| StoreError::io("remove empty segment", &e))?;
        stats.removed_segments += 1;
        return Ok(());
    }
    let found = header::decode(&buf, &path, FileKind::Segment)?;
    if found.seq != seq as u64 {
        return Err(StoreError::Corrupt { path, reason: format!("header says segment {}", found.seq) });
    }
    log.state.next_id = log.state.next_id.max(found.next_id);
    stats.segments += 1;
    log.state.segments.entry(seq).or_default();
    let mut skips = Vec::new();
    let mut bad = Vec::new();
    let (state, index) = (&mut log.state, &mut log.index);
    let mut records = 0u64;
    // Reads must not walk through skipped bytes: the record after them gets an anchor.
    let skipped = std::cell::Cell::new(false);
    let end = record::scan(
        &buf,
        HEADER_LEN,
        buf.len(),
        |offset, kind, payload| {
            if skipped.take() {
                index.break_walks();
            }
            match apply(state, index, seq, offset, kind, payload) {
                Ok(()) => records += 1,
                Err(reason) => bad.push((offset, FRAME_LEN + payload.len(), reason)),
            }
        },
        |skip| {
            skipped.set(true);
            skips.push((skip.offset, skip.len, skip.reason));
        },
    );
    let stats = &mut log.report.stats;
    stats.records += records;
    for (offset, len, reason) in skips.into_iter().chain(bad) {
        stats.skipped_count += 1;
        if stats.skipped.len() < options.max_skipped_reported {
            stats.skipped.push(SkippedRecord { segment: seq, offset: offset as u64, len: len as u64, reason });
        }
    }
    if end < buf.len() {
        file.truncate(end as u64).and_then(|()| file.sync_data()).map_err(|e| StoreError::io("truncate tail", &e))?;
        stats.truncated_bytes += (buf.len() - end) as u64;
    }
    log.files.insert(seq, file);
    Ok(())
}

fn apply(
    state: &mut LogState,
    index: &mut Index,
    seq: u32,
    offset: usize,
    kind: u8,
    payload: &[u8],
) -> Result<(), &'static str> {
    match kind {
        kind::MESSAGE => {
            let m = record::decode_message(payload).ok_or("bad message payload")?;
            let offset = u32::try_from(offset).map_err(|_| "offset beyond 4 GiB")?;
            let len = u32::try_from(FRAME_LEN + payload.len()).map_err(|_| "record beyond 4 GiB")?;
            let slot = Slot { segment: seq, offset, len };
            state.on_message(index, m.id, &m.queues, slot).then_some(()).ok_or("message id out of order")
        }
        kind::MOVED => {
            let (from, m) = record::decode_moved(payload).ok_or("bad moved message payload")?;
            let offset = u32::try_from(offset).map_err(|_| "offset beyond 4 GiB")?;
            let len = u32::try_from(FRAME_LEN + payload.len()).map_err(|_| "record beyond 4 GiB")?;
            let slot = Slot { segment: seq, offset, len };
            state.on_message(index, m.id, &m.queues, slot).then_some(()).ok_or("message id out of order")?;
            state.on_pair(index, seq, kind::ACK, from.0, from.1);
            Ok(())
        }
        kind::SETTLING => {
            let (settles, m) = record::decode_settling(payload).ok_or("bad settling message payload")?;
            let offset = u32::try_from(offset).map_err(|_| "offset beyond 4 GiB")?;
            let len = u32::try_from(FRAME_LEN + payload.len()).map_err(|_| "record beyond 4 GiB")?;
            let slot = Slot { segment: seq, offset, len };
            state.on_message(index, m.id, &m.queues, slot).then_some(()).ok_or("message id out of order")?;
            for (queue, id) in settles {
                state.on_pair(index, seq, kind::ACK, queue, id);
            }
            Ok(())
        }
        kind::GROUP => {
            let parts = record::decode_group(payload).ok_or("bad group payload")?;
            let offset = u32::try_from(offset).map_err(|_| "offset beyond 4 GiB")?;
            let len = u32::try_from(FRAME_LEN + payload.len()).map_err(|_| "record beyond 4 GiB")?;
            let slot = Slot { segment: seq, offset, len };
            for m in parts {
                state.on_message(index, m.id, &m.queues, slot).then_some(()).ok_or("message id out of order")?;
            }
            Ok(())
        }
        kind::PAGED => {
            // A transient message paged out before the restart: gone with it. Its id is never
            // handed out again all the same.
            let m = record::decode_message(payload).ok_or("bad paged message payload")?;
            state.next_id = state.next_id.max(m.id.saturating_add(1));
            Ok(())
        }
        kind::ACK | kind::DELIVERED | kind::PURGE => {
            let (queue, id) = record::decode_pair(payload).ok_or("bad ack/delivered/purge payload")?;
            state.on_pair(index, seq, kind, queue, id);
            Ok(())
        }
        _ => Err("unknown record kind"),
    }
}
