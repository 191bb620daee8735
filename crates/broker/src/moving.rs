//! Moving messages out of a queue (dead-letter queue replay): to the queue each one died in
//! (from its `x-death` history) or through an exchange, filtered by death reason, atomically per
//! message. A persistent message of a durable queue moves with one store record that writes the
//! copy and settles the original together, so a crash in the middle of a move neither loses nor
//! doubles a message; the copy is enqueued, and the original forgotten, only once that record is
//! durable. Moves run in batches that share fsyncs.

use crate::exchange::Exchange;
use crate::queue::Queue;
use crate::route;
use crate::VHost;
use amqp_codec::{FieldTable, FieldValue, ShortStr};
use std::sync::Arc;
use tokio::sync::oneshot;
use warren_core::dead_letter::headers_of;
use warren_core::{AmqpError, Entry, Message};

/// Where moved messages go.
#[derive(Debug, Clone)]
pub enum MoveTarget {
    /// Back to the queue each message was dead-lettered from (`x-death`), with the exchange
    /// and routing key it was first published with; a message its contract dead-lettered goes
    /// back through that exchange, checked against the contract again.
    Source,
    /// Through `exchange`, with `routing_key` or, if `None`, each message's own.
    Exchange { exchange: String, routing_key: Option<String> },
}

/// What to move.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub target: MoveTarget,
    /// Most messages to move.
    pub max: usize,
    /// Only messages whose last death has this reason (`rejected`, `expired`, `maxlen`, ...).
    pub reason: Option<String>,
    /// Only these messages (their `seq`, as a browse shows it); at most [`MAX_SELECTED`].
    pub only: Option<std::collections::HashSet<u64>>,
}

/// Most messages one move may name one by one.
pub const MAX_SELECTED: usize = 1000;

/// What a move did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MoveReport {
    pub moved: usize,
    /// Messages left where they were: no `x-death` naming a queue that exists (to source), or
    /// routed nowhere (through an exchange), or a store refusal.
    pub not_moved: usize,
}

/// Most messages one request may move, and looked at per batch.
pub const MAX_MOVE: usize = 100_000;
const BATCH: usize = 256;
const MAX_SCAN_PER_BATCH: usize = 4096;
/// Looked at per batch for messages chosen by seq (each look holds the queue's lock).
const MAX_SCAN_FOR_CHOSEN: usize = 16_384;

/// The newest `x-death` entry of a message, if any.
fn last_death(message: &Message) -> Option<FieldTable> {
    let headers = headers_of(&message.properties)?;
    match headers.get("x-death") {
        Some(FieldValue::Array(deaths)) => deaths.first().and_then(FieldValue::as_table).cloned(),
        _ => None,
    }
}

fn text(table: &FieldTable, key: &str) -> Option<String> {
    table.get(key).and_then(FieldValue::as_str).map(str::to_owned)
}

/// Why `message` was last dead-lettered, from its `x-death` history.
pub fn last_death_reason(message: &Message) -> Option<String> {
    last_death(message).and_then(|d| text(&d, "reason"))
}

/// The first routing key a death entry records (the one the message was published with).
fn first_routing_key(death: &FieldTable) -> Option<String> {
    match death.get("routing-keys") {
        Some(FieldValue::Array(keys)) => keys.first().and_then(FieldValue::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The queues `copy` reaches through `ex` with `key`, never the queue being emptied (the move
/// would find its copies again).
fn routed_elsewhere(
    vhost: &VHost,
    ex: &Arc<Exchange>,
    key: &str,
    copy: &Message,
    from: &Arc<Queue>,
) -> Vec<Arc<Queue>> {
    let mut targets = route::queues_for(vhost, ex, &[key], copy);
    targets.retain(|q| !Arc::ptr_eq(q, from));
    targets
}

/// Whether `message` died last for `reason` (any message when there is no filter).
fn died_for(message: &Message, reason: Option<&str>) -> bool {
    let Some(reason) = reason else { return true };
    last_death_reason(message).as_deref() == Some(reason)
}

/// One message on its way: its copy and where it goes.
struct Planned {
    entry: Entry,
    copy: Arc<Message>,
    targets: Vec<Arc<Queue>>,
}

impl VHost {
    /// Moves messages of `from` as `req` says; answers once every moved copy is durable.
    pub async fn move_messages(&self, from: &Arc<Queue>, req: MoveRequest) -> Result<MoveReport, AmqpError> {
        if let MoveTarget::Exchange { exchange, .. } = &req.target {
            self.exchange(exchange)
                .ok_or_else(|| AmqpError::not_found(format!("no exchange '{exchange}' in vhost '{}'", self.name)))?;
        }
        let max = req.max.min(MAX_MOVE).min(req.only.as_ref().map_or(MAX_MOVE, |o| o.len()));
        let mut report = MoveReport::default();
        let mut skipped = 0usize;
        while report.moved < max {
            let reason = req.reason.as_deref();
            // Those that cannot be moved are put back and passed over by the next batches.
            let only = req.only.as_ref();
            let wanted = |seq: u64, m: &Message| only.is_none_or(|o| o.contains(&seq)) && died_for(m, reason);
            let want = (max - report.moved).min(BATCH);
            // Chosen messages were seen by a browse (at most its 1,000 from the head), but others
            // may have been requeued in front of them since: look further for them.
            let window = if only.is_some() { MAX_SCAN_FOR_CHOSEN } else { MAX_SCAN_PER_BATCH };
            let entries = from.take_for_move(skipped + want, skipped + window, wanted);
            if entries.len() <= skipped {
                from.not_moved(entries.iter().map(|e| e.seq));
                break;
            }
            let (mut plans, mut unplaced) = (Vec::new(), Vec::new());
            for (i, entry) in entries.into_iter().enumerate() {
                if i < skipped {
                    unplaced.push(entry.seq);
                    continue;
                }
                match self.plan(from, &req.target, entry) {
                    Ok(plan) => plans.push(plan),
                    Err(entry) => {
                        unplaced.push(entry.seq);
                        skipped += 1;
                        report.not_moved += 1;
                    }
                }
            }
            let outcomes = self.carry_out(from, plans).await;
            report.moved += outcomes.iter().filter(|ok| **ok).count();
            let failed = outcomes.iter().filter(|ok| !**ok).count();
            report.not_moved += failed;
            skipped += failed;
            from.not_moved(unplaced);
        }
        Ok(report)
    }

    /// The copy of `entry` and its destination queues; the entry back if it goes nowhere.
    fn plan(&self, from: &Arc<Queue>, target: &MoveTarget, entry: Entry) -> Result<Planned, Entry> {
        let m = &entry.message;
        let now_ms = self.timers().now_ms();
        let (copy, targets) = match target {
            MoveTarget::Source => {
                let Some(death) = last_death(m) else { return Err(entry) };
                if death.get("queue").is_none() && text(&death, "reason").as_deref() == Some("contract") {
                    return match self.recheck(from, m, &death) {
                        Some((copy, targets)) => Ok(Planned { entry, copy: Arc::new(copy.at(now_ms)), targets }),
                        None => Err(entry),
                    };
                }
                let Some(queue) = text(&death, "queue").and_then(|q| self.queue(&q)) else { return Err(entry) };
                if Arc::ptr_eq(&queue, from) {
                    return Err(entry);
                }
                let exchange = text(&death, "exchange").unwrap_or_default();
                let routing_key = first_routing_key(&death).unwrap_or_else(|| queue.name.to_string());
                let copy = Message::new(
                    ShortStr::from(exchange.as_str()),
                    ShortStr::from(routing_key.as_str()),
                    m.properties.clone(),
                    m.body.clone(),
                );
                (copy, vec![queue])
            }
            MoveTarget::Exchange { exchange, routing_key } => {
                let Some(ex) = self.exchange(exchange) else { return Err(entry) };
                let key = routing_key.clone().unwrap_or_else(|| m.routing_key.to_string());
                let copy = Message::new(
                    ex.def.name.clone(),
                    ShortStr::from(key.as_str()),
                    m.properties.clone(),
                    m.body.clone(),
                );
                let targets = routed_elsewhere(self, &ex, &key, &copy, from);
                (copy, targets)
            }
        };
        if targets.is_empty() {
            return Err(entry);
        }
        let copy = Arc::new(copy.at(now_ms));
        Ok(Planned { entry, copy, targets })
    }

    /// A contract's dead letter goes back through the exchange it was published to, checked
    /// again (its contract may have a new version, or the message was fixed): the copy and
    /// its queues, or `None` if it still breaks the contract or routes nowhere.
    fn recheck(&self, from: &Arc<Queue>, m: &Message, death: &FieldTable) -> Option<(Message, Vec<Arc<Queue>>)> {
        let exchange = text(death, "exchange")?;
        let ex = self.exchange(&exchange)?;
        let key = first_routing_key(death)?;
        let mut props = m.decode_properties()?;
        if let Some(headers) = props.headers.as_mut() {
            headers.remove(crate::contracts::CONTRACT_HEADER);
            headers.remove(crate::contracts::VIOLATIONS_HEADER);
        }
        let copy = Message::new(ex.def.name.clone(), ShortStr::from(key.as_str()), props.to_raw(), m.body.clone());
        let copy = self.contracts().check(&self.name, &exchange, Arc::new(copy)).ok()?;
        let targets = routed_elsewhere(self, &ex, &key, &copy, from);
        (!targets.is_empty()).then(|| (Arc::unwrap_or_clone(copy), targets))
    }

    /// Writes every planned copy (together with the settling of its original, when both ends
    /// keep it on disk), waits for the disk, then enqueues the copies and forgets the originals;
    /// a copy the store refused leaves its original where it was. One outcome per plan.
    async fn carry_out(&self, from: &Arc<Queue>, plans: Vec<Planned>) -> Vec<bool> {
        let mut waits = Vec::with_capacity(plans.len());
        for plan in &plans {
            let persistent = amqp_codec::raw_properties::delivery_mode(&plan.copy.properties) == Some(2);
            let durable: Vec<u64> = plan.targets.iter().filter_map(|q| q.durable_store_id()).collect();
            let durability = match self.durability() {
                Some(d) if persistent && !durable.is_empty() => d,
                // Nothing to write: the copy lives in memory only, as the original would.
                _ => {
                    waits.push(None);
                    continue;
                }
            };
            let (tx, rx) = oneshot::channel();
            let done = |id: u64| {
                move |ok: bool| {
                    let _ = tx.send(ok.then_some(id));
                }
            };
            let source = from.durable_store_id().zip(plan.entry.stored);
            let written = match source {
                Some(original) => durability.append_settling(vec![original], &durable, &plan.copy, done).map(|_| true),
                None => durability.append(&durable, &plan.copy, done).map(|_| false),
            };
            waits.push(Some((written, rx)));
        }
        let mut outcomes = Vec::with_capacity(plans.len());
        for (plan, wait) in plans.into_iter().zip(waits) {
            let (stored, settled_in_store) = match wait {
                None => (None, false),
                Some((None, _)) => {
                    from.not_moved([plan.entry.seq]);
                    outcomes.push(false);
                    continue;
                }
                Some((Some(settled), rx)) => match rx.await {
                    Ok(Some(id)) => (Some(id), settled),
                    _ => {
                        from.not_moved([plan.entry.seq]);
                        outcomes.push(false);
                        continue;
                    }
                },
            };
            for q in &plan.targets {
                q.enqueue(plan.copy.clone(), stored.filter(|_| q.persists()));
            }
            from.moved(plan.entry.seq, settled_in_store);
            outcomes.push(true);
        }
        outcomes
    }
}
