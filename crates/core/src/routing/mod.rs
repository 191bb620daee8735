//! The bindings of one exchange and how a message is routed through them. One routing contract for
//! every exchange type; the destination type is the caller's (queues and exchanges in the broker).

pub mod headers;
pub mod topic;

use crate::{AmqpError, ExchangeKind};
use amqp_codec::{FieldTable, ShortStr};
use headers::MatchMode;
use std::collections::HashMap;
use topic::TopicTrie;

/// One binding as declared by a client: identity is (destination, routing key, arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding<D> {
    pub destination: D,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

#[derive(Debug)]
enum Index<D> {
    Direct(HashMap<ShortStr, Vec<D>>),
    Fanout(Vec<D>),
    Topic(TopicTrie<D>),
    Headers(Vec<(MatchMode, FieldTable, D)>),
}

#[derive(Debug)]
pub struct Bindings<D> {
    list: Vec<Binding<D>>,
    /// Where each destination's bindings are in `list`, so that adding, removing and looking
    /// up a binding never scans the list (an exchange may hold 100,000 bindings: scanning made
    /// declaring them quadratic).
    by_destination: HashMap<D, Vec<usize>>,
    index: Index<D>,
}

impl<D: Clone + Eq + std::hash::Hash> Bindings<D> {
    pub fn new(kind: ExchangeKind) -> Self {
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(HashMap::new()),
            ExchangeKind::Fanout => Index::Fanout(Vec::new()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Index::Headers(Vec::new()),
        };
        Bindings { list: Vec::new(), by_destination: HashMap::new(), index }
    }

    pub fn list(&self) -> &[Binding<D>] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Where `binding` is in the list.
    fn position(&self, binding: &Binding<D>) -> Option<usize> {
        self.by_destination.get(&binding.destination)?.iter().copied().find(|&i| self.list[i] == *binding)
    }

    pub fn contains(&self, binding: &Binding<D>) -> bool {
        self.position(binding).is_some()
    }

    /// Add a binding; binding twice is a no-op (returns false), as in AMQP.
    pub fn add(&mut self, binding: Binding<D>) -> Result<bool, AmqpError> {
        if self.position(&binding).is_some() {
            return Ok(false);
        }
        let Binding { destination, routing_key, arguments } = &binding;
        match &mut self.index {
            Index::Direct(map) => map.entry(routing_key.clone()).or_default().push(destination.clone()),
            Index::Fanout(all) => all.push(destination.clone()),
            Index::Topic(trie) => trie.insert(routing_key, destination.clone()),
            Index::Headers(all) => {
                let mode = MatchMode::from_binding_args(arguments)?;
                all.push((mode, arguments.clone(), destination.clone()));
            }
        }
        self.by_destination.entry(binding.destination.clone()).or_default().push(self.list.len());
        self.list.push(binding);
        Ok(true)
    }

    /// Remove one binding; returns false if it did not exist.
    pub fn remove(&mut self, binding: &Binding<D>) -> bool {
        let Some(pos) = self.position(binding) else {
            return false;
        };
        let last = self.list.len() - 1;
        let b = self.list.swap_remove(pos);
        if let Some(positions) = self.by_destination.get_mut(&b.destination) {
            positions.retain(|&i| i != pos);
            if positions.is_empty() {
                self.by_destination.remove(&b.destination);
            }
        }
        if pos != last {
            // The last binding moved into the gap.
            let moved = &self.list[pos].destination;
            if let Some(i) = self.by_destination.get_mut(moved).and_then(|ps| ps.iter_mut().find(|i| **i == last)) {
                *i = pos;
            }
        }
        match &mut self.index {
            Index::Direct(map) => {
                if let Some(dests) = map.get_mut(&b.routing_key) {
                    if let Some(i) = dests.iter().position(|d| *d == b.destination) {
                        dests.swap_remove(i);
                    }
                    if dests.is_empty() {
                        map.remove(&b.routing_key);
                    }
                }
            }
            Index::Fanout(all) => {
                if let Some(i) = all.iter().position(|d| *d == b.destination) {
                    all.swap_remove(i);
                }
            }
            Index::Topic(trie) => {
                trie.remove(&b.routing_key, &b.destination);
            }
            Index::Headers(all) => {
                if let Some(i) = all.iter().position(|(_, a, d)| *d == b.destination && *a == b.arguments) {
                    all.swap_remove(i);
                }
            }
        }
        true
    }

    /// Remove every binding to `destination` (its queue or exchange was deleted).
    pub fn remove_destination(&mut self, destination: &D) -> usize {
        let positions = self.by_destination.get(destination).cloned().unwrap_or_default();
        let doomed: Vec<Binding<D>> = positions.iter().map(|&i| self.list[i].clone()).collect();
        doomed.iter().filter(|b| self.remove(b)).count()
    }

    pub fn has_destination(&self, destination: &D) -> bool {
        self.by_destination.contains_key(destination)
    }

    /// Whether routing needs the message's headers (decoded lazily by the caller only then).
    pub fn needs_headers(&self) -> bool {
        matches!(self.index, Index::Headers(_))
    }

    /// Emit every matching destination; a destination may be emitted more than once.
    pub fn route(&self, routing_key: &str, headers: Option<&FieldTable>, emit: &mut impl FnMut(&D)) {
        match &self.index {
            Index::Direct(map) => {
                if let Some(dests) = map.get(routing_key) {
                    dests.iter().for_each(emit);
                }
            }
            Index::Fanout(all) => all.iter().for_each(emit),
            Index::Topic(trie) => trie.route(routing_key, emit),
            Index::Headers(all) => {
                for (mode, args, dest) in all {
                    if headers::matches(*mode, args, headers) {
                        emit(dest);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(dest: u32, key: &str) -> Binding<u32> {
        Binding { destination: dest, routing_key: key.into(), arguments: FieldTable::new() }
    }

    fn routed(b: &Bindings<u32>, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        b.route(key, None, &mut |d| out.push(*d));
        out.sort();
        out
    }

    #[test]
    fn removals_keep_every_other_binding_findable() {
        let mut b = Bindings::new(ExchangeKind::Topic);
        for d in 0..50u32 {
            for k in ["a.*", "b.#", "c"] {
                assert!(b.add(bind(d, k)).unwrap());
            }
        }
        for d in (0..50u32).step_by(3) {
            assert!(b.remove(&bind(d, "b.#")));
        }
        assert_eq!(b.remove_destination(&7), 3);
        for d in 0..50u32 {
            let kept = d != 7;
            assert_eq!(b.has_destination(&d), kept, "{d}");
            assert_eq!(!b.add(bind(d, "a.*")).unwrap(), kept, "a.* of {d} is known exactly when kept");
            assert_eq!(!b.add(bind(d, "b.#")).unwrap(), kept && d % 3 != 0, "b.# of {d}");
        }
        // 150, less 17 `b.#` and 7's three, plus the 19 added back by the loop.
        assert_eq!(b.list().len(), 150 - 17 - 3 + 19);
    }

    #[test]
    fn direct_routes_by_exact_key() {
        let mut b = Bindings::new(ExchangeKind::Direct);
        assert!(b.add(bind(1, "k")).unwrap());
        assert!(!b.add(bind(1, "k")).unwrap(), "duplicate binding is a no-op");
        b.add(bind(2, "k")).unwrap();
        b.add(bind(3, "other")).unwrap();
        assert_eq!(routed(&b, "k"), vec![1, 2]);
        assert!(b.remove(&bind(1, "k")));
        assert!(!b.remove(&bind(1, "k")));
        assert_eq!(routed(&b, "k"), vec![2]);
    }

    #[test]
    fn fanout_ignores_key_and_remove_destination_clears_all() {
        let mut b = Bindings::new(ExchangeKind::Fanout);
        b.add(bind(1, "a")).unwrap();
        b.add(bind(1, "b")).unwrap();
        b.add(bind(2, "")).unwrap();
        assert_eq!(routed(&b, "zzz"), vec![1, 1, 2]);
        assert_eq!(b.remove_destination(&1), 2);
        assert_eq!(routed(&b, "zzz"), vec![2]);
        assert!(!b.has_destination(&1));
    }

    #[test]
    fn topic_through_the_trie() {
        let mut b = Bindings::new(ExchangeKind::Topic);
        b.add(bind(1, "stock.*.nyse")).unwrap();
        b.add(bind(2, "stock.#")).unwrap();
        assert_eq!(routed(&b, "stock.ibm.nyse"), vec![1, 2]);
        assert_eq!(routed(&b, "stock"), vec![2]);
        b.remove_destination(&2);
        assert_eq!(routed(&b, "stock"), Vec::<u32>::new());
    }
}
