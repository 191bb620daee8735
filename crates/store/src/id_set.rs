//! `IdSet`: a set of message ids kept as 64-id bitmap blocks in increasing order, so a queue's
//! unacknowledged ids cost about a bit each when they are dense (one queue taking a stream of
//! messages) instead of a tree node each. Inserts come in increasing order (ids are assigned
//! so); removals anywhere, mostly at the front.

use std::collections::VecDeque;

/// A run of consecutive ids: `first ..= first + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRun {
    pub first: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Copy)]
struct Block {
    /// The first id the block covers (a multiple of 64).
    base: u64,
    mask: u64,
}

/// Ids in 64-bit blocks. Empty blocks in the middle stay until they reach the front.
#[derive(Debug, Default, Clone)]
pub struct IdSet {
    blocks: VecDeque<Block>,
    len: u64,
}

fn split(id: u64) -> (u64, u64) {
    (id & !63, 1u64 << (id & 63))
}

impl IdSet {
    /// Adds `id`; false if it was present. Appending above every id is O(1); anything else
    /// is a binary search (and an insertion for an id in no block yet).
    pub fn insert(&mut self, id: u64) -> bool {
        let (base, bit) = split(id);
        let i = match self.blocks.back() {
            Some(b) if b.base == base => self.blocks.len() - 1,
            Some(b) if b.base > base => match self.find(base) {
                Ok(i) => i,
                Err(i) => {
                    self.blocks.insert(i, Block { base, mask: 0 });
                    i
                }
            },
            _ => {
                self.blocks.push_back(Block { base, mask: 0 });
                self.blocks.len() - 1
            }
        };
        let block = &mut self.blocks[i];
        if block.mask & bit != 0 {
            return false;
        }
        block.mask |= bit;
        self.len += 1;
        true
    }

    /// Removes `id`; false if it was absent.
    pub fn remove(&mut self, id: u64) -> bool {
        let (base, bit) = split(id);
        let Ok(i) = self.find(base) else { return false };
        let block = &mut self.blocks[i];
        if block.mask & bit == 0 {
            return false;
        }
        block.mask &= !bit;
        self.len -= 1;
        self.pop_empty_front();
        true
    }

    /// Removes every id <= `up_to`, showing each to `removed` in increasing order.
    pub fn remove_up_to(&mut self, up_to: u64, mut removed: impl FnMut(u64)) {
        while let Some(block) = self.blocks.front_mut() {
            if block.base > up_to {
                break;
            }
            let keep = if up_to - block.base >= 63 { 0 } else { !((2u64 << (up_to - block.base)) - 1) };
            let mut gone = block.mask & !keep;
            block.mask &= keep;
            let base = block.base;
            self.len -= gone.count_ones() as u64;
            while gone != 0 {
                removed(base + gone.trailing_zeros() as u64);
                gone &= gone - 1;
            }
            if self.blocks.front().is_some_and(|b| b.mask == 0) {
                self.blocks.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        let (base, bit) = split(id);
        self.find(base).is_ok_and(|i| self.blocks[i].mask & bit != 0)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids in increasing order, as runs of consecutive ids.
    pub fn runs(&self) -> Vec<IdRun> {
        let mut runs: Vec<IdRun> = Vec::new();
        for block in &self.blocks {
            let mut mask = block.mask;
            while mask != 0 {
                let start = mask.trailing_zeros() as u64;
                let ones = (mask >> start).trailing_ones() as u64;
                let first = block.base + start;
                match runs.last_mut() {
                    Some(r) if r.first + r.count == first => r.count += ones,
                    _ => runs.push(IdRun { first, count: ones }),
                }
                mask = if start + ones >= 64 { 0 } else { mask & !(((1u64 << ones) - 1) << start) };
            }
        }
        runs
    }

    fn find(&self, base: u64) -> Result<usize, usize> {
        self.blocks.binary_search_by_key(&base, |b| b.base)
    }

    fn pop_empty_front(&mut self) {
        while self.blocks.front().is_some_and(|b| b.mask == 0) {
            self.blocks.pop_front();
        }
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
        s.remove_up_to(130, |id| gone.push(id));
        assert_eq!(gone.len(), 40 + 30);
        assert_eq!(s.runs(), vec![IdRun { first: 131, count: 69 }]);
        assert_eq!(s.len(), 69);
        s.remove_up_to(u64::MAX, |_| {});
        assert!(s.is_empty() && s.runs().is_empty());
        assert!(s.insert(u64::MAX) && s.contains(u64::MAX));
    }

    proptest! {
        #[test]
        fn behaves_like_a_btreeset(ops in proptest::collection::vec((0u8..4, 0u64..400), 1..300)) {
            let (mut s, mut model) = (IdSet::default(), BTreeSet::new());
            for (op, id) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(s.insert(id), model.insert(id)),
                    2 => prop_assert_eq!(s.remove(id), model.remove(&id)),
                    _ => {
                        let mut gone = Vec::new();
                        s.remove_up_to(id, |x| gone.push(x));
                        let expected: Vec<u64> = model.range(..=id).copied().collect();
                        model.retain(|&x| x > id);
                        prop_assert_eq!(gone, expected);
                    }
                }
                prop_assert_eq!(s.len(), model.len() as u64);
            }
            let flat: Vec<u64> = s.runs().iter().flat_map(|r| r.first..r.first + r.count).collect();
            prop_assert_eq!(flat, model.into_iter().collect::<Vec<_>>());
        }
    }
}
