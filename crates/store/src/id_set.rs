//! `IdSet`: a set of message ids kept as chunks of 64-id blocks in increasing order: a bitmap
//! block where ids are sparse, and one chunk for any run of full blocks. A queue's unacked ids
//! thus cost a few bits each when acks come in any order, and nothing per id when they are
//! consecutive (one queue taking a stream of messages: 100 million queued ids are one chunk).
//! Inserts come in increasing order (ids are assigned so); removals anywhere, mostly at the
//! front.

use std::collections::VecDeque;

/// A run of consecutive ids: `first ..= first + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRun {
    pub first: u64,
    pub count: u64,
}

/// `blocks` consecutive 64-id blocks from `base` (a multiple of 64). A chunk of one block is a
/// bitmap (`mask`); a chunk of more is full (`mask` all ones): splitting it is how an id leaves
/// a run.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    base: u64,
    blocks: u64,
    mask: u64,
}

const FULL: u64 = u64::MAX;

impl Chunk {
    /// One past the last id covered (saturating: the last block of the id space).
    fn end(&self) -> u64 {
        self.base.saturating_add(self.blocks.saturating_mul(64))
    }

    fn is_full(&self) -> bool {
        self.mask == FULL
    }

    fn full(base: u64, blocks: u64) -> Chunk {
        Chunk { base, blocks, mask: FULL }
    }
}

/// Ids in chunks, in increasing order. Empty bitmap blocks in the middle stay until they reach
/// the front.
#[derive(Debug, Default, Clone)]
pub struct IdSet {
    chunks: VecDeque<Chunk>,
    len: u64,
}

fn split(id: u64) -> (u64, u64) {
    (id & !63, 1u64 << (id & 63))
}

impl IdSet {
    /// Adds `id`; false if it was present. Appending above every id is O(1); anything else
    /// is a binary search (and an insertion for an id in no chunk yet).
    pub fn insert(&mut self, id: u64) -> bool {
        let (base, bit) = split(id);
        let i = match self.chunks.back() {
            Some(c) if c.base <= base && base < c.end() => self.chunks.len() - 1,
            Some(c) if c.base > base => match self.find(base) {
                Ok(i) => i,
                Err(i) => {
                    self.chunks.insert(i, Chunk { base, blocks: 1, mask: 0 });
                    i
                }
            },
            _ => {
                self.chunks.push_back(Chunk { base, blocks: 1, mask: 0 });
                self.chunks.len() - 1
            }
        };
        let chunk = &mut self.chunks[i];
        if chunk.mask & bit != 0 {
            return false;
        }
        chunk.mask |= bit;
        self.len += 1;
        if chunk.is_full() {
            self.merge_around(i);
        }
        true
    }

    /// Joins full chunk `i` with full neighbours that touch it.
    fn merge_around(&mut self, i: usize) {
        let mut i = i;
        if i > 0 {
            let (prev, cur) = (self.chunks[i - 1], self.chunks[i]);
            if prev.is_full() && prev.end() == cur.base {
                self.chunks[i - 1].blocks += cur.blocks;
                self.chunks.remove(i);
                i -= 1;
            }
        }
        if let Some(&next) = self.chunks.get(i + 1) {
            let cur = self.chunks[i];
            if next.is_full() && cur.end() == next.base {
                self.chunks[i].blocks += next.blocks;
                self.chunks.remove(i + 1);
            }
        }
    }

    /// Removes `id`; false if it was absent.
    pub fn remove(&mut self, id: u64) -> bool {
        let (base, bit) = split(id);
        let Ok(i) = self.find(base) else { return false };
        if self.chunks[i].mask & bit == 0 {
            return false;
        }
        let i = self.isolate(i, base);
        self.chunks[i].mask &= !bit;
        self.len -= 1;
        self.pop_empty_front();
        true
    }

    /// Splits full chunk `i` so that the block at `base` is a chunk of its own; returns its
    /// index.
    fn isolate(&mut self, i: usize, base: u64) -> usize {
        let c = self.chunks[i];
        if c.blocks == 1 {
            return i;
        }
        let before = (base - c.base) / 64;
        let after = c.blocks - before - 1;
        let mut at = i;
        self.chunks[i] = Chunk::full(base, 1);
        if before > 0 {
            self.chunks.insert(i, Chunk::full(c.base, before));
            at += 1;
        }
        if after > 0 {
            self.chunks.insert(at + 1, Chunk::full(base + 64, after));
        }
        at
    }

    /// Removes every id <= `up_to`, showing them to `removed` as runs in increasing order.
    pub fn remove_up_to(&mut self, up_to: u64, mut removed: impl FnMut(IdRun)) {
        let mut runs: Vec<IdRun> = Vec::new();
        self.take_up_to(up_to, &mut |run| push_run(&mut runs, run));
        runs.into_iter().for_each(&mut removed);
    }

    fn take_up_to(&mut self, up_to: u64, removed: &mut impl FnMut(IdRun)) {
        while let Some(&chunk) = self.chunks.front() {
            if chunk.base > up_to {
                break;
            }
            if chunk.blocks > 1 {
                // A full run: all of it, or up to the block holding `up_to`.
                let whole = chunk.end() - 1 <= up_to;
                let count = if whole { chunk.end() - chunk.base } else { (up_to & !63) - chunk.base };
                if count > 0 {
                    removed(IdRun { first: chunk.base, count });
                    self.len -= count;
                }
                if whole {
                    self.chunks.pop_front();
                    continue;
                }
                let left = count / 64;
                if left > 0 {
                    self.chunks[0] = Chunk::full(chunk.base + count, chunk.blocks - left);
                }
                self.isolate(0, up_to & !63);
                continue;
            }
            let keep = if up_to - chunk.base >= 63 { 0 } else { !((2u64 << (up_to - chunk.base)) - 1) };
            let gone = chunk.mask & !keep;
            self.chunks[0].mask &= keep;
            self.len -= gone.count_ones() as u64;
            for_each_run(chunk.base, gone, removed);
            if self.chunks[0].mask == 0 {
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        let (base, bit) = split(id);
        self.find(base).is_ok_and(|i| self.chunks[i].mask & bit != 0)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Chunks held (for measuring memory).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The ids in increasing order, as runs of consecutive ids.
    pub fn runs(&self) -> Vec<IdRun> {
        let mut runs: Vec<IdRun> = Vec::new();
        let mut push = |run| push_run(&mut runs, run);
        for chunk in &self.chunks {
            if chunk.blocks > 1 {
                push(IdRun { first: chunk.base, count: chunk.end() - chunk.base });
            } else {
                for_each_run(chunk.base, chunk.mask, &mut push);
            }
        }
        runs
    }

    /// The chunk holding the block at `base` (Ok), or where a chunk for it would go (Err).
    fn find(&self, base: u64) -> Result<usize, usize> {
        let i = self.chunks.partition_point(|c| c.base <= base);
        match i.checked_sub(1) {
            Some(j) if base < self.chunks[j].end() => Ok(j),
            _ => Err(i),
        }
    }

    fn pop_empty_front(&mut self) {
        while self.chunks.front().is_some_and(|c| c.mask == 0) {
            self.chunks.pop_front();
        }
    }
}

/// Appends `run` to `runs`, joining it to the last one when they touch.
fn push_run(runs: &mut Vec<IdRun>, run: IdRun) {
    match runs.last_mut() {
        Some(r) if r.first + r.count == run.first => r.count += run.count,
        _ => runs.push(run),
    }
}

/// Shows the runs of set bits of a block's `mask` to `f`.
fn for_each_run(base: u64, mut mask: u64, f: &mut impl FnMut(IdRun)) {
    while mask != 0 {
        let start = mask.trailing_zeros() as u64;
        let ones = (mask >> start).trailing_ones() as u64;
        f(IdRun { first: base + start, count: ones });
        mask = if start + ones >= 64 { 0 } else { mask & !(((1u64 << ones) - 1) << start) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn runs_cross_block_boundaries() {
        let mut s = IdSet::default();
        for id in 60..200 {
            assert!(s.insert(id));
        }
        assert!(!s.insert(100));
        assert!(s.remove(100));
        assert!(!s.remove(100));
        assert_eq!(s.runs(), vec![IdRun { first: 60, count: 40 }, IdRun { first: 101, count: 99 }]);
        let mut gone = Vec::new();
        s.remove_up_to(130, |run| gone.push(run));
        assert_eq!(gone, vec![IdRun { first: 60, count: 40 }, IdRun { first: 101, count: 30 }]);
        assert_eq!(s.runs(), vec![IdRun { first: 131, count: 69 }]);
        assert_eq!(s.len(), 69);
        s.remove_up_to(u64::MAX, |_| {});
        assert!(s.is_empty() && s.runs().is_empty());
        assert!(s.insert(u64::MAX) && s.contains(u64::MAX));
    }

    #[test]
    fn a_stream_of_ids_is_one_chunk_until_one_leaves_the_middle() {
        let mut s = IdSet::default();
        for id in 1..=1_000_000u64 {
            s.insert(id);
        }
        assert_eq!((s.len(), s.chunk_count()), (1_000_000, 3), "the partial first and last blocks, one run between");
        assert!(s.remove(500_000) && !s.contains(500_000) && s.contains(500_001));
        assert_eq!(s.chunk_count(), 5, "the run split around the block that lost an id");
        assert!(s.insert(500_000));
        assert_eq!(s.chunk_count(), 3, "refilled, the block joins its neighbours again");
        let mut gone = Vec::new();
        s.remove_up_to(600_000, |run| gone.push(run));
        assert_eq!(gone.iter().map(|r| r.count).sum::<u64>(), 600_000);
        assert_eq!(s.runs(), vec![IdRun { first: 600_001, count: 400_000 }]);
    }

    fn dense_then(ops: Vec<(u8, u64)>, dense: u64) -> Result<(), TestCaseError> {
        let (mut s, mut model) = (IdSet::default(), BTreeSet::new());
        for id in 0..dense {
            s.insert(id);
            model.insert(id);
        }
        for (op, id) in ops {
            match op {
                0 | 1 => prop_assert_eq!(s.insert(id), model.insert(id)),
                2 => prop_assert_eq!(s.remove(id), model.remove(&id)),
                _ => {
                    let mut gone = Vec::new();
                    s.remove_up_to(id, |r| gone.extend(r.first..r.first + r.count));
                    let expected: Vec<u64> = model.range(..=id).copied().collect();
                    model.retain(|&x| x > id);
                    prop_assert_eq!(gone, expected);
                }
            }
            prop_assert_eq!(s.len(), model.len() as u64);
        }
        let flat: Vec<u64> = s.runs().iter().flat_map(|r| r.first..r.first + r.count).collect();
        prop_assert_eq!(flat, model.into_iter().collect::<Vec<_>>());
        Ok(())
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec((0u8..4, 0u64..400), 1..300)) {
            dense_then(ops, 0)?;
        }

        #[test]
        fn behaves_like_a_btreeset_over_full_runs(ops in proptest::collection::vec((0u8..4, 0u64..800), 1..300)) {
            dense_then(ops, 700)?;
        }
    }
}
