//! Property test: random sequences of append / ack / sync / crash / restart on `FaultyFs`.
//! Invariant: every message whose completion said Ok and that was not acked is recovered exactly
//! once (with its body); nothing whose ack was synced comes back; nothing unknown appears.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use warren_store::{FaultyFs, Recovery, Store, StoreOptions};

#[derive(Debug, Clone)]
enum Op {
    Append { queues: u8, len: usize },
    Ack { pick: usize },
    Sync,
    Crash { torn: Option<usize> },
    Restart,
    DiskFull { room: u16 },
    SpaceBack,
    Deliver { queue: u64 },
    Purge { queue: u64, delete: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..8, 0usize..400).prop_map(|(queues, len)| Op::Append { queues, len }),
        4 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        2 => Just(Op::Sync),
        1 => proptest::option::of(0usize..60).prop_map(|torn| Op::Crash { torn }),
        1 => Just(Op::Restart),
        1 => (0u16..3000).prop_map(|room| Op::DiskFull { room }),
        1 => Just(Op::SpaceBack),
        1 => (1u64..4).prop_map(|queue| Op::Deliver { queue }),
        1 => (1u64..4, any::<bool>()).prop_map(|(queue, delete)| Op::Purge { queue, delete }),
    ]
}

#[derive(Default)]
struct Model {
    /// id -> (queues, body) of every submitted message.
    messages: BTreeMap<u64, (Vec<u64>, Vec<u8>)>,
    completed_ok: Arc<Mutex<HashSet<u64>>>,
    /// (queue, id) believed unacked.
    live: Vec<(u64, u64)>,
    acked_any: HashSet<(u64, u64)>,
    acked_durable: HashSet<(u64, u64)>,
    acks_pending: Vec<(u64, u64)>,
    /// Delivered markers: highest submitted, highest known durable, submitted since last sync.
    marker_any: BTreeMap<u64, u64>,
    marker_durable: BTreeMap<u64, u64>,
    markers_pending: Vec<(u64, u64)>,
}

impl Model {
    fn synced(&mut self) {
        self.acked_durable.extend(self.acks_pending.drain(..));
        for (q, up_to) in self.markers_pending.drain(..) {
            let m = self.marker_durable.entry(q).or_default();
            *m = (*m).max(up_to);
        }
    }
}

impl Model {
    fn check(&mut self, store: &Store, recovery: &Recovery) {
        let ok = self.completed_ok.lock().unwrap().clone();
        // Crashes tear tails; they never corrupt a record in the middle of the log.
        assert_eq!(recovery.stats.skipped_count, 0, "{:?}", recovery.stats.skipped);
        let mut live = Vec::new();
        for (&queue, msgs) in &recovery.queues {
            let ids: Vec<u64> = msgs.messages().map(|m| m.id).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "queue {queue}: ordered, no duplicates");
            let durable_marker = self.marker_durable.get(&queue).copied().unwrap_or(0);
            let any_marker = self.marker_any.get(&queue).copied().unwrap_or(0);
            for m in msgs.messages() {
                assert!(m.id > durable_marker || m.redelivered, "{} <= synced marker {durable_marker}", m.id);
                assert!(m.id <= any_marker || !m.redelivered, "{} above every marker", m.id);
            }
            for &id in &ids {
                let (queues, body) = self.messages.get(&id).expect("recovered id was appended");
                assert!(queues.contains(&queue), "message {id} recovered for a queue it was not stored for");
                assert!(!self.acked_durable.contains(&(queue, id)), "durably acked {id} came back on {queue}");
                assert_eq!(store.read(id).unwrap(), Bytes::from(body.clone()));
                live.push((queue, id));
            }
        }
        for (&id, (queues, _)) in &self.messages {
            if !ok.contains(&id) {
                continue;
            }
            for &q in queues {
                if !self.acked_any.contains(&(q, id)) {
                    assert!(live.contains(&(q, id)), "confirmed message {id} lost for queue {q}");
                }
            }
        }
        self.live = live;
        self.acks_pending.clear();
        self.markers_pending.clear();
    }
}

fn run(ops: Vec<Op>) {
    let options = StoreOptions { segment_size_bytes: 4096, ..StoreOptions::default() };
    let mut fs = FaultyFs::new();
    let (mut store, _) = open(&fs, options.clone());
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append { queues, len } => {
                let qs: Vec<u64> = (0..3).filter(|b| queues & (1 << b) != 0).map(|b| b + 1).collect();
                let body: Vec<u8> = (0..len).map(|i| (i + step) as u8).collect();
                let ok = model.completed_ok.clone();
                let (tx_id, rx_id) = std::sync::mpsc::channel::<u64>();
                let done = Box::new(move |r: Result<(), _>| {
                    let id = rx_id.recv().unwrap();
                    if r.is_ok() {
                        ok.lock().unwrap().insert(id);
                    }
                });
                let id = store.append(&qs, Bytes::from(body.clone()), done).unwrap();
                // The id of an append that never became durable may be handed out again after a
                // restart: it is a new message, and what was said about the old one is void.
                model.completed_ok.lock().unwrap().remove(&id);
                model.acked_any.retain(|&(_, i)| i != id);
                model.acked_durable.retain(|&(_, i)| i != id);
                model.live.retain(|&(_, i)| i != id);
                tx_id.send(id).unwrap();
                model.messages.insert(id, (qs.clone(), body));
                model.live.extend(qs.iter().map(|&q| (q, id)));
            }
            Op::Ack { pick } => {
                if model.live.is_empty() {
                    continue;
                }
                let (q, id) = model.live.swap_remove(pick % model.live.len());
                store.ack(q, id).unwrap();
                model.acked_any.insert((q, id));
                model.acks_pending.push((q, id));
            }
            Op::Sync => {
                if sync_wait(&store).is_ok() {
                    model.synced();
                }
            }
            Op::Deliver { queue } => {
                let up_to = model.messages.keys().next_back().copied().unwrap_or(0);
                store.mark_delivered(queue, up_to).unwrap();
                let m = model.marker_any.entry(queue).or_default();
                *m = (*m).max(up_to);
                model.markers_pending.push((queue, up_to));
            }
            Op::Purge { queue, delete } => {
                let up_to = if delete { u64::MAX } else { model.messages.keys().next_back().copied().unwrap_or(0) };
                store.purge(queue, up_to).unwrap();
                if delete {
                    // The marker is forgotten (once the purge is durable): no longer required.
                    model.marker_durable.remove(&queue);
                    model.markers_pending.retain(|&(q, _)| q != queue);
                }
                let (purged, kept) = model.live.iter().partition(|&&(q, id)| q == queue && id <= up_to);
                model.live = kept;
                for pair in purged {
                    model.acked_any.insert(pair);
                    model.acks_pending.push(pair);
                }
            }
            Op::DiskFull { room } => fs.set_space_limit(Some(fs.used_bytes() + room as u64)),
            Op::SpaceBack => fs.set_space_limit(None),
            Op::Crash { torn } => {
                fs = fs.crash(torn);
                fs.set_space_limit(None);
                drop(store);
                let (s, recovery) = open(&fs, options.clone());
                store = s;
                model.check(&store, &recovery);
            }
            Op::Restart => {
                fs.set_space_limit(None);
                drop(store);
                model.synced();
                let (s, recovery) = open(&fs, options.clone());
                store = s;
                model.check(&store, &recovery);
            }
        }
    }
    fs = fs.crash(Some(5));
    fs.set_space_limit(None);
    drop(store);
    let (store, recovery) = open(&fs, options);
    model.check(&store, &recovery);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn confirmed_messages_are_recovered_and_synced_acks_hold(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
