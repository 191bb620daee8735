//! A channel's unacknowledged deliveries by delivery tag. Tags grow with every delivery, so
//! the deliveries sit in a ring in tag order: recording one is a push at the back, the usual
//! acks (the oldest one, or everything up to a tag) pop from the front, and an ack out of order
//! leaves a hole that is trimmed once it reaches the front, or compacted away when holes
//! outnumber live entries. (A BTreeMap cost an allocation and a tree walk per delivery: 5% of
//! the broker's profile.)

use std::collections::VecDeque;

pub struct ByTag<T> {
    ring: VecDeque<(u64, Option<T>)>,
    live: usize,
}

impl<T> Default for ByTag<T> {
    fn default() -> Self {
        ByTag { ring: VecDeque::new(), live: 0 }
    }
}

/// Holes tolerated beyond the live entries before the ring is compacted.
const SLACK: usize = 64;

impl<T> ByTag<T> {
    /// Records `value` under `tag`, which is greater than every tag recorded before.
    pub fn insert(&mut self, tag: u64, value: T) {
        debug_assert!(self.ring.back().is_none_or(|(last, _)| *last < tag), "tags grow");
        self.ring.push_back((tag, Some(value)));
        self.live += 1;
    }

    pub fn contains(&self, tag: u64) -> bool {
        self.ring.binary_search_by_key(&tag, |(t, _)| *t).is_ok_and(|i| self.ring[i].1.is_some())
    }

    pub fn remove(&mut self, tag: u64) -> Option<T> {
        let i = self.ring.binary_search_by_key(&tag, |(t, _)| *t).ok()?;
        let value = self.ring[i].1.take()?;
        self.live -= 1;
        self.tidy();
        Some(value)
    }

    /// Takes every entry with a tag up to `upto`, in tag order.
    pub fn take_upto(&mut self, upto: u64) -> Vec<T> {
        let mut taken = Vec::new();
        while self.ring.front().is_some_and(|(t, _)| *t <= upto) {
            if let Some((_, Some(value))) = self.ring.pop_front() {
                taken.push(value);
            }
        }
        self.live -= taken.len();
        self.tidy();
        taken
    }

    /// Takes the entries `pick` chooses, with their tags, in tag order.
    pub fn take_where(&mut self, mut pick: impl FnMut(&T) -> bool) -> Vec<(u64, T)> {
        let mut taken = Vec::new();
        for (tag, slot) in self.ring.iter_mut() {
            if slot.as_ref().is_some_and(&mut pick) {
                taken.extend(slot.take().map(|value| (*tag, value)));
            }
        }
        self.live -= taken.len();
        self.tidy();
        taken
    }

    pub fn take_all(&mut self) -> Vec<T> {
        self.live = 0;
        std::mem::take(&mut self.ring).into_iter().filter_map(|(_, value)| value).collect()
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.ring.iter().filter_map(|(_, value)| value.as_ref())
    }

    pub fn len(&self) -> usize {
        self.live
    }

    /// Drops holes at the front, and all of them when there are too many.
    fn tidy(&mut self) {
        while self.ring.front().is_some_and(|(_, value)| value.is_none()) {
            self.ring.pop_front();
        }
        if self.ring.len() > 2 * self.live + SLACK {
            self.ring.retain(|(_, value)| value.is_some());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn behaves_like_an_ordered_map() {
        // Random operations against a BTreeMap model.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut set, mut model) = (ByTag::default(), BTreeMap::new());
        let mut tag = 0u64;
        for _ in 0..20_000 {
            match next() % 10 {
                0..=4 => {
                    tag += 1 + next() % 3;
                    set.insert(tag, tag * 10);
                    model.insert(tag, tag * 10);
                }
                5..=7 => {
                    let t = next() % (tag + 2);
                    assert_eq!(set.remove(t), model.remove(&t));
                }
                8 => {
                    let upto = next() % (tag + 2);
                    let keep = model.split_off(&(upto + 1));
                    let taken: Vec<u64> = std::mem::replace(&mut model, keep).into_values().collect();
                    assert_eq!(set.take_upto(upto), taken);
                }
                _ => {
                    let odd = |v: &u64| (v / 10) % 2 == 1;
                    let taken: Vec<(u64, u64)> = model.iter().filter(|(_, v)| odd(v)).map(|(k, v)| (*k, *v)).collect();
                    model.retain(|_, v| !odd(v));
                    assert_eq!(set.take_where(odd), taken);
                }
            }
            assert_eq!(set.len(), model.len());
            assert!(set.values().copied().eq(model.values().copied()));
            assert!(set.ring.len() <= 2 * set.live + SLACK + 1, "holes are bounded");
        }
        assert_eq!(set.take_all(), model.into_values().collect::<Vec<_>>());
        assert_eq!(set.len(), 0);
    }
}
