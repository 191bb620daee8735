//! Aggregation (the Aggregator pattern): messages that share a correlation key are gathered
//! into a group until it is complete (a count of parts, or as many as their `x-split-count`
//! says, or a predicate the caller checks), then taken out whole; a group that is not complete
//! by its deadline (a time since its first part) is taken out as expired. Bounded: at most
//! `max_groups` open and `max_parts` in one. Generic over the part, so the rules are tested
//! without a broker.

use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

/// When a group is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// It has this many distinct parts.
    Count(usize),
    /// It has as many distinct parts as its parts' `x-split-count` says.
    SplitCount,
    /// A predicate over the parts says so: the caller checks it after each part
    /// ([`Added::Open`]) and takes the group with [`Groups::take`].
    Predicate,
}

/// The bounds of a set of groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_groups: usize,
    pub max_parts: usize,
    /// A group's deadline, from its first part, ms.
    pub timeout_ms: u64,
}

/// One group being gathered.
#[derive(Debug)]
pub struct Group<P> {
    pub key: String,
    /// The distinct parts, with their index (`x-split-index`) if they have one, in arrival
    /// order.
    parts: Vec<(Option<u64>, P)>,
    /// Parts whose index another part had already (a republished part): settled with the
    /// group, not combined.
    pub duplicates: Vec<P>,
    /// The count the parts announce (`x-split-count`), once one did.
    pub expected: Option<u64>,
    pub first_ms: u64,
    pub deadline_ms: u64,
}

impl<P> Group<P> {
    /// Distinct parts so far.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The parts in their order: by index, those without one after, in arrival order.
    pub fn parts(&self) -> Vec<&P> {
        let mut order: Vec<usize> = (0..self.parts.len()).collect();
        order.sort_by_key(|&i| (self.parts[i].0.is_none(), self.parts[i].0, i));
        order.into_iter().map(|i| &self.parts[i].1).collect()
    }

    /// Every part, duplicates included (all of them are settled with the group).
    pub fn into_all(self) -> Vec<P> {
        self.parts.into_iter().map(|(_, p)| p).chain(self.duplicates).collect()
    }

    fn complete(&self, rule: &Completion) -> bool {
        match rule {
            Completion::Count(n) => self.parts.len() >= *n,
            Completion::SplitCount => self.expected.is_some_and(|n| self.parts.len() as u64 >= n),
            Completion::Predicate => false,
        }
    }
}

/// What adding a part did.
#[derive(Debug)]
pub enum Added<P> {
    /// The group waits for more (with [`Completion::Predicate`], check it now).
    Open,
    /// The group is complete and was taken out.
    Complete(Group<P>),
    /// The part would make the group larger than `max_parts`: the group (with the part) was
    /// taken out, failed.
    Overflow(Group<P>),
    /// `max_groups` groups are open and the part would open another: not taken.
    NoRoom(P),
    /// The part's group was completed already (a part published again): not combined again.
    /// Only with [`Completion::SplitCount`], whose keys (split ids) name one group each; with
    /// the other rules a key that comes back opens its next group.
    Late(P),
}

/// Keys of completed groups remembered, so a part that comes after its group is done is not
/// aggregated a second time.
pub const REMEMBERED_COMPLETED: usize = 10_000;

/// The open groups of one aggregator.
#[derive(Debug)]
pub struct Groups<P> {
    open: FxHashMap<String, Group<P>>,
    deadlines: BTreeSet<(u64, String)>,
    limits: Limits,
    rule: Completion,
    parts: usize,
    /// Keys of the last completed groups, oldest first, and as a set.
    completed: std::collections::VecDeque<String>,
    completed_set: rustc_hash::FxHashSet<String>,
}

impl<P> Groups<P> {
    pub fn new(rule: Completion, limits: Limits) -> Groups<P> {
        Groups {
            open: FxHashMap::default(),
            deadlines: BTreeSet::new(),
            limits,
            rule,
            parts: 0,
            completed: Default::default(),
            completed_set: Default::default(),
        }
    }

    /// Groups open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Parts held in open groups (duplicates included).
    pub fn parts_held(&self) -> usize {
        self.parts
    }

    pub fn get(&self, key: &str) -> Option<&Group<P>> {
        self.open.get(key)
    }

    /// Adds `part` (with its `x-split-index` and `x-split-count`, if any) to the group `key`
    /// at `now_ms`.
    pub fn add(&mut self, key: &str, index: Option<u64>, count: Option<u64>, part: P, now_ms: u64) -> Added<P> {
        if !self.open.contains_key(key) {
            if self.completed_set.contains(key) {
                return Added::Late(part);
            }
            if self.open.len() >= self.limits.max_groups {
                return Added::NoRoom(part);
            }
            let deadline_ms = now_ms.saturating_add(self.limits.timeout_ms);
            let group = Group {
                key: key.to_owned(),
                parts: Vec::new(),
                duplicates: Vec::new(),
                expected: None,
                first_ms: now_ms,
                deadline_ms,
            };
            self.deadlines.insert((deadline_ms, key.to_owned()));
            self.open.insert(key.to_owned(), group);
        }
        let group = self.open.get_mut(key).expect("opened above");
        self.parts += 1;
        if group.expected.is_none() {
            group.expected = count;
        }
        if index.is_some() && group.parts.iter().any(|(i, _)| *i == index) {
            group.duplicates.push(part);
        } else {
            group.parts.push((index, part));
        }
        let overflow = group.parts.len() + group.duplicates.len() > self.limits.max_parts;
        if overflow {
            return Added::Overflow(self.take(key).expect("open"));
        }
        if group.complete(&self.rule) {
            return Added::Complete(self.complete(key).expect("open"));
        }
        Added::Open
    }

    /// Takes group `key` out as complete: a part of it that comes later is [`Added::Late`].
    pub fn complete(&mut self, key: &str) -> Option<Group<P>> {
        let group = self.take(key)?;
        if self.rule != Completion::SplitCount {
            return Some(group);
        }
        if self.completed.len() >= REMEMBERED_COMPLETED {
            if let Some(oldest) = self.completed.pop_front() {
                self.completed_set.remove(&oldest);
            }
        }
        self.completed.push_back(group.key.clone());
        self.completed_set.insert(group.key.clone());
        Some(group)
    }

    /// Takes group `key` out, given up (its parts may come again).
    pub fn take(&mut self, key: &str) -> Option<Group<P>> {
        let group = self.open.remove(key)?;
        self.deadlines.remove(&(group.deadline_ms, group.key.clone()));
        self.parts -= group.parts.len() + group.duplicates.len();
        Some(group)
    }

    /// Takes out every group whose deadline is past at `now_ms`, earliest first.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Group<P>> {
        let mut out = Vec::new();
        while let Some((deadline, key)) = self.deadlines.first().cloned() {
            if deadline > now_ms {
                break;
            }
            out.extend(self.take(&key));
        }
        out
    }

    /// The earliest deadline of an open group.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(d, _)| *d)
    }

    /// Takes out every group (the aggregator stops).
    pub fn drain(&mut self) -> Vec<Group<P>> {
        let keys: Vec<String> = self.open.keys().cloned().collect();
        keys.iter().filter_map(|k| self.take(k)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: Limits = Limits { max_groups: 100, max_parts: 1000, timeout_ms: 1000 };

    #[test]
    fn a_split_comes_back_together_in_index_order_once() {
        let mut groups = Groups::new(Completion::SplitCount, LIMITS);
        assert!(matches!(groups.add("o-1", Some(2), Some(3), "c", 0), Added::Open));
        assert!(matches!(groups.add("o-2", Some(0), Some(1), "x", 0), Added::Complete(_)));
        assert!(matches!(groups.add("o-2", Some(0), Some(1), "x again", 0), Added::Late("x again")));
        let mut batches = Groups::new(Completion::Count(1), LIMITS);
        assert!(matches!(batches.add("k", None, None, 1, 0), Added::Complete(_)));
        assert!(
            matches!(batches.add("k", None, None, 2, 0), Added::Complete(_)),
            "a key comes back for its next group"
        );
        assert!(matches!(groups.add("o-1", Some(0), Some(3), "a", 1), Added::Open));
        assert!(matches!(groups.add("o-1", Some(2), Some(3), "c again", 1), Added::Open), "a duplicate");
        let Added::Complete(group) = groups.add("o-1", Some(1), Some(3), "b", 2) else { panic!("complete") };
        assert_eq!(group.parts(), vec![&"a", &"b", &"c"]);
        assert_eq!(group.duplicates, vec!["c again"]);
        assert_eq!((groups.len(), groups.parts_held(), groups.next_deadline()), (0, 0, None));
    }

    #[test]
    fn bounds_and_deadlines() {
        let limits = Limits { max_groups: 2, max_parts: 2, timeout_ms: 100 };
        let mut groups = Groups::new(Completion::Count(5), limits);
        assert!(matches!(groups.add("a", None, None, 1, 0), Added::Open));
        assert!(matches!(groups.add("b", None, None, 2, 50), Added::Open));
        assert!(matches!(groups.add("c", None, None, 3, 60), Added::NoRoom(3)));
        assert!(matches!(groups.add("a", None, None, 4, 70), Added::Open));
        let Added::Overflow(a) = groups.add("a", None, None, 5, 80) else { panic!("overflow") };
        assert_eq!(a.into_all(), vec![1, 4, 5]);
        assert_eq!(groups.next_deadline(), Some(150));
        assert!(groups.expire(149).is_empty());
        let expired = groups.expire(150);
        assert_eq!((expired.len(), expired[0].key.as_str(), groups.len()), (1, "b", 0));
    }

    proptest! {
        /// Split messages arriving interleaved, in any order, some parts twice: each group
        /// completes exactly once, after its last distinct part, with its parts in order, and
        /// every part fed is handed back exactly once.
        #[test]
        fn interleaved_splits_each_complete_once_in_order(
            sizes in prop::collection::vec(1usize..8, 1..12),
            twice in prop::collection::vec(any::<bool>(), 100),
            seed in any::<u64>(),
        ) {
            let mut arrivals: Vec<(usize, usize)> = Vec::new();
            for (g, &n) in sizes.iter().enumerate() {
                for i in 0..n {
                    arrivals.push((g, i));
                    if twice[(g * 8 + i) % twice.len()] {
                        arrivals.push((g, i));
                    }
                }
            }
            // A deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..arrivals.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                arrivals.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut groups = Groups::new(Completion::SplitCount, LIMITS);
            let mut completed = vec![0usize; sizes.len()];
            let mut handed_back = 0;
            let mut seen = vec![std::collections::HashSet::new(); sizes.len()];
            for (g, i) in arrivals.iter().copied() {
                let key = format!("g{g}");
                let fresh = seen[g].insert(i);
                match groups.add(&key, Some(i as u64), Some(sizes[g] as u64), (g, i), 0) {
                    Added::Late(_) => {
                        prop_assert!(!fresh && completed[g] == 1, "late but not a duplicate of a completed group");
                        handed_back += 1;
                    }
                    Added::Complete(group) => {
                        prop_assert!(fresh, "completed by a duplicate");
                        prop_assert_eq!(seen[g].len(), sizes[g], "completed early");
                        completed[g] += 1;
                        let order: Vec<usize> = group.parts().iter().map(|(_, i)| *i).collect();
                        prop_assert_eq!(order, (0..sizes[g]).collect::<Vec<_>>());
                        handed_back += group.into_all().len();
                    }
                    Added::Open => {}
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert!(groups.expire(u64::MAX).is_empty(), "a group left open");
            prop_assert!(completed.iter().all(|&c| c == 1), "{:?}", completed);
            prop_assert_eq!(handed_back, arrivals.len());
            prop_assert_eq!(groups.parts_held(), 0);
        }
    }
}
