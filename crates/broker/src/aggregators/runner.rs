//! One running aggregator: a consumer of its queue with credit for `max_groups x max_parts`
//! parts, and a task that gathers what it is given into groups (`core::aggregate`), checks a
//! predicate transform if it has one, and publishes each complete group's combined message.
//! The parts stay unacked in their queue until that message is written: in the same store
//! record as their acks (`VHost::publish_settling`), so a crash leaves the group to be
//! gathered again or done, never both. A group incomplete at its deadline, a part without a
//! key, a group over its bounds, or a combined message that cannot be made or published have
//! their parts dead-lettered by the queue (reasons `aggregate_timeout`, `aggregate_failed`).

use super::{AggregatorDef, CompleteWhen};
use crate::consumer::{Consumer, ConsumerSink, Offer, Take};
use crate::message_view::MessageView;
use crate::timers::{Tick, Timers};
use crate::transforms::{view, TransformBook};
use crate::{Broker, Queue, VHost};
use amqp_codec::{BasicProperties, FieldValue, ShortStr};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, watch, Notify};
use warren_core::aggregate::{Added, Group, Groups};
use warren_core::dead_letter::Reason;
use warren_core::filter::{self, Path};
use warren_core::{split, Entry, Message};

/// Headers of a combined message.
pub const AGGREGATOR_HEADER: &str = "x-aggregator";
pub const KEY_HEADER: &str = "x-aggregate-key";
pub const COUNT_HEADER: &str = "x-aggregate-count";

/// What an aggregator shows: its state and counters.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// `running`, or why it is not.
    pub state: String,
    /// Messages taken from the queue.
    pub parts_in: u64,
    /// Combined messages published.
    pub aggregated: u64,
    /// Groups (or single parts) dead-lettered as `aggregate_failed`.
    pub failed: u64,
    /// Groups dead-lettered as `aggregate_timeout`.
    pub timed_out: u64,
    /// Parts that came after their group was done (acked, not combined again).
    pub late: u64,
    pub groups_open: usize,
    pub parts_held: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    parts_in: AtomicU64,
    aggregated: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
    late: AtomicU64,
}

/// The consumer side: hands parts to the task while it holds fewer than its credit.
struct Sink {
    credit: usize,
    in_hand: AtomicUsize,
    to_task: mpsc::UnboundedSender<Entry>,
    stop: watch::Sender<bool>,
}

impl ConsumerSink for Sink {
    fn offer(&self, _: &Consumer, _: &Arc<Queue>, _now_ms: u64, take: Take<'_>) -> Offer {
        if *self.stop.borrow() || self.in_hand.load(Ordering::Acquire) >= self.credit {
            return Offer::NoCredit;
        }
        let Some(entry) = take() else { return Offer::Empty };
        self.in_hand.fetch_add(1, Ordering::AcqRel);
        let _ = self.to_task.send(entry);
        Offer::Delivered
    }

    fn deliver_reply(&self, _: &Consumer, _: &Arc<Message>) {}

    fn cancelled_by_broker(&self, _: &Consumer) {
        // Its queue was deleted: the runner stops (the definition stays).
        self.stop.send_replace(true);
    }
}

pub struct Runner {
    def: AggregatorDef,
    key_path: Path,
    groups: Mutex<Groups<Entry>>,
    vhost: Weak<VHost>,
    queue: Arc<Queue>,
    consumer: Arc<Consumer>,
    sink: Arc<Sink>,
    transforms: Arc<TransformBook>,
    timers: Arc<Timers>,
    wake: Notify,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    stopped: AtomicBool,
}

impl Tick for Runner {
    fn tick(self: Arc<Self>, _now_ms: u64) {
        self.wake.notify_one();
    }
}

/// Consumer owners of aggregators: apart from connections' (the top bits).
static NEXT_OWNER: AtomicU64 = AtomicU64::new(1);

impl Runner {
    /// Attaches an aggregator to its queue and starts its task (on the current runtime).
    pub(super) fn start(broker: &Broker, def: &AggregatorDef) -> Result<Arc<Runner>, String> {
        let key_path = def.check()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err("not started yet".into());
        }
        let vhost = broker.vhost(&def.vhost).ok_or_else(|| format!("no vhost '{}'", def.vhost))?;
        let queue = vhost.queue(&def.queue).ok_or_else(|| format!("no queue '{}'", def.queue))?;
        let (to_task, parts) = mpsc::unbounded_channel();
        let sink = Arc::new(Sink {
            credit: def.max_groups.saturating_mul(def.max_parts),
            in_hand: AtomicUsize::new(0),
            to_task,
            stop: watch::channel(false).0,
        });
        let owner = (1 << 62 | NEXT_OWNER.fetch_add(1, Ordering::Relaxed), 0);
        let consumer = Arc::new(Consumer {
            tag: format!("warren.aggregator.{}", def.name).as_str().into(),
            no_ack: false,
            exclusive: false,
            priority: 0,
            owner,
            sink: sink.clone(),
        });
        let runner = Arc::new(Runner {
            def: def.clone(),
            key_path,
            groups: Mutex::new(Groups::new(def.completion(), def.limits())),
            vhost: Arc::downgrade(&vhost),
            queue: queue.clone(),
            consumer: consumer.clone(),
            sink,
            transforms: broker.transform_book().clone(),
            timers: broker.timers().clone(),
            wake: Notify::new(),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            stopped: AtomicBool::new(false),
        });
        queue.add_consumer(consumer, || {}).map_err(|e| e.text.to_string())?;
        tokio::spawn(runner.clone().run(parts));
        Ok(runner)
    }

    /// Stops the task; the parts it holds go back to the queue.
    pub(super) fn stop(&self) {
        self.sink.stop.send_replace(true);
    }

    pub fn figures(&self) -> Figures {
        let c = &self.counters;
        let (groups_open, parts_held) = {
            let groups = self.groups.lock();
            (groups.len(), groups.parts_held())
        };
        let state = if self.stopped.load(Ordering::Acquire) || *self.sink.stop.borrow() {
            "stopped: its queue was deleted".to_owned()
        } else {
            "running".to_owned()
        };
        Figures {
            state,
            parts_in: c.parts_in.load(Ordering::Relaxed),
            aggregated: c.aggregated.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            timed_out: c.timed_out.load(Ordering::Relaxed),
            late: c.late.load(Ordering::Relaxed),
            groups_open,
            parts_held,
            last_error: self.last_error.lock().clone(),
        }
    }

    async fn run(self: Arc<Self>, mut parts: mpsc::UnboundedReceiver<Entry>) {
        let mut stop = self.sink.stop.subscribe();
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            tokio::select! {
                biased;
                _ = stop.changed() => continue,
                _ = self.wake.notified() => self.expire(),
                Some(entry) = parts.recv() => self.take_part(entry).await,
            }
        }
        self.stopped.store(true, Ordering::Release);
        // What it holds goes back to the queue, to be gathered again by whoever comes next.
        self.queue.remove_consumer(self.consumer.owner, &self.consumer.tag);
        let mut seqs: Vec<u64> =
            self.groups.lock().drain().into_iter().flat_map(Group::into_all).map(|e| e.seq).collect();
        while let Ok(entry) = parts.try_recv() {
            seqs.push(entry.seq);
        }
        self.queue.requeue(seqs);
    }

    async fn take_part(self: &Arc<Self>, entry: Entry) {
        self.counters.parts_in.fetch_add(1, Ordering::Relaxed);
        let Some(key) = key_of(&self.key_path, &entry.message) else {
            let error = format!("no correlation key at {}", self.def.correlate_by);
            return self.fail(vec![entry], Reason::AggregateFailed, error);
        };
        let (index, count) = split_place(&entry.message);
        let now_ms = self.timers.now_ms();
        let added = self.groups.lock().add(&key, index, count, entry, now_ms);
        match added {
            Added::Open => {
                let opened =
                    self.groups.lock().get(&key).filter(|g| g.len() + g.duplicates.len() == 1).map(|g| g.deadline_ms);
                if let Some(deadline_ms) = opened {
                    self.timers.schedule(deadline_ms, self);
                }
                if let CompleteWhen::Transform(name) = &self.def.complete_when {
                    self.check_predicate(&key, name).await;
                }
            }
            Added::Complete(group) => self.finish(group).await,
            Added::Overflow(group) => {
                let error = format!("group '{key}' has more than {} parts", self.def.max_parts);
                self.fail(group.into_all(), Reason::AggregateFailed, error);
            }
            Added::NoRoom(entry) => {
                let error = format!("{} groups are open, the most allowed", self.def.max_groups);
                self.fail(vec![entry], Reason::AggregateFailed, error);
            }
            Added::Late(entry) => {
                self.counters.late.fetch_add(1, Ordering::Relaxed);
                self.settled(vec![entry]);
            }
        }
    }

    /// Dead-letters the groups past their deadline.
    fn expire(self: &Arc<Self>) {
        let expired = self.groups.lock().expire(self.timers.now_ms());
        for group in expired {
            self.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            let error = format!("group '{}' incomplete after {} ms", group.key, self.def.timeout_ms);
            *self.last_error.lock() = Some(error);
            self.settled_as(group.into_all(), Reason::AggregateTimeout);
        }
    }

    /// Runs the predicate transform `name` over group `key`; completes it if it says `true`.
    async fn check_predicate(self: &Arc<Self>, key: &str, name: &str) {
        let input = {
            let groups = self.groups.lock();
            let Some(group) = groups.get(key) else { return };
            group_view(key, &group.parts())
        };
        let outcome = match (input, self.transforms.get(&self.def.vhost, name)) {
            (Err(e), _) => Err(e),
            (_, None) => Err(format!("no transform '{name}' in vhost '{}'", self.def.vhost)),
            (Ok(input), Some(transform)) => self.transforms.run(&transform, input).await.map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(outputs) if outputs == [Value::Bool(true)] => {
                let group = self.groups.lock().complete(key);
                if let Some(group) = group {
                    self.finish(group).await;
                }
            }
            Ok(_) => {}
            Err(error) => {
                let group = self.groups.lock().take(key);
                if let Some(group) = group {
                    self.fail(group.into_all(), Reason::AggregateFailed, format!("complete_when: {error}"));
                }
            }
        }
    }

    /// Publishes the combined message of a complete group; its parts are acked once that is
    /// written (in the same record as their acks), or dead-lettered if it cannot be.
    async fn finish(self: &Arc<Self>, group: Group<Entry>) {
        let combined = match self.combine(&group).await {
            Ok(message) => message,
            Err(error) => return self.fail(group.into_all(), Reason::AggregateFailed, error),
        };
        let parts = group.into_all();
        let Some(vhost) = self.vhost.upgrade() else { return };
        let settles: Vec<(u64, u64)> = match self.queue.durable_store_id() {
            Some(q) => parts.iter().filter_map(|e| e.stored.map(|id| (q, id))).collect(),
            None => Vec::new(),
        };
        let (durable, written) = tokio::sync::oneshot::channel::<bool>();
        let on_durable = Box::new(move |ok: bool| {
            let _ = durable.send(ok);
        });
        let routed = match vhost.publish_settling(&self.def.exchange, Arc::new(combined), settles, on_durable) {
            Ok(routed) => routed,
            Err(e) => return self.fail(parts, Reason::AggregateFailed, e.text.to_string()),
        };
        if routed.queues == 0 && !routed.deduplicated {
            let error = format!("the combined message was routed to no queue by exchange '{}'", self.def.exchange);
            return self.fail(parts, Reason::AggregateFailed, error);
        }
        match routed.confirm {
            crate::vhost::Confirm::Now => self.published(parts, true),
            crate::vhost::Confirm::Refused => self.published(parts, false),
            crate::vhost::Confirm::WhenDurable => {
                let runner = self.clone();
                tokio::spawn(async move { runner.published(parts, written.await.unwrap_or(false)) });
            }
        }
    }

    fn published(&self, parts: Vec<Entry>, ok: bool) {
        if ok {
            self.counters.aggregated.fetch_add(1, Ordering::Relaxed);
            self.settled(parts);
        } else {
            self.fail(parts, Reason::AggregateFailed, "the combined message could not be stored".into());
        }
    }

    /// The combined message of `group`: a transform's, or the JSON array of the parts' bodies.
    async fn combine(&self, group: &Group<Entry>) -> Result<Message, String> {
        let parts = group.parts();
        let first = &parts.first().ok_or("an empty group")?.message;
        let persistent =
            parts.iter().any(|e| amqp_codec::raw_properties::delivery_mode(&e.message.properties) == Some(2));
        let mut message = match &self.def.combine {
            None => {
                let bodies: Vec<Value> = parts.iter().map(|e| body_json(&e.message.body)).collect();
                let body = Bytes::from(serde_json::to_vec(&bodies).map_err(|e| e.to_string())?);
                let first_props = first.decode_properties().unwrap_or_default();
                let props = BasicProperties {
                    content_type: Some(ShortStr::from_static("application/json")),
                    correlation_id: first_props.correlation_id,
                    ..Default::default()
                };
                Message::new(first.exchange.clone(), first.routing_key.clone(), props.to_raw(), body)
            }
            Some(name) => {
                let transform = self
                    .transforms
                    .get(&self.def.vhost, name)
                    .ok_or_else(|| format!("no transform '{name}' in vhost '{}'", self.def.vhost))?;
                let input = group_view(&group.key, &parts)?;
                let outputs = self.transforms.run(&transform, input).await.map_err(|e| format!("combine: {e}"))?;
                let [output] = outputs.as_slice() else {
                    return Err(format!("combine: the transform made {} messages, not one", outputs.len()));
                };
                view::output_message(first, output).map_err(|e| format!("combine: {e}"))?
            }
        };
        let mut props = message.decode_properties().unwrap_or_default();
        props.delivery_mode = Some(if persistent { 2 } else { 1 });
        if props.message_id.is_none() {
            props.message_id = ShortStr::try_from_string(format!("{}/{}", self.def.name, group.key)).ok();
        }
        let headers = props.headers.get_or_insert_with(Default::default);
        headers.insert(AGGREGATOR_HEADER, text(&self.def.name));
        headers.insert(KEY_HEADER, text(&group.key));
        headers.insert(COUNT_HEADER, FieldValue::I64(parts.len() as i64));
        message = message.with_properties(&props);
        if let Some(key) = &self.def.routing_key {
            message.routing_key = ShortStr::try_from_string(key.clone()).map_err(|_| "routing_key too long")?;
        }
        message.exchange =
            ShortStr::try_from_string(self.def.exchange.clone()).map_err(|_| "exchange name too long")?;
        Ok(message.at(self.timers.now_ms()))
    }

    /// Dead-letters `parts` for `reason`, noting `error`.
    fn fail(&self, parts: Vec<Entry>, reason: Reason, error: String) {
        tracing::debug!(vhost = %self.def.vhost, aggregator = %self.def.name, %error, "aggregation failed");
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error);
        self.settled_as(parts, reason);
    }

    fn settled_as(&self, parts: Vec<Entry>, reason: Reason) {
        let n = parts.len();
        self.queue.dead_letter_delivered(parts.into_iter().map(|e| e.seq), reason);
        self.gave_back(n);
    }

    /// Acks `parts` (their store acks are already in the combined message's record, when it
    /// has one; these repeat them harmlessly).
    fn settled(&self, parts: Vec<Entry>) {
        let n = parts.len();
        self.queue.ack(parts.into_iter().map(|e| e.seq));
        self.gave_back(n);
    }

    fn gave_back(&self, n: usize) {
        self.sink.in_hand.fetch_sub(n, Ordering::AcqRel);
        self.queue.dispatch();
    }
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

/// The correlation key of `message` at `path`, as text; `None` if it has none.
fn key_of(path: &Path, message: &Message) -> Option<String> {
    let view = MessageView::new(message);
    match path.read(&view)? {
        filter::Value::Str(s) => Some(s.to_owned()),
        filter::Value::Int(i) => Some(i.to_string()),
        filter::Value::Float(f) => Some(f.to_string()),
        filter::Value::Bool(b) => Some(b.to_string()),
        filter::Value::Null | filter::Value::Other => None,
    }
}

/// A part's `x-split-index` and `x-split-count`, if it has them.
fn split_place(message: &Message) -> (Option<u64>, Option<u64>) {
    let Some(headers) = message.decode_properties().and_then(|p| p.headers) else { return (None, None) };
    let int = |name: &str| headers.get(name).and_then(FieldValue::as_i64).and_then(|n| u64::try_from(n).ok());
    (int(split::INDEX_HEADER), int(split::COUNT_HEADER))
}

/// A part's body as JSON: parsed, or (not JSON) as text.
fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// What a predicate or combine transform reads: `{key, parts}`, each part as a transform sees
/// a message.
fn group_view(key: &str, parts: &[&Entry]) -> Result<Value, String> {
    let parts = parts.iter().map(|e| view::message_view(&e.message)).collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::json!({"key": key, "parts": parts}))
}
