//! Reading messages back: from the index's anchor at or before an id, the segment's records are
//! walked forward to the id's own through a window of bytes. Where the last read left off is
//! kept, so a queue reading its paged-out messages in order (the usual case) never walks a
//! byte twice.

use std::sync::Arc;

use bytes::Bytes;

use crate::fs::FsFile;
use crate::index::Place;
use crate::record::{self, kind, Parsed, FRAME_LEN};
use crate::StoreError;

/// Bytes read at once while walking (a larger record is read whole).
const WINDOW_BYTES: usize = 32 * 1024;

/// Where a walk left off: the next record of `segment` starts at `offset`, and every message
/// from there on has an id above `after_id`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    pub segment: u32,
    pub offset: u32,
    pub after_id: u64,
}

/// Walks one segment's records.
pub(crate) struct Walker {
    file: Arc<dyn FsFile>,
    place: Place,
    max_record_bytes: usize,
    window: Vec<u8>,
    window_start: u64,
}

fn is_message(k: u8) -> bool {
    matches!(k, kind::MESSAGE | kind::PAGED | kind::MOVED | kind::SETTLING | kind::GROUP)
}

/// The first message id a message record of kind `k` holds (read without decoding the rest).
fn first_id(k: u8, p: &[u8]) -> Option<u64> {
    let at = match k {
        kind::MESSAGE | kind::PAGED => 0,
        kind::MOVED => 16,
        kind::SETTLING => 2 + 16 * u16::from_le_bytes(p.get(0..2)?.try_into().ok()?) as usize,
        kind::GROUP => 6,
        _ => return None,
    };
    Some(u64::from_le_bytes(p.get(at..at + 8)?.try_into().ok()?))
}

/// Where the body of message `id` lies in payload `p` of a message record of kind `k`, and the
/// highest id the record holds; `None` when the record does not hold `id`, an error when the
/// payload does not decode.
fn body_range(k: u8, p: &[u8], id: u64) -> Result<Option<(std::ops::Range<usize>, u64)>, &'static str> {
    let m = match k {
        kind::MESSAGE | kind::PAGED => record::decode_message(p).ok_or("bad message payload")?,
        kind::MOVED => record::decode_moved(p).ok_or("bad moved payload")?.1,
        kind::SETTLING => record::decode_settling(p).ok_or("bad settling payload")?.1,
        kind::GROUP => {
            let parts = record::decode_group(p).ok_or("bad group payload")?;
            let last = parts.iter().map(|m| m.id).max().unwrap_or(id);
            return Ok(parts.into_iter().find(|m| m.id == id).map(|m| (m.body_start..m.body_end, last)));
        }
        _ => return Ok(None),
    };
    Ok((m.id == id).then_some((m.body_start..m.body_end, id)))
}

impl Walker {
    pub fn new(file: Arc<dyn FsFile>, place: Place, max_record_bytes: usize) -> Walker {
        Walker { file, place, max_record_bytes, window: Vec::new(), window_start: 0 }
    }

    pub fn segment(&self) -> u32 {
        self.place.segment
    }

    /// Takes the segment's indexed end from a newer look-up (the active segment grows).
    pub fn extend_to(&mut self, place: Place) {
        self.place.end = self.place.end.max(place.end);
    }

    /// Bytes `at .. at + len` of the segment, from the window or read into it.
    fn bytes(&mut self, id: u64, at: u64, len: usize) -> Result<&[u8], StoreError> {
        let end = at + len as u64;
        let window_end = self.window_start + self.window.len() as u64;
        if !(at >= self.window_start && end <= window_end) {
            if end > u64::from(self.place.end) {
                return Err(corrupt(id, "record beyond the segment's indexed end"));
            }
            let n = (len.max(WINDOW_BYTES) as u64).min(u64::from(self.place.end) - at) as usize;
            self.window.resize(n, 0);
            if let Err(e) = self.file.read_at(at, &mut self.window) {
                // Nothing of a failed read is kept for the next id.
                self.window.clear();
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => StoreError::NotFound(id),
                    std::io::ErrorKind::UnexpectedEof => corrupt(id, "record beyond the end of its segment"),
                    _ => StoreError::io("read message", &e),
                });
            }
            self.window_start = at;
        }
        let from = (at - self.window_start) as usize;
        Ok(&self.window[from..from + len])
    }

    /// Walks from `from` (a record boundary at or before message `id`'s record) to `id`;
    /// returns its body, where the next record starts and the highest id of its record (a
    /// group holds several). A record failing its checksum is stepped over as recovery does;
    /// when `id` is then not found, that record may have been it, and the answer says so.
    pub fn find(&mut self, from: u32, id: u64) -> Result<(Bytes, u32, u64), StoreError> {
        let mut pos = u64::from(from);
        // A damaged record since the last message below `id`.
        let mut damaged = None;
        while pos < u64::from(self.place.end) {
            let head = self.bytes(id, pos, FRAME_LEN)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let k = head[FRAME_LEN - 1];
            let total = FRAME_LEN - 2 + len;
            if !(2..=self.max_record_bytes).contains(&len) {
                return Err(corrupt(id, "record length out of bounds"));
            }
            let next = pos + total as u64;
            if !is_message(k) {
                pos = next;
                continue;
            }
            let max = self.max_record_bytes;
            let rec = self.bytes(id, pos, total)?;
            let (k, payload) = match record::parse(rec, max) {
                Parsed::Ok { kind, payload, .. } => (kind, payload),
                Parsed::Bad { total: Some(_), reason } => {
                    damaged = Some(reason);
                    pos = next;
                    continue;
                }
                Parsed::Bad { reason, .. } => return Err(corrupt(id, reason)),
                Parsed::Incomplete => return Err(corrupt(id, "short record")),
            };
            match first_id(k, payload) {
                Some(first) if first > id => break,
                Some(first) if first == id || k == kind::GROUP => {
                    if let Some((range, last)) = body_range(k, payload, id).map_err(|reason| corrupt(id, reason))? {
                        let body = Bytes::copy_from_slice(&payload[range]);
                        return Ok((body, next as u32, last));
                    }
                    damaged = None;
                }
                Some(_) => damaged = None,
                None => return Err(corrupt(id, "bad message payload")),
            }
            pos = next;
        }
        Err(damaged.map_or(StoreError::NotFound(id), |reason| corrupt(id, reason)))
    }
}

fn corrupt(id: u64, reason: &str) -> StoreError {
    StoreError::CorruptRecord { id, reason: reason.to_string() }
}
