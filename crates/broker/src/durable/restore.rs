//! Rebuilding the broker from disk at start: durable exchanges, queues and bindings from the
//! definitions, then every durable queue's unsettled messages from the message log, in order.

use super::defs::{self, DestKind, Loaded};
use crate::exchange::Dest;
use crate::Broker;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use warren_store::Recovery;

/// What [`restore`] rebuilt.
#[derive(Debug, Default, Clone)]
pub struct RestoreReport {
    pub exchanges: usize,
    pub queues: usize,
    pub bindings: usize,
    /// Unacknowledged messages restored (their bodies stay on disk until delivered).
    pub messages: u64,
    /// Definitions left out: an unknown vhost, invalid arguments, or a binding missing an end.
    pub skipped_definitions: usize,
    pub duration: Duration,
}

/// Restores what `Durability::open` found into `broker`, before it serves anyone.
pub fn restore(broker: &Broker, mut loaded: Loaded, recovery: &Recovery) -> RestoreReport {
    let started = Instant::now();
    let Some(durability) = broker.durability().cloned() else { return RestoreReport::default() };
    // Vhosts first: exchanges and queues are restored into them.
    broker.restore_access(std::mem::take(&mut loaded.access));
    let mut report = RestoreReport::default();
    let mut delayed_by_id = HashMap::new();
    for (vhost, def, delay_store_id) in loaded.exchanges {
        match broker.vhost(&vhost) {
            Some(v) => {
                let exchange = v.restore_exchange(def, delay_store_id.map(|id| (id, durability.clone())));
                if let Some(id) = delay_store_id {
                    delayed_by_id.insert(id, exchange);
                }
                report.exchanges += 1;
            }
            None => {
                // Its vhost was deleted (or the deletion of the exchange was lost): it goes too,
                // so a vhost made again under the name starts empty.
                durability.defs.submit(vec![(defs::exchange_key(&vhost, def.name.as_str()), None)]);
                skip(&mut report, "exchange", &vhost, def.name.as_str(), "no such vhost");
            }
        }
    }
    let mut by_id = HashMap::new();
    for (vhost, name, stored) in loaded.queues {
        let Some(v) = broker.vhost(&vhost) else {
            // As for exchanges; its messages are purged below (no queue holds its id).
            durability.defs.submit(vec![(defs::queue_key(&vhost, name.as_str()), None)]);
            skip(&mut report, "queue", &vhost, name.as_str(), "no such vhost");
            continue;
        };
        match v.restore_queue(name.clone(), &stored, durability.clone()) {
            Ok(q) => {
                by_id.insert(stored.id, q);
                report.queues += 1;
            }
            Err(e) => skip(&mut report, "queue", &vhost, name.as_str(), &e.text),
        }
    }
    for (vhost, b) in loaded.bindings {
        let Some(v) = broker.vhost(&vhost) else {
            skip(&mut report, "binding", &vhost, b.source.as_str(), "no such vhost");
            continue;
        };
        let dest = match b.dest_kind {
            DestKind::Queue => v.queue(&b.dest).map(Dest::Queue),
            DestKind::Exchange => v.exchange(&b.dest).map(Dest::Exchange),
        };
        match (v.exchange(&b.source), dest) {
            (Some(source), Some(dest)) => {
                v.restore_binding(&source, dest, b.routing_key, b.arguments);
                report.bindings += 1;
            }
            _ => {
                // A lost deletion of one end: the binding goes too.
                durability.defs.submit(vec![(defs::binding_key(&vhost, &b), None)]);
                skip(&mut report, "binding", &vhost, b.source.as_str(), "an end is missing");
            }
        }
    }
    // Deduplication windows come back whole; keys of a window that is gone go too.
    let mut dedup_keys = std::mem::take(&mut loaded.dedup_keys);
    dedup_keys.sort_by_key(|k| k.entry.seq);
    for stored in dedup_keys {
        let dedup = match &stored.home {
            crate::dedup::Home::Exchange { vhost, name } => broker
                .vhost(vhost)
                .and_then(|v| v.exchange(name))
                .filter(|x| x.def.durable)
                .and_then(|x| x.dedup.clone()),
            crate::dedup::Home::Queue { store_id } => by_id.get(store_id).and_then(|q| q.dedup.clone()),
        };
        match dedup {
            Some(dedup) => dedup.restore(stored.key, stored.entry),
            None => {
                durability.defs.submit(vec![(stored.stored_under, None)]);
            }
        }
    }
    for (&queue_id, messages) in &recovery.queues {
        if let Some(exchange) = delayed_by_id.get(&queue_id) {
            // Waiting delayed messages are read back: their due time is in them.
            let delayed = exchange.delayed.as_ref().expect("a delayed exchange");
            for id in messages.ids.runs().into_iter().flat_map(|r| r.first..r.first + r.count) {
                match durability.load(id) {
                    Some(message) => delayed.restore(exchange, message, id),
                    None => {
                        let _ = durability.store.ack(queue_id, id);
                    }
                }
                report.messages += 1;
            }
            continue;
        }
        let Some(q) = by_id.get(&queue_id) else {
            // The queue's deletion reached the definitions but not the log.
            let _ = durability.store.purge(queue_id, u64::MAX);
            continue;
        };
        // Bodies stay on disk: the queue holds runs of ids and reads each body when it
        // delivers it. Messages up to the delivered marker come back redelivered.
        let marker = messages.delivered_up_to;
        for run in messages.ids.runs() {
            let last = run.first + run.count - 1;
            let before = if run.first <= marker { marker.min(last) - run.first + 1 } else { 0 };
            q.restore_paged(run.first, before, true);
            q.restore_paged(run.first + before, run.count - before, false);
            report.messages += run.count;
        }
    }
    report.duration = started.elapsed();
    report
}

fn skip(report: &mut RestoreReport, what: &str, vhost: &str, name: &str, why: &str) {
    tracing::warn!(vhost, name, why, "not restoring a durable {what}");
    report.skipped_definitions += 1;
}
