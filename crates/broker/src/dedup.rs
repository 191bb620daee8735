//! Deduplication on the publish path: an exchange or queue declared with
//! `x-message-deduplication` keeps a window of the keys it took (`core::dedup`); a message whose
//! key is in it is confirmed but not routed (exchange) or not enqueued (queue).
//!
//! A durable exchange's or queue's window is durable too, in the definitions log (one entry
//! per key). A key is written only once its message is on disk, and the message's publisher
//! confirm waits for the key: after a crash, a message that was confirmed is a duplicate if it
//! is published again, and one that was not may be published again without being taken for
//! one (a crash can let a duplicate through, never lose a message). A publish refused or
//! nacked gives its keys back, so that its retry goes through.

use crate::durable::defs::{key, Change};
use crate::durable::{Durability, OnDurable};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use warren_core::dedup::{DedupSettings, Entry, Key, Seen, Window};
use warren_core::Message;

/// Where a durable window's keys live in the definitions log: the parts before the key.
#[derive(Debug, Clone)]
pub enum Home {
    Exchange {
        vhost: String,
        name: String,
    },
    /// A queue, by its store id (never reused, so a redeclared queue starts with no keys).
    Queue {
        store_id: u64,
    },
}

impl Home {
    fn key_of(&self, digest: &Key) -> Bytes {
        match self {
            Home::Exchange { vhost, name } => key(b'D', &[b"x", vhost.as_bytes(), name.as_bytes(), digest]),
            Home::Queue { store_id } => key(b'D', &[b"q", &store_id.to_le_bytes(), digest]),
        }
    }
}

/// A durable key's value: its place in line and when it expires (0: never), both u64 LE.
fn entry_value(entry: Entry) -> Bytes {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&entry.seq.to_le_bytes());
    v.extend_from_slice(&entry.expires_at_ms.unwrap_or(0).to_le_bytes());
    Bytes::from(v)
}

/// The entry a durable value holds, if it is well formed.
pub fn parse_entry_value(v: &[u8]) -> Option<Entry> {
    let seq = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let expires = u64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    Some(Entry { seq, expires_at_ms: (expires != 0).then_some(expires) })
}

/// One exchange's or queue's deduplication.
pub struct Deduplicator {
    pub settings: DedupSettings,
    window: Mutex<Window>,
    /// Set for a durable exchange or queue of a broker with a data directory.
    home: Option<Home>,
    duplicates: AtomicU64,
}

/// What the window made of a message.
pub(crate) enum Checked {
    /// It has no key: not deduplicated.
    NoKey,
    Duplicate,
    New(Taken),
}

/// A key a publish put in a window (and the keys that left to make room).
pub(crate) struct Taken {
    dedup: Arc<Deduplicator>,
    key: Key,
    entry: Entry,
    dropped: Vec<Key>,
}

impl Deduplicator {
    pub fn new(settings: DedupSettings, home: Option<Home>) -> Arc<Deduplicator> {
        let window = Mutex::new(Window::new(settings.cache_size));
        Arc::new(Deduplicator { settings, window, home, duplicates: AtomicU64::new(0) })
    }

    /// Duplicates it kept out since the start.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Keys in the window now.
    pub fn len(&self) -> usize {
        self.window.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn check(self: &Arc<Self>, message: &Message, now_ms: u64) -> Checked {
        let Some(props) = message.decode_properties() else { return Checked::NoKey };
        let Some(key) = self.settings.key_of(&props) else { return Checked::NoKey };
        let seen = self.window.lock().observe(key, now_ms, self.settings.ttl_of(&props));
        match seen {
            Seen::Duplicate => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                Checked::Duplicate
            }
            Seen::New { entry, dropped } => Checked::New(Taken { dedup: self.clone(), key, entry, dropped }),
        }
    }

    /// A key kept durably, back in the window at start.
    pub(crate) fn restore(&self, key: Key, entry: Entry) {
        self.window.lock().restore(key, entry);
    }

    /// The durable deletes of every key (the exchange or queue is going).
    pub(crate) fn drop_all(&self) -> Vec<Change> {
        let Some(home) = &self.home else { return Vec::new() };
        self.window.lock().keys().map(|k| (home.key_of(k), None)).collect()
    }
}

/// The keys one publish took, on their way to the definitions log; the publisher's confirm
/// (`original`) waits for them.
pub(crate) struct Pending {
    state: Mutex<Option<PendingState>>,
}

struct PendingState {
    taken: Vec<Taken>,
    defs: Option<Arc<Durability>>,
    original: Option<OnDurable>,
    /// The publish was nacked: its keys leave the windows, and only the drops are written.
    given_back: bool,
}

impl Pending {
    pub(crate) fn new(taken: Vec<Taken>, defs: Option<Arc<Durability>>, original: Option<OnDurable>) -> Arc<Pending> {
        let state = PendingState { taken, defs, original, given_back: false };
        Arc::new(Pending { state: Mutex::new(Some(state)) })
    }

    /// Whether the confirm must wait for keys written to disk.
    pub(crate) fn writes_keys(&self) -> bool {
        let st = self.state.lock();
        st.as_ref().is_some_and(|s| s.defs.is_some() && s.taken.iter().any(|t| t.dedup.home.is_some()))
    }

    /// The publish was refused or nacked: its keys leave the windows so that a retry counts.
    pub(crate) fn give_back(&self) {
        if let Some(st) = self.state.lock().as_mut() {
            if !st.given_back {
                st.given_back = true;
                for t in &st.taken {
                    t.dedup.window.lock().forget(&t.key, t.entry);
                }
            }
        }
    }

    /// The message is where it goes (on disk, if it goes there): write the keys, then let the
    /// confirm go (`ok`), or with `ok == false` give the keys back and say so.
    pub(crate) fn message_done(&self, ok: bool) {
        if !ok {
            self.give_back();
        }
        let Some(st) = self.state.lock().take() else { return };
        let mut changes = Vec::new();
        for t in &st.taken {
            let Some(home) = &t.dedup.home else { continue };
            if !st.given_back {
                changes.push((home.key_of(&t.key), Some(entry_value(t.entry))));
            }
            changes.extend(t.dropped.iter().map(|k| (home.key_of(k), None)));
        }
        match (st.defs, st.original) {
            (Some(defs), original) if !changes.is_empty() => {
                let seq = defs.defs.submit(changes);
                if let Some(confirm) = original {
                    defs.defs.after(seq, Box::new(move |durable| confirm(ok && durable)));
                }
            }
            (_, Some(confirm)) => confirm(ok),
            _ => {}
        }
    }

    /// The publish was refused outright: keys back, and the confirm is the caller's (a nack).
    pub(crate) fn refused(&self) {
        self.give_back();
        self.drop_confirm();
        self.message_done(true);
    }

    /// The caller confirms (or not) without waiting for the keys.
    pub(crate) fn drop_confirm(&self) {
        if let Some(st) = self.state.lock().as_mut() {
            st.original = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::DurabilityOptions;
    use amqp_codec::{BasicProperties, ShortStr};
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use warren_store::{FaultyFs, FileSystem};

    fn message(id: &str) -> Message {
        let props = BasicProperties { message_id: Some(ShortStr::from(id)), ..Default::default() };
        Message::new(ShortStr::from_static("x"), ShortStr::from_static("k"), props.to_raw(), Bytes::new())
    }

    #[test]
    fn a_confirm_waits_for_its_key_on_disk_and_a_nacked_publish_gives_the_key_back() {
        let fs = FaultyFs::new();
        let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
        let durability = Durability::open(Path::new("/data"), DurabilityOptions::default(), shared).unwrap().durability;
        let settings = DedupSettings { cache_size: 8, ttl_ms: None, header: None };
        let dedup = Deduplicator::new(settings, Some(Home::Queue { store_id: 7 }));
        let Checked::New(taken) = dedup.check(&message("a"), 0) else { panic!("a new key") };
        assert!(matches!(dedup.check(&message("a"), 0), Checked::Duplicate));

        let confirmed = Arc::new(AtomicBool::new(false));
        let seen = confirmed.clone();
        let pending = Pending::new(
            vec![taken],
            Some(durability.clone()),
            Some(Box::new(move |ok| seen.store(ok, Ordering::SeqCst))),
        );
        assert!(pending.writes_keys());
        fs.pause_syncs();
        pending.message_done(true);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while fs.syncs_waiting() == 0 {
            assert!(std::time::Instant::now() < deadline, "the key's write never reached the disk");
            std::thread::yield_now();
        }
        assert!(!confirmed.load(Ordering::SeqCst), "no confirm before the key is durable");
        fs.resume_syncs();
        while !confirmed.load(Ordering::SeqCst) {
            assert!(std::time::Instant::now() < deadline, "the confirm never came");
            std::thread::yield_now();
        }
        let Checked::New(b) = dedup.check(&message("b"), 0) else { panic!("a new key") };
        let nacked = Pending::new(vec![b], Some(durability.clone()), None);
        nacked.refused();
        assert!(matches!(dedup.check(&message("b"), 0), Checked::New(_)), "a refused publish gave its key back");
        durability.close();

        let shared: Arc<dyn FileSystem> = Arc::new(fs.crash(None));
        let reopened = Durability::open(Path::new("/data"), DurabilityOptions::default(), shared).unwrap();
        let keys = &reopened.definitions.dedup_keys;
        let a = dedup.settings.key_of(&message("a").decode_properties().unwrap()).unwrap();
        assert_eq!(keys.len(), 1, "only the confirmed key is on disk: {keys:?}");
        assert!(matches!(keys[0].home, Home::Queue { store_id: 7 }) && keys[0].key == a);
        reopened.durability.close();
    }
}
