//! Durable definitions: the keys and values that describe durable exchanges, queues and bindings,
//! and the writer thread that makes changes durable in submission order, many per fsync, without
//! blocking the caller. A caller that must answer only once a change is durable (queue.declare-ok
//! and friends) waits on [`DefsWriter::wait_durable`].

use amqp_codec::{FieldTable, FieldValue, ShortStr};
use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::sync::mpsc;
use std::sync::Arc;
use tokio::sync::watch;
use warren_core::{ExchangeDef, ExchangeKind};
use warren_store::Definitions;

/// One change: a value sets the key, `None` deletes it.
pub type Change = (Bytes, Option<Bytes>);

/// Changes submitted together, with the sequence number of the submission.
type Batch = (u64, Vec<Change>);

/// How far the writer got: every change submitted with a sequence number up to `durable` is on
/// disk, unless `failed` says the definitions could not be written.
#[derive(Debug, Clone, Default)]
pub struct DefsProgress {
    pub durable: u64,
    pub failed: Option<String>,
}

/// Handle to the definitions writer thread.
pub struct DefsWriter {
    /// The last sequence number submitted, held while sending so that sequence numbers reach
    /// the thread in order.
    submitted: Mutex<(u64, Option<mpsc::Sender<Batch>>)>,
    progress: watch::Receiver<DefsProgress>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Callbacks waiting for a sequence number to be durable (see [`DefsWriter::after`]).
    waiting: Arc<Waiting>,
}

/// Callbacks by the sequence number they wait for, called by the writer thread after the
/// batch that makes it durable (with `false` if definitions cannot be written).
#[derive(Default)]
struct Waiting {
    callbacks: Mutex<Vec<(u64, super::OnDurable)>>,
}

impl Waiting {
    /// Calls (outside the lock) every callback that `progress` settles.
    fn settle(&self, progress: &DefsProgress) {
        let due: Vec<(u64, super::OnDurable)> = {
            let mut all = self.callbacks.lock();
            let (due, rest) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|(seq, _)| *seq <= progress.durable || progress.failed.is_some());
            *all = rest;
            due
        };
        for (_, callback) in due {
            callback(progress.failed.is_none());
        }
    }
}

impl DefsWriter {
    /// Starts the writer thread over `defs`.
    pub fn start(defs: Arc<Definitions>) -> std::io::Result<DefsWriter> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let (progress_tx, progress) = watch::channel(DefsProgress::default());
        let waiting = Arc::new(Waiting::default());
        let settles = waiting.clone();
        let thread = std::thread::Builder::new().name("warren-defs-writer".into()).spawn(move || {
            while let Ok((mut last, mut batch)) = rx.recv() {
                // Everything already queued shares the fsync.
                while let Ok((seq, more)) = rx.try_recv() {
                    last = seq;
                    batch.extend(more);
                }
                let result = defs.apply_batch(&batch);
                progress_tx.send_modify(|p| {
                    p.durable = last;
                    if let Err(e) = result {
                        tracing::error!(error = %e, "cannot write definitions");
                        p.failed = Some(e.to_string());
                    }
                });
                settles.settle(&progress_tx.borrow());
            }
        })?;
        Ok(DefsWriter { submitted: Mutex::new((0, Some(tx))), progress, thread: Mutex::new(Some(thread)), waiting })
    }

    /// Queues `changes` for writing; returns their sequence number. Call it under the lock that
    /// orders the in-memory change, so that the disk sees changes in the same order.
    pub fn submit(&self, changes: Vec<Change>) -> u64 {
        if changes.is_empty() {
            return self.submitted();
        }
        let mut submitted = self.submitted.lock();
        submitted.0 += 1;
        let seq = submitted.0;
        // The thread lives as long as the sender; a send can only fail after a panic there or
        // after `close`, and `wait_durable` then reports that the writer stopped.
        if let Some(tx) = &submitted.1 {
            let _ = tx.send((seq, changes));
        }
        seq
    }

    /// Writes what was submitted, then stops the thread and waits for it.
    pub fn close(&self) {
        self.submitted.lock().1 = None;
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    /// The last sequence number submitted.
    pub fn submitted(&self) -> u64 {
        self.submitted.lock().0
    }

    /// Whether everything up to `seq` is already durable.
    pub fn is_durable(&self, seq: u64) -> bool {
        self.progress.borrow().durable >= seq
    }

    /// Calls `callback` once the changes up to `seq` are durable (`true`) or cannot be written
    /// (`false`): at once if that is known, else from the writer thread. It must be quick.
    pub fn after(&self, seq: u64, callback: super::OnDurable) {
        {
            // Under the lock the writer thread settles with: either it sees this callback, or
            // the progress read here already covers `seq`.
            let mut waiting = self.waiting.callbacks.lock();
            let progress = self.progress.borrow().clone();
            if progress.durable < seq && progress.failed.is_none() {
                waiting.push((seq, callback));
                return;
            }
            drop(waiting);
            callback(progress.failed.is_none());
        }
    }

    /// Waits until the changes up to `seq` are durable; `Err` if definitions cannot be written.
    pub async fn wait_durable(&self, seq: u64) -> Result<(), String> {
        let mut rx = self.progress.clone();
        let progress = rx
            .wait_for(|p| p.durable >= seq || p.failed.is_some())
            .await
            .map_err(|_| "the definitions writer stopped".to_string())?;
        match &progress.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

// ---- keys and values ----------------------------------------------------------------------
// Keys are a kind (`x`, `q`, `b`) and then length-prefixed parts (u16 LE), so any byte may
// appear in a name; values are AMQP field tables (our own codec), so a new field never breaks
// an old reader.

/// The key holding the next durable queue id (ids are never reused).
pub const NEXT_QUEUE_ID_KEY: &[u8] = b"m\x0d\x00next-queue-id";

pub(crate) fn key(kind: u8, parts: &[&[u8]]) -> Bytes {
    let mut k = BytesMut::new();
    k.put_u8(kind);
    for p in parts {
        k.put_u16_le(p.len() as u16);
        k.put_slice(p);
    }
    k.freeze()
}

fn split_key(k: &[u8]) -> Option<(u8, Vec<&[u8]>)> {
    let (&kind, mut rest) = k.split_first()?;
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        parts.push(rest.get(2..2 + len)?);
        rest = &rest[2 + len..];
    }
    Some((kind, parts))
}

pub(crate) fn table_bytes(t: &FieldTable) -> Bytes {
    let mut b = BytesMut::with_capacity(t.encoded_len());
    t.encode(&mut b);
    b.freeze()
}

pub fn exchange_key(vhost: &str, name: &str) -> Bytes {
    key(b'x', &[vhost.as_bytes(), name.as_bytes()])
}

/// A durable exchange as stored; a delayed one also keeps the store id its waiting messages
/// are written under (`delay_store_id`).
pub fn exchange_value(def: &ExchangeDef, delay_store_id: Option<u64>) -> Bytes {
    let mut t = FieldTable::new();
    if let Some(id) = delay_store_id {
        t.insert("delay_store_id", FieldValue::I64(id as i64));
    }
    t.insert("type", FieldValue::LongStr(Bytes::copy_from_slice(def.type_name().as_bytes())));
    t.insert("auto_delete", FieldValue::Bool(def.auto_delete));
    t.insert("internal", FieldValue::Bool(def.internal));
    t.insert("arguments", FieldValue::Table(def.arguments.clone()));
    table_bytes(&t)
}

pub fn queue_key(vhost: &str, name: &str) -> Bytes {
    key(b'q', &[vhost.as_bytes(), name.as_bytes()])
}

/// A durable queue as stored.
#[derive(Debug, Clone)]
pub struct StoredQueue {
    pub id: u64,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

pub fn queue_value(q: &StoredQueue) -> Bytes {
    let mut t = FieldTable::new();
    t.insert("id", FieldValue::I64(q.id as i64));
    t.insert("auto_delete", FieldValue::Bool(q.auto_delete));
    t.insert("arguments", FieldValue::Table(q.arguments.clone()));
    table_bytes(&t)
}

/// Where a binding leads, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestKind {
    Queue,
    Exchange,
}

/// A binding as stored: source exchange, destination, routing key and arguments.
#[derive(Debug, Clone)]
pub struct StoredBinding {
    pub source: ShortStr,
    pub dest_kind: DestKind,
    pub dest: ShortStr,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

/// The whole binding is the key (two bindings differing only in arguments are distinct).
pub fn binding_key(vhost: &str, b: &StoredBinding) -> Bytes {
    let kind: &[u8] = match b.dest_kind {
        DestKind::Queue => b"q",
        DestKind::Exchange => b"x",
    };
    let args = table_bytes(&b.arguments);
    key(b'b', &[vhost.as_bytes(), b.source.as_bytes(), kind, b.dest.as_bytes(), b.routing_key.as_bytes(), &args])
}

/// The value stored under a binding's key: an empty table (the key says everything; the table
/// leaves room for later fields).
pub fn binding_value() -> Bytes {
    table_bytes(&FieldTable::new())
}

/// Every definition read back at start, by vhost.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Vhost, definition, and for a delayed exchange the store id of its waiting messages.
    pub exchanges: Vec<(String, ExchangeDef, Option<u64>)>,
    pub queues: Vec<(String, ShortStr, StoredQueue)>,
    pub bindings: Vec<(String, StoredBinding)>,
    pub next_queue_id: u64,
    /// Vhosts, users and permissions.
    pub access: super::access_defs::LoadedAccess,
    /// Deduplication keys of durable exchanges and queues (`crate::dedup`).
    pub dedup_keys: Vec<StoredDedupKey>,
    /// Keys that could not be understood (reported, then left alone).
    pub unreadable: Vec<Bytes>,
}

/// A deduplication key kept durably: whose window it is in, the key, and its entry.
#[derive(Debug)]
pub struct StoredDedupKey {
    pub stored_under: Bytes,
    pub home: crate::dedup::Home,
    pub key: warren_core::dedup::Key,
    pub entry: warren_core::dedup::Entry,
}

/// A `D` entry (its value is not a table).
fn parse_dedup_key(k: &Bytes, v: &[u8]) -> Option<StoredDedupKey> {
    let (kind, parts) = split_key(k)?;
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let (home, digest) = match (kind, parts.as_slice()) {
        (b'D', [b"x", vhost, name, digest]) => {
            (crate::dedup::Home::Exchange { vhost: text(vhost)?, name: text(name)? }, *digest)
        }
        (b'D', [b"q", id, digest]) => {
            (crate::dedup::Home::Queue { store_id: u64::from_le_bytes((*id).try_into().ok()?) }, *digest)
        }
        _ => return None,
    };
    let key = digest.try_into().ok()?;
    let entry = crate::dedup::parse_entry_value(v)?;
    Some(StoredDedupKey { stored_under: k.clone(), home, key, entry })
}

/// Parses the definitions map.
pub fn load(entries: Vec<(Bytes, Bytes)>) -> Loaded {
    let mut loaded = Loaded { next_queue_id: 1, ..Loaded::default() };
    for (k, v) in entries {
        if k.as_ref() == NEXT_QUEUE_ID_KEY {
            match <[u8; 8]>::try_from(v.as_ref()) {
                Ok(b) => loaded.next_queue_id = loaded.next_queue_id.max(u64::from_le_bytes(b)),
                Err(_) => loaded.unreadable.push(k),
            }
            continue;
        }
        if k.first() == Some(&b'D') {
            match parse_dedup_key(&k, &v) {
                Some(stored) => loaded.dedup_keys.push(stored),
                None => loaded.unreadable.push(k),
            }
            continue;
        }
        if !parse_entry(&k, v, &mut loaded) {
            loaded.unreadable.push(k);
        }
    }
    // Ids are never reused, even if the counter write was lost.
    let max_id = loaded.queues.iter().map(|(_, _, q)| q.id).max().unwrap_or(0);
    loaded.next_queue_id = loaded.next_queue_id.max(max_id + 1);
    loaded
}

fn parse_entry(k: &[u8], mut v: Bytes, loaded: &mut Loaded) -> bool {
    let Some((kind, parts)) = split_key(k) else { return false };
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    let short = |b: &[u8]| ShortStr::try_from_bytes(Bytes::copy_from_slice(b)).ok();
    let Ok(table) = FieldTable::decode(&mut v) else { return false };
    let flag = |name: &str| table.get(name).and_then(FieldValue::as_bool).unwrap_or(false);
    let arguments = || table.get("arguments").and_then(FieldValue::as_table).cloned().unwrap_or_default();
    match (kind, parts.as_slice()) {
        (b'x', [vhost, name]) => {
            let (Some(vhost), Some(name)) = (text(vhost), short(name)) else { return false };
            let arguments = arguments();
            let declared =
                table.get("type").and_then(FieldValue::as_str).map(|k| ExchangeKind::declared(k, &arguments));
            let Some(Ok((kind, delayed))) = declared else {
                return false;
            };
            let def = ExchangeDef {
                name,
                kind,
                durable: true,
                auto_delete: flag("auto_delete"),
                internal: flag("internal"),
                arguments,
                delayed,
            };
            let delay_store_id = table.get("delay_store_id").and_then(FieldValue::as_i64).map(|id| id as u64);
            if let Some(id) = delay_store_id {
                loaded.next_queue_id = loaded.next_queue_id.max(id + 1);
            }
            loaded.exchanges.push((vhost, def, delay_store_id));
        }
        (b'q', [vhost, name]) => {
            let (Some(vhost), Some(name)) = (text(vhost), short(name)) else { return false };
            let Some(id) = table.get("id").and_then(FieldValue::as_i64).filter(|&id| id > 0) else { return false };
            let q = StoredQueue { id: id as u64, auto_delete: flag("auto_delete"), arguments: arguments() };
            loaded.queues.push((vhost, name, q));
        }
        (b'm' | b'v' | b'u' | b'p' | b'y' | b'o' | b'k' | b't' | b'g', parts) => {
            return super::access_defs::parse(kind, parts, &table, &mut loaded.access)
        }
        (b'b', [vhost, source, kind, dest, routing_key, args]) => {
            let (Some(vhost), Some(source), Some(dest), Some(routing_key)) =
                (text(vhost), short(source), short(dest), short(routing_key))
            else {
                return false;
            };
            let dest_kind = match *kind {
                b"q" => DestKind::Queue,
                b"x" => DestKind::Exchange,
                _ => return false,
            };
            let Ok(arguments) = FieldTable::decode(&mut Bytes::copy_from_slice(args)) else { return false };
            loaded.bindings.push((vhost, StoredBinding { source, dest_kind, dest, routing_key, arguments }));
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip() {
        let mut args = FieldTable::new();
        args.insert("x-match", FieldValue::LongStr(Bytes::from_static(b"any\0with-nul")));
        let ex = ExchangeDef {
            name: ShortStr::from("orders"),
            kind: ExchangeKind::Topic,
            durable: true,
            auto_delete: true,
            internal: false,
            arguments: args.clone(),
            delayed: false,
        };
        let mut delayed = ex.clone();
        delayed.name = ShortStr::from("later");
        delayed.delayed = true;
        delayed.arguments.insert("x-delayed-type", FieldValue::LongStr(Bytes::from_static(b"topic")));
        let q = StoredQueue { id: 7, auto_delete: false, arguments: args.clone() };
        let b = StoredBinding {
            source: ShortStr::from("orders"),
            dest_kind: DestKind::Queue,
            dest: ShortStr::from("q\0odd"),
            routing_key: ShortStr::from("a.*"),
            arguments: args.clone(),
        };
        let entries = vec![
            (exchange_key("/", "orders"), exchange_value(&ex, None)),
            (exchange_key("/", "later"), exchange_value(&delayed, Some(11))),
            (queue_key("/", "work"), queue_value(&q)),
            (binding_key("/", &b), binding_value()),
            (Bytes::from_static(NEXT_QUEUE_ID_KEY), Bytes::copy_from_slice(&3u64.to_le_bytes())),
            (Bytes::from_static(b"zzz"), Bytes::new()),
        ];
        let loaded = load(entries);
        assert_eq!(loaded.exchanges, vec![("/".to_string(), ex, None), ("/".to_string(), delayed, Some(11))]);
        assert_eq!(loaded.queues.len(), 1);
        assert_eq!((loaded.queues[0].1.as_str(), loaded.queues[0].2.id), ("work", 7));
        assert_eq!(loaded.queues[0].2.arguments, args);
        assert_eq!(loaded.bindings.len(), 1);
        assert_eq!(loaded.bindings[0].1.dest.as_str(), "q\0odd");
        assert_eq!(loaded.unreadable, vec![Bytes::from_static(b"zzz")]);
        assert_eq!(loaded.next_queue_id, 12, "never below the largest id in use");
    }
}
