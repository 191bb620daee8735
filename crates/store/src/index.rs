//! The in-memory index from message id to the place of its record on disk: per segment, the id
//! of its first message and one `u32` offset per id after it (4 bytes per message). Ids are
//! assigned densely and reach the writer in order, so each segment holds one contiguous id range
//! (gaps, from appends that failed, are empty slots) and no map is needed. A record's length is
//! read from its own header, so it is not kept here.

use std::collections::VecDeque;

/// Where one message record is written (as the writer and recovery report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
}

/// Where one message record starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub segment: u32,
    pub offset: u32,
}

const EMPTY: u32 = u32::MAX;

/// Bytes of memory per indexed message (before `Vec` growth slack).
pub const SLOT_BYTES: usize = std::mem::size_of::<u32>();

/// The ids of one segment.
#[derive(Debug)]
struct SegmentIndex {
    segment: u32,
    first_id: u64,
    offsets: Vec<u32>,
}

impl SegmentIndex {
    fn end_id(&self) -> u64 {
        self.first_id + self.offsets.len() as u64
    }
}

/// Message id -> place, segment by segment in increasing segment and id order.
#[derive(Debug)]
pub struct Index {
    segments: VecDeque<SegmentIndex>,
    /// Most slots one segment may span: a record takes at least `FRAME_LEN + 10` bytes, so a
    /// segment cannot hold more messages than its size allows. Bounds what a corrupt (yet
    /// checksummed) id can make recovery allocate.
    max_slots_per_segment: usize,
}

impl Default for Index {
    fn default() -> Self {
        Index::new(u32::MAX as usize / 20)
    }
}

impl Index {
    /// An empty index whose segments hold at most `max_slots_per_segment` ids each.
    pub fn new(max_slots_per_segment: usize) -> Index {
        Index { segments: VecDeque::new(), max_slots_per_segment }
    }

    /// Records message `id` at `slot`. Refused (false) when the id is not above every id of
    /// an earlier segment, is already present, or lies absurdly far from its segment's first id.
    pub fn insert(&mut self, id: u64, slot: Slot) -> bool {
        let fresh_segment = self.segments.back().is_none_or(|s| s.segment != slot.segment);
        if fresh_segment {
            if self.segments.back().is_some_and(|s| s.segment > slot.segment || id < s.end_id()) {
                return false;
            }
            self.segments.push_back(SegmentIndex { segment: slot.segment, first_id: id, offsets: Vec::new() });
        }
        let seg = self.segments.back_mut().expect("a segment was just ensured");
        let Some(pos) = id.checked_sub(seg.first_id).and_then(|p| usize::try_from(p).ok()) else { return false };
        if pos >= self.max_slots_per_segment {
            if seg.offsets.is_empty() {
                self.segments.pop_back();
            }
            return false;
        }
        if pos < seg.offsets.len() {
            if seg.offsets[pos] != EMPTY {
                return false;
            }
            seg.offsets[pos] = slot.offset;
            return true;
        }
        seg.offsets.resize(pos, EMPTY);
        seg.offsets.push(slot.offset);
        true
    }

    /// The place of `id`, if indexed.
    pub fn get(&self, id: u64) -> Option<Place> {
        let i = self.segments.partition_point(|s| s.first_id <= id).checked_sub(1)?;
        let seg = &self.segments[i];
        let offset = *seg.offsets.get(usize::try_from(id - seg.first_id).ok()?)?;
        (offset != EMPTY).then_some(Place { segment: seg.segment, offset })
    }

    /// Drops the ids of every segment that is gone.
    pub fn trim(&mut self, segment_alive: impl Fn(u32) -> bool) {
        self.segments.retain(|s| segment_alive(s.segment));
    }

    /// Number of slots held (including empty ones).
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.offsets.len()).sum()
    }

    /// Whether no slot is held.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes allocated for slots.
    pub fn allocated_bytes(&self) -> usize {
        self.segments.iter().map(|s| s.offsets.capacity() * SLOT_BYTES).sum()
    }

    /// Gives back growth slack of the segments that will not grow any more (all but the last).
    pub fn shrink_closed(&mut self) {
        let n = self.segments.len();
        for s in self.segments.iter_mut().take(n.saturating_sub(1)) {
            s.offsets.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(segment: u32, offset: u32) -> Slot {
        Slot { segment, offset, len: 40 }
    }

    #[test]
    fn insert_get_trim() {
        let mut ix = Index::new(1000);
        assert!(ix.insert(10, slot(1, 40)));
        assert!(ix.insert(12, slot(1, 90)));
        assert!(!ix.insert(12, slot(1, 90)), "duplicate");
        assert_eq!(ix.get(10), Some(Place { segment: 1, offset: 40 }));
        assert_eq!(ix.get(11), None, "gap");
        assert_eq!(ix.get(9), None);
        assert!(ix.insert(13, slot(2, 40)));
        assert!(!ix.insert(12, slot(3, 40)), "below an earlier segment's ids");
        assert!(!ix.insert(14, slot(1, 40)), "an older segment after a newer one");
        assert_eq!(ix.get(13), Some(Place { segment: 2, offset: 40 }));
        ix.trim(|s| s != 1);
        assert_eq!((ix.get(10), ix.get(13), ix.len()), (None, Some(Place { segment: 2, offset: 40 }), 1));
        ix.trim(|_| false);
        assert!(ix.is_empty());
        assert!(ix.insert(20, slot(3, 40)));
        assert_eq!(ix.get(20), Some(Place { segment: 3, offset: 40 }));
        assert!(!ix.insert(20 + 1000, slot(3, 40)), "absurd gap refused");
    }
}
