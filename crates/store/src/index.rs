//! The in-memory index from message id to its record's place on disk: a ring of 12-byte slots
//! indexed by `id - base`. Ids are assigned densely and reach the writer in order, so no map is
//! needed; slots of deleted segments are trimmed from the front.

use std::collections::VecDeque;

/// Where one message record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
}

const EMPTY: Slot = Slot { segment: u32::MAX, offset: 0, len: 0 };

/// Most slots the ring may span (12 GiB): an id further than this from the front is refused,
/// so a corrupt (yet checksummed) id cannot make recovery allocate without bound.
const MAX_SLOTS: usize = 1 << 30;

/// Bytes of memory per indexed message (before `VecDeque` growth slack).
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
const _: () = assert!(SLOT_BYTES == 12);

/// Message id -> slot.
#[derive(Debug, Default)]
pub struct Index {
    base: u64,
    slots: VecDeque<Slot>,
}

impl Index {
    /// Records `id` at `slot`. Ids below the trimmed front or already present are refused
    /// (returns false): ids only grow.
    pub fn insert(&mut self, id: u64, slot: Slot) -> bool {
        if self.slots.is_empty() && self.base < id {
            self.base = id;
        }
        let Some(pos) = id.checked_sub(self.base).and_then(|p| usize::try_from(p).ok()) else { return false };
        if pos >= MAX_SLOTS {
            return false;
        }
        if pos < self.slots.len() {
            if self.slots[pos] != EMPTY {
                return false;
            }
            self.slots[pos] = slot;
            return true;
        }
        self.slots.resize(pos, EMPTY);
        self.slots.push_back(slot);
        true
    }

    /// The slot of `id`, if indexed.
    pub fn get(&self, id: u64) -> Option<Slot> {
        let pos = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.slots.get(pos).copied().filter(|s| *s != EMPTY)
    }

    /// Drops front slots that are empty or whose segment is gone.
    pub fn trim(&mut self, segment_alive: impl Fn(u32) -> bool) {
        while let Some(front) = self.slots.front() {
            if *front != EMPTY && segment_alive(front.segment) {
                break;
            }
            self.slots.pop_front();
            self.base += 1;
        }
        if self.slots.capacity() > 1024 && self.slots.capacity() > 4 * self.slots.len() {
            self.slots.shrink_to(2 * self.slots.len());
        }
    }

    /// Number of slots held (including dead ones behind a live front).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no slot is held.
    #[allow(dead_code)]
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes allocated for slots.
    pub fn allocated_bytes(&self) -> usize {
        self.slots.capacity() * SLOT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(segment: u32) -> Slot {
        Slot { segment, offset: 32, len: 40 }
    }

    #[test]
    fn insert_get_trim() {
        let mut ix = Index::default();
        assert!(ix.insert(10, slot(1)));
        assert!(ix.insert(12, slot(2)));
        assert!(!ix.insert(12, slot(2)));
        assert_eq!(ix.get(10), Some(slot(1)));
        assert_eq!(ix.get(11), None);
        assert_eq!(ix.get(9), None);
        ix.trim(|s| s != 1);
        assert_eq!((ix.get(10), ix.get(12), ix.len()), (None, Some(slot(2)), 1));
        assert!(!ix.insert(10, slot(3)));
        ix.trim(|_| false);
        assert!(ix.is_empty());
        assert!(ix.insert(20, slot(3)));
        assert_eq!(ix.get(20), Some(slot(3)));
        assert!(!ix.insert(u64::MAX, slot(3)), "absurd gap refused");
    }
}
