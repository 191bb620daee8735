//! Record framing shared by every log file: `len u32 | crc32c u32 | version u8 | kind u8 |
//! payload`, little endian, `len` counting the bytes after the crc (2 + payload), the crc covering
//! version, kind and payload. Also the payload layouts of each record kind.

use crate::crc::crc32c;

/// Bytes before the payload: len, crc, version, kind.
pub const FRAME_LEN: usize = 10;
/// Record version written by this build.
pub const RECORD_VERSION: u8 = 1;

/// Record kinds.
pub mod kind {
    /// `id u64 | queue count u16 | queue ids u64 * count | body`.
    pub const MESSAGE: u8 = 1;
    /// `queue u64 | id u64`.
    pub const ACK: u8 = 2;
    /// `queue u64 | up_to id u64`: every message of the queue with id <= up_to was delivered.
    pub const DELIVERED: u8 = 3;
    /// `queue u64 | up_to id u64`: every message of the queue with id <= up_to is acked;
    /// `up_to = u64::MAX` (queue deleted) also drops the queue's delivered marker.
    pub const PURGE: u8 = 4;
    /// Like MESSAGE, but a copy of a transient message paged out of memory: readable and acked
    /// like a message while the store runs, ignored by recovery (it never survives a restart).
    pub const PAGED: u8 = 5;
    /// A message moved from another queue: `from queue u64 | from id u64 |` then a MESSAGE
    /// payload. One record, so the copy and the settling of the original are on disk together
    /// or not at all.
    pub const MOVED: u8 = 6;
    /// Several messages written as one: `count u16 |` then per message `len u32 |` a MESSAGE
    /// payload. One checksum covers them all, so after a crash all are there or none (the
    /// parts of a split message).
    pub const GROUP: u8 = 7;
    /// A message that settles several others (an aggregate and its parts): `count u16 |`
    /// `(queue u64 | id u64) * count |` then a MESSAGE payload. As MOVED, one record: the
    /// message is there and the others settled, or neither.
    pub const SETTLING: u8 = 8;
    /// Definitions: `key len u32 | key | value`.
    pub const DEF_PUT: u8 = 16;
    /// Definitions: `key`.
    pub const DEF_DELETE: u8 = 17;
}

/// Encodes one record whose payload is the concatenation of `parts` at the end of `buf`.
pub fn encode(buf: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    let start = begin(buf, kind, payload_len);
    for part in parts {
        buf.extend_from_slice(part);
    }
    finish(buf, start);
}

/// Writes the frame of a record of `payload_len` bytes (its crc still zero); returns where the
/// record starts, for [`finish`].
fn begin(buf: &mut Vec<u8>, kind: u8, payload_len: usize) -> usize {
    let start = buf.len();
    let len = u32::try_from(2 + payload_len).expect("record length checked by caller");
    buf.reserve(FRAME_LEN + payload_len);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(RECORD_VERSION);
    buf.push(kind);
    start
}

/// Fills in the crc of the record that starts at `start` and ends at the end of `buf`.
fn finish(buf: &mut [u8], start: usize) {
    let crc = crc32c(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Total encoded size of a MESSAGE record.
pub fn message_len(queues: usize, body: usize) -> usize {
    FRAME_LEN + 8 + 2 + 8 * queues + body
}

/// Encodes a MESSAGE (or PAGED) record.
pub fn encode_message(buf: &mut Vec<u8>, kind: u8, id: u64, queues: &[u64], body: &[u8]) {
    let start = begin(buf, kind, message_len(queues.len(), body.len()) - FRAME_LEN);
    put_message(buf, id, queues, body);
    finish(buf, start);
}

/// A MESSAGE payload: `id | queue count | queue ids | body`.
fn put_message(buf: &mut Vec<u8>, id: u64, queues: &[u64], body: &[u8]) {
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&(queues.len() as u16).to_le_bytes());
    for q in queues {
        buf.extend_from_slice(&q.to_le_bytes());
    }
    buf.extend_from_slice(body);
}

/// Total encoded size of a MOVED record.
pub fn moved_len(queues: usize, body: usize) -> usize {
    message_len(queues, body) + 16
}

/// Encodes a MOVED record: message `id` for `queues`, settling message `from.1` of queue
/// `from.0`.
pub fn encode_moved(buf: &mut Vec<u8>, from: (u64, u64), id: u64, queues: &[u64], body: &[u8]) {
    let start = begin(buf, kind::MOVED, moved_len(queues.len(), body.len()) - FRAME_LEN);
    buf.extend_from_slice(&from.0.to_le_bytes());
    buf.extend_from_slice(&from.1.to_le_bytes());
    put_message(buf, id, queues, body);
    finish(buf, start);
}

/// Total encoded size of a SETTLING record settling `settles` messages.
pub fn settling_len(settles: usize, queues: usize, body: usize) -> usize {
    message_len(queues, body) + 2 + 16 * settles
}

/// Encodes a SETTLING record: message `id` for `queues`, settling each (queue, id) of
/// `settles`.
pub fn encode_settling(buf: &mut Vec<u8>, settles: &[(u64, u64)], id: u64, queues: &[u64], body: &[u8]) {
    let start = begin(buf, kind::SETTLING, settling_len(settles.len(), queues.len(), body.len()) - FRAME_LEN);
    buf.extend_from_slice(&(settles.len() as u16).to_le_bytes());
    for (queue, settled) in settles {
        buf.extend_from_slice(&queue.to_le_bytes());
        buf.extend_from_slice(&settled.to_le_bytes());
    }
    put_message(buf, id, queues, body);
    finish(buf, start);
}

/// Decodes a SETTLING payload: the settled (queue, id)s, and the message (its body range
/// counted from the start of the whole payload).
pub fn decode_settling(p: &[u8]) -> Option<(Vec<(u64, u64)>, MessagePayload)> {
    let count = u16::from_le_bytes(p.get(0..2)?.try_into().ok()?) as usize;
    let settles =
        (0..count).map(|i| Some((u64_at(p, 2 + 16 * i)?, u64_at(p, 10 + 16 * i)?))).collect::<Option<Vec<_>>>()?;
    let skip = 2 + 16 * count;
    let mut m = decode_message(p.get(skip..)?)?;
    m.body_start += skip;
    m.body_end += skip;
    Some((settles, m))
}

/// Decodes a MOVED payload: the settled (queue, id), and the message (its `body_start` counted
/// from the start of the whole payload).
pub fn decode_moved(p: &[u8]) -> Option<((u64, u64), MessagePayload)> {
    let from = (u64_at(p, 0)?, u64_at(p, 8)?);
    let mut m = decode_message(p.get(16..)?)?;
    m.body_start += 16;
    m.body_end += 16;
    Some((from, m))
}

/// Total encoded size of a GROUP record of messages with `(queue count, body len)` each.
pub fn group_len(parts: impl IntoIterator<Item = (usize, usize)>) -> usize {
    FRAME_LEN + 2 + parts.into_iter().map(|(queues, body)| 4 + message_len(queues, body) - FRAME_LEN).sum::<usize>()
}

/// Encodes a GROUP record: messages `first_id`, `first_id + 1`, ... for the `(queues, body)` of
/// each part.
pub fn encode_group(buf: &mut Vec<u8>, first_id: u64, parts: &[(&[u64], &[u8])]) {
    let len = group_len(parts.iter().map(|(q, b)| (q.len(), b.len())));
    let start = begin(buf, kind::GROUP, len - FRAME_LEN);
    buf.extend_from_slice(&(parts.len() as u16).to_le_bytes());
    for (i, (queues, body)) in parts.iter().enumerate() {
        let payload_len = message_len(queues.len(), body.len()) - FRAME_LEN;
        buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
        put_message(buf, first_id + i as u64, queues, body);
    }
    finish(buf, start);
}

/// The messages of a GROUP payload, each with its `body_start` counted from the start of the
/// whole payload; `None` if the layout is inconsistent.
pub fn decode_group(p: &[u8]) -> Option<Vec<MessagePayload>> {
    let count = u16::from_le_bytes(p.get(0..2)?.try_into().ok()?) as usize;
    let mut at = 2;
    let mut out = Vec::with_capacity(count.min(p.len() / 14));
    for _ in 0..count {
        let len = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?) as usize;
        let start = at + 4;
        let mut m = decode_message(p.get(start..start.checked_add(len)?)?)?;
        m.body_start += start;
        m.body_end = start + len;
        out.push(m);
        at = start + len;
    }
    (at == p.len()).then_some(out)
}

/// Size of an ACK, DELIVERED or PURGE record.
pub const PAIR_RECORD_LEN: usize = FRAME_LEN + 16;

/// Encodes an ACK, DELIVERED or PURGE record (`a u64 | b u64`).
pub fn encode_pair(buf: &mut Vec<u8>, kind: u8, a: u64, b: u64) {
    encode(buf, kind, &[&a.to_le_bytes(), &b.to_le_bytes()]);
}

/// A decoded MESSAGE payload; `body` is the byte range of the body inside the payload.
pub struct MessagePayload {
    pub id: u64,
    pub queues: Vec<u64>,
    pub body_start: usize,
    /// Where the body ends (the end of the payload, except inside a GROUP).
    pub body_end: usize,
}

fn u64_at(p: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = p.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Decodes a MESSAGE payload; `None` if its layout is inconsistent.
pub fn decode_message(p: &[u8]) -> Option<MessagePayload> {
    let id = u64_at(p, 0)?;
    let count = u16::from_le_bytes(p.get(8..10)?.try_into().ok()?) as usize;
    let mut queues = Vec::with_capacity(count);
    for i in 0..count {
        queues.push(u64_at(p, 10 + 8 * i)?);
    }
    let body_start = 10 + 8 * count;
    (body_start <= p.len()).then_some(MessagePayload { id, queues, body_start, body_end: p.len() })
}

/// Decodes an ACK, DELIVERED or PURGE payload.
pub fn decode_pair(p: &[u8]) -> Option<(u64, u64)> {
    (p.len() == 16).then(|| (u64_at(p, 0), u64_at(p, 8))).and_then(|(a, b)| Some((a?, b?)))
}

/// Result of trying to parse a record at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A valid record of `total` bytes.
    Ok { kind: u8, payload: &'a [u8], total: usize },
    /// The buffer ends inside the record (or its length runs past the end).
    Incomplete,
    /// The frame is invalid; `total` is its declared size when that size is plausible.
    Bad { reason: &'static str, total: Option<usize> },
}

/// Parses one record at the start of `buf`; `max_len` bounds the length field.
pub fn parse(buf: &[u8], max_len: usize) -> Parsed<'_> {
    let Some(head) = buf.get(0..8) else { return Parsed::Incomplete };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(2..=max_len).contains(&len) {
        return Parsed::Bad { reason: "length out of bounds", total: None };
    }
    let total = 8 + len;
    let Some(rest) = buf.get(8..total) else { return Parsed::Incomplete };
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if crc != crc32c(rest) {
        return Parsed::Bad { reason: "checksum mismatch", total: Some(total) };
    }
    if rest[0] != RECORD_VERSION {
        return Parsed::Bad { reason: "unknown record version", total: Some(total) };
    }
    Parsed::Ok { kind: rest[1], payload: &rest[2..], total }
}

/// A stretch of bytes a scan skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub offset: usize,
    pub len: usize,
    pub reason: &'static str,
}

/// Scans records in `buf[start..]`, calling `on_record(offset, kind, payload)` for each valid one
/// and `on_skip` for each invalid stretch followed by a valid record. Returns the offset where the
/// valid data ends: everything after it is a torn tail (no valid record follows).
///
/// A record failing its checksum is skipped by its declared length when a valid record (or the
/// end of the buffer) follows; otherwise the scan looks for the next valid record byte by byte.
pub fn scan(
    buf: &[u8],
    start: usize,
    max_len: usize,
    mut on_record: impl FnMut(usize, u8, &[u8]),
    mut on_skip: impl FnMut(Skip),
) -> usize {
    let mut pos = start;
    while pos < buf.len() {
        let reason = match parse(&buf[pos..], max_len) {
            Parsed::Ok { kind, payload, total } => {
                on_record(pos, kind, payload);
                pos += total;
                continue;
            }
            Parsed::Bad { reason, total: Some(total) } if next_is_valid(buf, pos + total, max_len) => {
                on_skip(Skip { offset: pos, len: total, reason });
                pos += total;
                continue;
            }
            Parsed::Bad { reason, .. } => reason,
            Parsed::Incomplete => "incomplete record",
        };
        match (pos + 1..buf.len()).find(|&p| matches!(parse(&buf[p..], max_len), Parsed::Ok { .. })) {
            Some(next) => {
                on_skip(Skip { offset: pos, len: next - pos, reason });
                pos = next;
            }
            None => return pos,
        }
    }
    pos
}

fn next_is_valid(buf: &[u8], at: usize, max_len: usize) -> bool {
    at == buf.len() || (at < buf.len() && matches!(parse(&buf[at..], max_len), Parsed::Ok { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<u8> {
        let mut buf = Vec::new();
        encode_message(&mut buf, kind::MESSAGE, 1, &[7, 8], b"hello");
        encode_pair(&mut buf, kind::ACK, 7, 1);
        encode_message(&mut buf, kind::MESSAGE, 2, &[7], b"world");
        buf
    }

    fn collect(buf: &[u8]) -> (Vec<(usize, u8)>, Vec<Skip>, usize) {
        let (mut recs, mut skips) = (Vec::new(), Vec::new());
        let end = scan(buf, 0, 1 << 20, |o, k, _| recs.push((o, k)), |s| skips.push(s));
        (recs, skips, end)
    }

    #[test]
    fn message_round_trip() {
        let mut buf = Vec::new();
        encode_message(&mut buf, kind::MESSAGE, 42, &[1, 2, 3], b"body");
        assert_eq!(buf.len(), message_len(3, 4));
        let Parsed::Ok { kind, payload, total } = parse(&buf, 1 << 20) else { panic!("parse") };
        assert_eq!((kind, total), (kind::MESSAGE, buf.len()));
        let m = decode_message(payload).unwrap();
        assert_eq!((m.id, m.queues.as_slice(), &payload[m.body_start..]), (42, &[1u64, 2, 3][..], &b"body"[..]));
        assert!(decode_message(&payload[..12]).is_none());
    }

    #[test]
    fn moved_round_trip() {
        let mut buf = Vec::new();
        encode_moved(&mut buf, (3, 17), 42, &[9], b"body");
        assert_eq!(buf.len(), moved_len(1, 4));
        let Parsed::Ok { kind, payload, .. } = parse(&buf, 1 << 20) else { panic!("parse") };
        assert_eq!(kind, kind::MOVED);
        let (from, m) = decode_moved(payload).unwrap();
        assert_eq!(
            (from, m.id, m.queues.as_slice(), &payload[m.body_start..]),
            ((3, 17), 42, &[9u64][..], &b"body"[..])
        );
        assert!(decode_moved(&payload[..20]).is_none());
    }

    #[test]
    fn settling_round_trip() {
        let mut buf = Vec::new();
        encode_settling(&mut buf, &[(3, 17), (4, 18)], 42, &[9], b"body");
        assert_eq!(buf.len(), settling_len(2, 1, 4));
        let Parsed::Ok { kind, payload, .. } = parse(&buf, 1 << 20) else { panic!("parse") };
        assert_eq!(kind, kind::SETTLING);
        let (settles, m) = decode_settling(payload).unwrap();
        assert_eq!(
            (settles, m.id, m.queues.as_slice(), &payload[m.body_start..m.body_end]),
            (vec![(3, 17), (4, 18)], 42, &[9u64][..], &b"body"[..])
        );
        assert!(decode_settling(&payload[..20]).is_none());
    }

    #[test]
    fn group_round_trip() {
        let mut buf = Vec::new();
        let parts: [(&[u64], &[u8]); 3] = [(&[1], b"one"), (&[1, 2], b""), (&[3], b"three")];
        encode_group(&mut buf, 40, &parts);
        assert_eq!(buf.len(), group_len(parts.iter().map(|(q, b)| (q.len(), b.len()))));
        let Parsed::Ok { kind, payload, .. } = parse(&buf, 1 << 20) else { panic!("parse") };
        assert_eq!(kind, kind::GROUP);
        let got = decode_group(payload).unwrap();
        let seen: Vec<(u64, Vec<u64>, &[u8])> =
            got.iter().map(|m| (m.id, m.queues.clone(), &payload[m.body_start..m.body_end])).collect();
        assert_eq!(seen, vec![(40, vec![1], &b"one"[..]), (41, vec![1, 2], &b""[..]), (42, vec![3], &b"three"[..])]);
        assert!(decode_group(&payload[..payload.len() - 1]).is_none(), "a cut group is refused whole");
    }

    #[test]
    fn scan_clean_torn_and_flipped() {
        let buf = three();
        let (recs, skips, end) = collect(&buf);
        assert_eq!((recs.len(), skips.len(), end), (3, 0, buf.len()));
        // Torn tail: the last record is cut.
        let (recs, skips, end) = collect(&buf[..buf.len() - 3]);
        assert_eq!((recs.len(), skips.len()), (2, 0));
        assert_eq!(end, message_len(2, 5) + PAIR_RECORD_LEN);
        // Flipped body byte in the first record: skipped by its length, the others survive.
        let mut flipped = buf.clone();
        flipped[FRAME_LEN + 30] ^= 0x40;
        let (recs, skips, end) = collect(&flipped);
        assert_eq!((recs.len(), end), (2, buf.len()));
        assert_eq!(skips, vec![Skip { offset: 0, len: message_len(2, 5), reason: "checksum mismatch" }]);
        // Flipped length byte: resync finds the next record.
        let mut flipped = buf.clone();
        flipped[3] ^= 0x10;
        let (recs, skips, _) = collect(&flipped);
        assert_eq!((recs.len(), skips.len()), (2, 1));
        // Flipped byte in the last record: skipped, not mistaken for a torn tail.
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let (recs, skips, end) = collect(&flipped);
        assert_eq!((recs.len(), skips.len(), end), (2, 1, buf.len()));
    }

    #[test]
    fn garbage_never_panics() {
        for seed in 0..200u32 {
            let buf: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(seed).wrapping_add(seed * 7) >> 1) as u8).collect();
            let _ = collect(&buf);
        }
    }
}
