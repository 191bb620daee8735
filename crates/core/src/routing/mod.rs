//! The bindings of one exchange and how a message is routed through them. One routing contract
//! for every exchange type ([`ExchangeType`], one file per type: `direct.rs`, `fanout.rs`,
//! `topic.rs`, `headers.rs`), then the content filters of filtered bindings; the destination
//! type is the caller's (queues and exchanges in the broker).

pub mod direct;
pub mod fanout;
pub mod headers;
pub mod topic;

use crate::filter::Filter;
use crate::{AmqpError, ExchangeKind};
use amqp_codec::{FieldTable, ShortStr};
use direct::Direct;
use fanout::Fanout;
use headers::Headers;
use std::collections::HashMap;
use std::sync::Arc;
use topic::TopicTrie;

/// What an exchange type decides: where a binding goes in its index, and which bindings a
/// message matches by the routing key (and headers, for the types that read them).
pub trait ExchangeType<D> {
    fn insert(&mut self, destination: D, routing_key: &ShortStr, arguments: &FieldTable) -> Result<(), AmqpError>;
    fn remove(&mut self, destination: &D, routing_key: &ShortStr, arguments: &FieldTable);
    fn route(&self, routing_key: &str, headers: Option<&FieldTable>, emit: &mut impl FnMut(&D));
    /// Whether routing reads the message's headers (decoded only then).
    fn needs_headers(&self) -> bool {
        false
    }
}

/// The binding argument that holds a content filter (see `crate::filter`).
pub const FILTER_ARG: &str = "x-filter";

/// A destination reached only by the messages its binding's filter admits.
#[derive(Debug, Clone)]
pub struct Filtered<D> {
    pub destination: D,
    pub filter: Arc<Filter>,
}

/// Two filtered entries are the same binding when they lead to the same place through the
/// same expression.
impl<D: PartialEq> PartialEq for Filtered<D> {
    fn eq(&self, other: &Self) -> bool {
        self.destination == other.destination && self.filter.text() == other.filter.text()
    }
}

impl<D: Eq> Eq for Filtered<D> {}

impl<D: std::hash::Hash> std::hash::Hash for Filtered<D> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.destination.hash(state)
    }
}

/// The filter of a binding's arguments, if it has one; 406 with the error's position if the
/// expression is invalid.
pub fn binding_filter(arguments: &FieldTable) -> Result<Option<Arc<Filter>>, AmqpError> {
    let Some(value) = arguments.get(FILTER_ARG) else { return Ok(None) };
    let text = value
        .as_str()
        .ok_or_else(|| AmqpError::precondition_failed(format!("invalid arg '{FILTER_ARG}': a filter is a string")))?;
    Filter::parse(text)
        .map(|f| Some(Arc::new(f)))
        .map_err(|e| AmqpError::precondition_failed(format!("invalid arg '{FILTER_ARG}': {e}")))
}

/// One binding as declared by a client: identity is (destination, routing key, arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct Binding<D> {
    pub destination: D,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

/// The exchange types, dispatched without a virtual call on the routing path.
#[derive(Debug)]
enum Index<D> {
    Direct(Direct<D>),
    Fanout(Fanout<D>),
    Topic(TopicTrie<D>),
    Headers(Headers<D>),
}

#[derive(Debug)]
pub struct Bindings<D> {
    list: Vec<Binding<D>>,
    /// Where each destination's bindings are in `list`, so that adding, removing and looking
    /// up a binding never scans the list (an exchange may hold 100,000 bindings: scanning made
    /// declaring them quadratic).
    by_destination: HashMap<D, Vec<usize>>,
    index: Index<D>,
    /// Bindings with a content filter, in an index of the same kind: an exchange without
    /// filters routes exactly as before.
    filtered: Option<Index<Filtered<D>>>,
    kind: ExchangeKind,
}

impl<D: Clone + PartialEq> Index<D> {
    fn new(kind: ExchangeKind) -> Self {
        match kind {
            ExchangeKind::Direct => Index::Direct(Direct::default()),
            ExchangeKind::Fanout => Index::Fanout(Fanout::default()),
            ExchangeKind::Topic => Index::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Index::Headers(Headers::default()),
        }
    }
}

impl<D: Clone + PartialEq> ExchangeType<D> for Index<D> {
    fn insert(&mut self, destination: D, routing_key: &ShortStr, arguments: &FieldTable) -> Result<(), AmqpError> {
        match self {
            Index::Direct(x) => x.insert(destination, routing_key, arguments),
            Index::Fanout(x) => x.insert(destination, routing_key, arguments),
            Index::Topic(x) => ExchangeType::insert(x, destination, routing_key, arguments),
            Index::Headers(x) => x.insert(destination, routing_key, arguments),
        }
    }

    fn remove(&mut self, destination: &D, routing_key: &ShortStr, arguments: &FieldTable) {
        match self {
            Index::Direct(x) => x.remove(destination, routing_key, arguments),
            Index::Fanout(x) => x.remove(destination, routing_key, arguments),
            Index::Topic(x) => ExchangeType::remove(x, destination, routing_key, arguments),
            Index::Headers(x) => x.remove(destination, routing_key, arguments),
        }
    }

    fn route(&self, routing_key: &str, headers: Option<&FieldTable>, emit: &mut impl FnMut(&D)) {
        match self {
            Index::Direct(x) => x.route(routing_key, headers, emit),
            Index::Fanout(x) => x.route(routing_key, headers, emit),
            Index::Topic(x) => ExchangeType::route(x, routing_key, headers, emit),
            Index::Headers(x) => x.route(routing_key, headers, emit),
        }
    }

    fn needs_headers(&self) -> bool {
        matches!(self, Index::Headers(_))
    }
}

impl<D: Clone + Eq + std::hash::Hash> Bindings<D> {
    pub fn new(kind: ExchangeKind) -> Self {
        Bindings { list: Vec::new(), by_destination: HashMap::new(), index: Index::new(kind), filtered: None, kind }
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
        match binding_filter(arguments)? {
            Some(filter) => {
                let entry = Filtered { destination: destination.clone(), filter };
                self.filtered.get_or_insert_with(|| Index::new(self.kind)).insert(entry, routing_key, arguments)?
            }
            None => self.index.insert(destination.clone(), routing_key, arguments)?,
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
        match binding_filter(&b.arguments) {
            Ok(Some(filter)) => {
                if let Some(filtered) = &mut self.filtered {
                    filtered.remove(&Filtered { destination: b.destination, filter }, &b.routing_key, &b.arguments);
                }
            }
            _ => self.index.remove(&b.destination, &b.routing_key, &b.arguments),
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
        self.index.needs_headers()
    }

    /// Whether some binding has a content filter.
    pub fn has_filters(&self) -> bool {
        self.filtered.is_some()
    }

    /// Emit every matching destination; a destination may be emitted more than once. A
    /// filtered binding that matches by the exchange's own rule is emitted only if `admits`
    /// says its filter holds for the message (the caller evaluates it, parsing the message's
    /// body at most once).
    pub fn route(
        &self,
        routing_key: &str,
        headers: Option<&FieldTable>,
        admits: &mut dyn FnMut(&Filter) -> bool,
        emit: &mut impl FnMut(&D),
    ) {
        self.index.route(routing_key, headers, emit);
        if let Some(filtered) = &self.filtered {
            filtered.route(routing_key, headers, &mut |f: &Filtered<D>| {
                if admits(&f.filter) {
                    emit(&f.destination)
                }
            });
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
        b.route(key, None, &mut |_| true, &mut |d| out.push(*d));
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

    fn filtered(dest: u32, key: &str, filter: &str) -> Binding<u32> {
        let mut arguments = FieldTable::new();
        arguments.insert(FILTER_ARG, amqp_codec::FieldValue::LongStr(filter.to_owned().into_bytes().into()));
        Binding { destination: dest, routing_key: key.into(), arguments }
    }

    /// Routes with the filters judged by `admit` (here: by the filter's text, standing in for a
    /// message).
    fn routed_admitting(b: &Bindings<u32>, key: &str, admit: &str) -> Vec<u32> {
        let mut out = Vec::new();
        b.route(key, None, &mut |f| f.text() == admit, &mut |d| out.push(*d));
        out.sort();
        out
    }

    #[test]
    fn filtered_bindings_match_by_the_exchange_first_then_by_their_filter() {
        for kind in [ExchangeKind::Direct, ExchangeKind::Topic, ExchangeKind::Fanout] {
            let mut b = Bindings::new(kind);
            b.add(bind(1, "k")).unwrap();
            assert!(b.add(filtered(2, "k", "a = 1")).unwrap());
            assert!(b.add(filtered(2, "k", "a = 2")).unwrap(), "another filter is another binding");
            assert!(!b.add(filtered(2, "k", "a = 1")).unwrap());
            b.add(filtered(3, "other", "a = 1")).unwrap();
            assert!(b.has_filters());
            let expect = if kind == ExchangeKind::Fanout { vec![1, 2, 3] } else { vec![1, 2] };
            assert_eq!(routed_admitting(&b, "k", "a = 1"), expect, "{kind:?}");
            assert_eq!(routed_admitting(&b, "k", "nothing"), vec![1], "{kind:?}");
            assert!(b.remove(&filtered(2, "k", "a = 1")));
            assert_eq!(routed_admitting(&b, "k", "a = 2"), vec![1, 2], "{kind:?}: the other filter stays");
            assert_eq!(b.remove_destination(&2), 1);
            assert_eq!(routed_admitting(&b, "k", "a = 2"), vec![1]);
        }
        let mut headers = Bindings::new(ExchangeKind::Headers);
        let mut args = FieldTable::new();
        args.insert("kind", amqp_codec::FieldValue::LongStr("order".to_owned().into_bytes().into()));
        args.insert(FILTER_ARG, amqp_codec::FieldValue::LongStr("total > 5".to_owned().into_bytes().into()));
        headers.add(Binding { destination: 9, routing_key: "".into(), arguments: args }).unwrap();
        let mut order = FieldTable::new();
        order.insert("kind", amqp_codec::FieldValue::LongStr("order".to_owned().into_bytes().into()));
        let mut out = Vec::new();
        headers.route("", Some(&order), &mut |_| true, &mut |d| out.push(*d));
        assert_eq!(out, vec![9], "x-filter is not a header to match");
        let mut out = Vec::new();
        headers.route("", Some(&order), &mut |_| false, &mut |d| out.push(*d));
        assert!(out.is_empty());
    }

    #[test]
    fn a_bad_filter_is_refused_at_bind_time_with_its_position() {
        let mut b = Bindings::new(ExchangeKind::Direct);
        let e = b.add(filtered(1, "k", "total >")).unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.text.contains("x-filter") && e.text.contains("byte 7"), "{}", e.text);
        let mut arguments = FieldTable::new();
        arguments.insert(FILTER_ARG, amqp_codec::FieldValue::I32(1));
        assert_eq!(b.add(Binding { destination: 1, routing_key: "k".into(), arguments }).unwrap_err().code, 406);
        assert!(b.list().is_empty());
    }
}
