//! Topic routing on a trie of dot-separated words, where `*` matches exactly one word and `#`
//! matches zero or more.

use std::collections::HashMap;

#[derive(Debug)]
pub struct TopicTrie<D> {
    root: Node<D>,
}

#[derive(Debug)]
struct Node<D> {
    words: HashMap<Box<str>, Node<D>>,
    star: Option<Box<Node<D>>>,
    hash: Option<Box<Node<D>>>,
    /// Destinations bound with a pattern that ends at this node. May repeat a destination when it
    /// is bound with the same pattern but different arguments; callers deduplicate.
    destinations: Vec<D>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Node { words: HashMap::new(), star: None, hash: None, destinations: Vec::new() }
    }
}

impl<D> Node<D> {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.star.is_none() && self.hash.is_none() && self.destinations.is_empty()
    }
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        TopicTrie { root: Node::default() }
    }
}

/// RabbitMQ splits an empty key into zero words, so "" matches only "" and "#".
fn words(key: &str) -> Vec<&str> {
    if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    }
}

/// The topic exchange type: the trie of binding patterns.
impl<D: PartialEq + Clone> super::ExchangeType<D> for TopicTrie<D> {
    fn insert(
        &mut self,
        destination: D,
        routing_key: &amqp_codec::ShortStr,
        _: &amqp_codec::FieldTable,
    ) -> Result<(), crate::AmqpError> {
        TopicTrie::insert(self, routing_key, destination);
        Ok(())
    }

    fn remove(&mut self, destination: &D, routing_key: &amqp_codec::ShortStr, _: &amqp_codec::FieldTable) {
        TopicTrie::remove(self, routing_key, destination);
    }

    fn route(&self, routing_key: &str, _: Option<&amqp_codec::FieldTable>, emit: &mut impl FnMut(&D)) {
        TopicTrie::route(self, routing_key, emit)
    }
}

impl<D: PartialEq + Clone> TopicTrie<D> {
    pub fn insert(&mut self, pattern: &str, destination: D) {
        let mut node = &mut self.root;
        for word in words(pattern) {
            node = match word {
                "*" => node.star.get_or_insert_with(Box::default),
                "#" => node.hash.get_or_insert_with(Box::default),
                w => node.words.entry(w.into()).or_default(),
            };
        }
        node.destinations.push(destination);
    }

    /// Remove one occurrence of `destination` bound with `pattern`; prunes emptied nodes.
    pub fn remove(&mut self, pattern: &str, destination: &D) -> bool {
        remove_at(&mut self.root, &words(pattern), destination)
    }

    /// Call `emit` for every destination whose pattern matches `routing_key` (possibly repeated).
    pub fn route(&self, routing_key: &str, emit: &mut impl FnMut(&D)) {
        walk(&self.root, &words(routing_key), emit);
    }
}

fn remove_at<D: PartialEq>(node: &mut Node<D>, pattern: &[&str], destination: &D) -> bool {
    let Some((first, rest)) = pattern.split_first() else {
        return match node.destinations.iter().position(|d| d == destination) {
            Some(i) => {
                node.destinations.swap_remove(i);
                true
            }
            None => false,
        };
    };
    match *first {
        "*" | "#" => {
            let slot = if *first == "*" { &mut node.star } else { &mut node.hash };
            let Some(child) = slot else { return false };
            let removed = remove_at(child, rest, destination);
            if child.is_empty() {
                *slot = None;
            }
            removed
        }
        word => {
            let Some(child) = node.words.get_mut(word) else { return false };
            let removed = remove_at(child, rest, destination);
            if child.is_empty() {
                node.words.remove(word);
            }
            removed
        }
    }
}

fn walk<D>(node: &Node<D>, key: &[&str], emit: &mut impl FnMut(&D)) {
    if let Some(hash) = &node.hash {
        // `#` may swallow any number of the remaining words, including none.
        for skip in 0..=key.len() {
            walk(hash, &key[skip..], emit);
        }
    }
    let Some((first, rest)) = key.split_first() else {
        node.destinations.iter().for_each(emit);
        return;
    };
    if let Some(child) = node.words.get(*first) {
        walk(child, rest, emit);
    }
    if let Some(star) = &node.star {
        walk(star, rest, emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn routed(trie: &TopicTrie<u32>, key: &str) -> Vec<u32> {
        let mut out = Vec::new();
        trie.route(key, &mut |d| out.push(*d));
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn table_of_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("a.b.c", "a.b.c", true),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.c", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("#", "", true),
            ("#", "anything.at.all", true),
            ("*", "", false),
            ("", "", true),
            ("", "a", false),
            ("#.c", "c", true),
            ("#.c", "a.b.c", true),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.x.y.c", true),
            ("a.#.c", "a.x.y.d", false),
            ("*.*", "a.b", true),
            ("*.*", "a.b.c", false),
            ("a..b", "a..b", true),
            ("#.#", "a", true),
            ("*.#", "", false),
        ];
        for (pattern, key, expected) in cases {
            let mut trie = TopicTrie::default();
            trie.insert(pattern, 1);
            assert_eq!(!routed(&trie, key).is_empty(), *expected, "pattern {pattern:?} key {key:?}");
        }
    }

    #[test]
    fn remove_prunes_and_keeps_other_bindings() {
        let mut trie = TopicTrie::default();
        trie.insert("a.*", 1);
        trie.insert("a.#", 2);
        assert_eq!(routed(&trie, "a.b"), vec![1, 2]);
        assert!(trie.remove("a.*", &1));
        assert!(!trie.remove("a.*", &1));
        assert_eq!(routed(&trie, "a.b"), vec![2]);
        assert!(trie.remove("a.#", &2));
        assert!(trie.root.is_empty());
    }

    /// Reference matcher: a direct recursive definition of topic matching.
    fn reference(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|i| reference(rest, &key[i..])),
            Some((p, rest)) => match key.split_first() {
                Some((k, krest)) => (*p == "*" || p == k) && reference(rest, krest),
                None => false,
            },
        }
    }

    proptest! {
        #[test]
        fn trie_agrees_with_reference(
            patterns in prop::collection::vec(prop::collection::vec(prop::sample::select(vec!["a", "b", "*", "#"]), 0..5), 1..8),
            key in prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 0..6),
        ) {
            let mut trie = TopicTrie::default();
            for (i, p) in patterns.iter().enumerate() {
                trie.insert(&p.join("."), i as u32);
            }
            let key_str = key.join(".");
            let expected: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| reference(p, &words(&key_str)))
                .map(|(i, _)| i as u32)
                .collect();
            prop_assert_eq!(routed(&trie, &key_str), expected);
        }
    }
}
