//! Deduplication windows, declared with LavinMQ's arguments on an exchange or a queue:
//! `x-message-deduplication: true`, `x-cache-size` (keys kept, default 128), `x-cache-ttl` (ms a
//! key is kept; none: until pushed out) and `x-deduplication-header` (the header holding the
//! key). A message's key is that header's value, else its `x-deduplication-header` header, else
//! its `message_id`; a message with none is never a duplicate. A message may shorten or lengthen
//! its own key's stay with an `x-cache-ttl` header. Keys are kept as SHA-256 digests: fixed in
//! size (so a window is bounded in bytes, and durable as it is) and not open to crafted
//! collisions.

use amqp_codec::{BasicProperties, FieldTable, FieldValue};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

/// The argument that turns deduplication on, and the others that shape it.
pub const ENABLE_ARG: &str = "x-message-deduplication";
pub const CACHE_SIZE_ARG: &str = "x-cache-size";
pub const CACHE_TTL_ARG: &str = "x-cache-ttl";
/// As an argument: the header that holds the key. As a header: the key (when the argument
/// names no other header).
pub const KEY_HEADER: &str = "x-deduplication-header";
/// Keys a window holds when `x-cache-size` is not given (LavinMQ's default), and at most.
pub const DEFAULT_CACHE_SIZE: usize = 128;
pub const MAX_CACHE_SIZE: usize = 1_000_000;

/// A key as a window keeps it: the SHA-256 digest of the key's text.
pub type Key = [u8; 32];

/// How an exchange or queue deduplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupSettings {
    pub cache_size: usize,
    pub ttl_ms: Option<u64>,
    /// The header holding the key (`None`: `x-deduplication-header`, then `message_id`).
    pub header: Option<String>,
}

impl DedupSettings {
    /// The settings `arguments` declare: `None` without `x-message-deduplication: true`, or the
    /// reason an argument is invalid.
    pub fn from_arguments(arguments: &FieldTable) -> Result<Option<DedupSettings>, String> {
        match arguments.get(ENABLE_ARG) {
            None | Some(FieldValue::Bool(false)) => return Ok(None),
            Some(FieldValue::Bool(true)) => {}
            Some(other) => return Err(format!("{ENABLE_ARG} must be a boolean, not {other:?}")),
        }
        let count = |name: &str| -> Result<Option<u64>, String> {
            match arguments.get(name) {
                None => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(n) if n >= 0 => Ok(Some(n as u64)),
                    _ => Err(format!("{name} must be a non-negative integer")),
                },
            }
        };
        let cache_size = match count(CACHE_SIZE_ARG)? {
            None => DEFAULT_CACHE_SIZE,
            Some(n) if (1..=MAX_CACHE_SIZE as u64).contains(&n) => n as usize,
            Some(_) => return Err(format!("{CACHE_SIZE_ARG} must be between 1 and {MAX_CACHE_SIZE}")),
        };
        let header = match arguments.get(KEY_HEADER) {
            None => None,
            Some(v) => match v.as_str() {
                Some(name) if !name.is_empty() && name.len() <= 255 => Some(name.to_owned()),
                _ => return Err(format!("{KEY_HEADER} must name a header (1 to 255 bytes)")),
            },
        };
        Ok(Some(DedupSettings { cache_size, ttl_ms: count(CACHE_TTL_ARG)?, header }))
    }

    /// The key `props` are deduplicated by, if they carry one.
    pub fn key_of(&self, props: &BasicProperties) -> Option<Key> {
        let headers = props.headers.as_ref();
        let from_header = |name: &str| headers.and_then(|h| h.get(name)).and_then(key_text);
        let text = match &self.header {
            Some(name) => from_header(name),
            None => from_header(KEY_HEADER).or_else(|| props.message_id.as_ref().map(|id| id.as_bytes().to_vec())),
        }?;
        Some(Sha256::digest(&text).into())
    }

    /// How long `props`' key is kept: its own `x-cache-ttl` header, else the window's.
    pub fn ttl_of(&self, props: &BasicProperties) -> Option<u64> {
        let own = props.headers.as_ref().and_then(|h| h.get(CACHE_TTL_ARG)).and_then(FieldValue::as_i64);
        match own {
            Some(ms) if ms >= 0 => Some(ms as u64),
            _ => self.ttl_ms,
        }
    }
}

/// A header value as key text: strings as they are, integers in decimal; other types are no key.
fn key_text(value: &FieldValue) -> Option<Vec<u8>> {
    if let FieldValue::LongStr(bytes) = value {
        return Some(bytes.to_vec());
    }
    value.as_i64().map(|n| n.to_string().into_bytes())
}

/// One key in a window: when it came (its place in line) and until when it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub expires_at_ms: Option<u64>,
}

/// What a window made of a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Within the window: the message is a duplicate.
    Duplicate,
    /// New (or expired): now in the window as `entry`; `dropped` left it to make room or
    /// because they expired.
    New { entry: Entry, dropped: Vec<Key> },
}

/// The keys seen lately, oldest first out.
#[derive(Debug)]
pub struct Window {
    size: usize,
    entries: HashMap<Key, Entry>,
    /// Keys in the order they came; an entry re-added later leaves a stale place behind.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
}

impl Window {
    pub fn new(size: usize) -> Window {
        Window { size: size.max(1), entries: HashMap::new(), order: VecDeque::new(), next_seq: 1 }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key in the window.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.entries.keys()
    }

    /// Whether `key` was seen within the window; if not, it is now.
    pub fn observe(&mut self, key: Key, now_ms: u64, ttl_ms: Option<u64>) -> Seen {
        let mut dropped = Vec::new();
        if let Some(entry) = self.entries.get(&key) {
            if entry.expires_at_ms.is_none_or(|at| at > now_ms) {
                return Seen::Duplicate;
            }
            self.entries.remove(&key);
            dropped.push(key);
        }
        while self.entries.len() >= self.size {
            let Some((old, seq)) = self.order.pop_front() else { break };
            if self.entries.get(&old).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&old);
                dropped.push(old);
            }
        }
        let entry = Entry { seq: self.next_seq, expires_at_ms: ttl_ms.map(|ttl| now_ms.saturating_add(ttl)) };
        self.add(key, entry);
        Seen::New { entry, dropped }
    }

    /// Takes `key` out again (its message was not taken after all, so a retry must not count as
    /// a duplicate); true if it was there as `entry`.
    pub fn forget(&mut self, key: &Key, entry: Entry) -> bool {
        if self.entries.get(key) == Some(&entry) {
            self.entries.remove(key);
            return true;
        }
        false
    }

    /// Puts back a key kept durably; call in the order of `entry.seq` (oldest first).
    pub fn restore(&mut self, key: Key, entry: Entry) {
        self.add(key, entry);
    }

    fn add(&mut self, key: Key, entry: Entry) {
        self.next_seq = self.next_seq.max(entry.seq + 1);
        self.entries.insert(key, entry);
        self.order.push_back((key, entry.seq));
        // Stale places (keys that expired and came again, or were forgotten) are bounded too.
        if self.order.len() > 2 * self.size {
            let entries = &self.entries;
            self.order.retain(|(k, seq)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::ShortStr;

    fn key(n: u8) -> Key {
        [n; 32]
    }

    #[test]
    fn a_window_keeps_the_latest_keys_within_their_time() {
        let mut w = Window::new(2);
        assert!(matches!(w.observe(key(1), 0, None), Seen::New { .. }));
        assert_eq!(w.observe(key(1), 5, None), Seen::Duplicate);
        assert!(matches!(w.observe(key(2), 6, Some(10)), Seen::New { .. }));
        let Seen::New { dropped, .. } = w.observe(key(3), 7, None) else { panic!("new") };
        assert_eq!(dropped, [key(1)], "the oldest made room");
        assert_eq!(w.observe(key(2), 15, None), Seen::Duplicate, "within its 10 ms");
        let Seen::New { dropped, entry } = w.observe(key(2), 16, None) else { panic!("expired") };
        assert_eq!(dropped, [key(2)]);
        assert!(w.forget(&key(2), entry));
        assert_eq!(w.len(), 1);
        for n in 0..100 {
            w.observe(key(9), 100 + n * 2, Some(1));
        }
        assert!(w.order.len() <= 4, "stale places are bounded: {}", w.order.len());
        let mut back = Window::new(2);
        back.restore(key(4), Entry { seq: 3, expires_at_ms: None });
        back.restore(key(5), Entry { seq: 9, expires_at_ms: None });
        let Seen::New { dropped, .. } = back.observe(key(6), 0, None) else { panic!("new") };
        assert_eq!(dropped, [key(4)], "restored keys keep their order");
    }

    #[test]
    fn settings_come_from_lavinmq_arguments_and_keys_from_headers_or_message_id() {
        let mut args = FieldTable::new();
        assert_eq!(DedupSettings::from_arguments(&args), Ok(None));
        args.insert(ENABLE_ARG, FieldValue::Bool(true));
        let plain = DedupSettings::from_arguments(&args).unwrap().unwrap();
        assert_eq!((plain.cache_size, plain.ttl_ms, plain.header.as_deref()), (128, None, None));
        args.insert(CACHE_SIZE_ARG, FieldValue::I64(0));
        assert!(DedupSettings::from_arguments(&args).unwrap_err().contains("between 1"));
        args.insert(CACHE_SIZE_ARG, FieldValue::I32(10));
        args.insert(CACHE_TTL_ARG, FieldValue::I64(500));
        args.insert(KEY_HEADER, FieldValue::LongStr("order-id".into()));
        let custom = DedupSettings::from_arguments(&args).unwrap().unwrap();
        assert_eq!((custom.cache_size, custom.ttl_ms, custom.header.as_deref()), (10, Some(500), Some("order-id")));

        let mut headers = FieldTable::new();
        headers.insert("order-id", FieldValue::I64(42));
        headers.insert(KEY_HEADER, FieldValue::LongStr("other".into()));
        headers.insert(CACHE_TTL_ARG, FieldValue::I32(5));
        let props = BasicProperties {
            headers: Some(headers),
            message_id: Some(ShortStr::from_static("m-1")),
            ..Default::default()
        };
        let digest = |text: &str| -> Key { Sha256::digest(text.as_bytes()).into() };
        assert_eq!(custom.key_of(&props), Some(digest("42")), "the named header");
        assert_eq!(plain.key_of(&props), Some(digest("other")), "x-deduplication-header first");
        let by_id = BasicProperties { message_id: Some(ShortStr::from_static("m-1")), ..Default::default() };
        assert_eq!(plain.key_of(&by_id), Some(digest("m-1")), "then message_id");
        assert_eq!(custom.key_of(&by_id), None, "a named header is the only key");
        assert_eq!((custom.ttl_of(&props), custom.ttl_of(&by_id)), (Some(5), Some(500)));
    }
}
