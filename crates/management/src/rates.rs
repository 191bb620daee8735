//! Message rates, as RabbitMQ's `message_stats` shows them (`publish_details.rate` and so on):
//! every statistics interval a task reads the counters of every queue and channel and of the
//! node, and keeps how much each grew per second since the previous reading. Nothing on the
//! publish path: the counters are plain per-object numbers, read here without locks. The task
//! holds the API weakly and ends with it.

use crate::Mgmt;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};
use warren_broker::stats::{Counted, Totals, ALL};

/// What a reading is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The node: every transport together.
    Node,
    /// The node's AMQP channels together.
    Amqp,
    /// The node's HTTP transport.
    Http,
    Queue(String, String),
    /// A channel by its management name.
    Channel(String),
}

#[derive(Default)]
struct Readings {
    at: Option<Instant>,
    counts: HashMap<Key, Totals>,
    /// Growth per interval, and the interval's length in seconds.
    growth: HashMap<Key, Totals>,
    seconds: f64,
}

/// The rates of the last statistics interval.
#[derive(Default)]
pub struct Rates {
    readings: Mutex<Readings>,
}

/// The node's counters now: its AMQP channels' and its HTTP transport's.
pub fn node_counts(m: &Mgmt) -> (Totals, Totals) {
    (m.broker.registry().totals(), m.broker.http_counters().snapshot())
}

/// Every object's counters now.
pub fn read_all(m: &Mgmt) -> HashMap<Key, Totals> {
    let mut counts = HashMap::new();
    let (amqp, http) = node_counts(m);
    let mut node = amqp;
    node.add(&http);
    counts.insert(Key::Node, node);
    counts.insert(Key::Amqp, amqp);
    counts.insert(Key::Http, http);
    for v in m.broker.vhosts() {
        for name in v.queue_names() {
            if let Some(q) = v.queue(&name) {
                counts.insert(Key::Queue(v.name.clone(), name), q.counters.snapshot());
            }
        }
    }
    for c in m.broker.registry().connections() {
        for (info, totals) in c.channels_with_counters() {
            counts.insert(Key::Channel(crate::view::channel_name(&c, info.number)), totals);
        }
    }
    counts
}

impl Rates {
    /// Takes a reading and keeps the growth since the previous one.
    pub fn sample(&self, m: &Mgmt) {
        let counts = read_all(m);
        let now = Instant::now();
        let mut r = self.readings.lock();
        if let Some(at) = r.at {
            r.seconds = now.duration_since(at).as_secs_f64().max(1e-3);
            let growth = counts
                .iter()
                .filter_map(|(k, now)| r.counts.get(k).map(|before| (k.clone(), now.since(before))))
                .collect();
            r.growth = growth;
        }
        r.at = Some(now);
        r.counts = counts;
    }

    /// Per-second rate of `kind` for `key` over the last interval (0 before two readings).
    fn rate(&self, key: &Key, kind: Counted) -> f64 {
        let r = self.readings.lock();
        match r.growth.get(key) {
            Some(g) if r.seconds > 0.0 => (g.get(kind) as f64 / r.seconds * 10.0).round() / 10.0,
            _ => 0.0,
        }
    }

    /// RabbitMQ's `message_stats` for `counts` (now) of `key`: each of `kinds` and its
    /// `_details.rate`, and `deliver_get` with its rate.
    pub fn message_stats(&self, key: &Key, counts: &Totals, kinds: &[Counted]) -> Value {
        let mut out = Map::new();
        let mut deliver_get_rate = 0.0;
        for kind in kinds {
            let rate = self.rate(key, *kind);
            if matches!(kind, Counted::Deliver | Counted::DeliverNoAck | Counted::Get | Counted::GetNoAck) {
                deliver_get_rate += rate;
            }
            out.insert(kind.stats_name().to_owned(), json!(counts.get(*kind)));
            out.insert(format!("{}_details", kind.stats_name()), json!({"rate": rate}));
        }
        if kinds.contains(&Counted::Deliver) {
            out.insert("deliver_get".into(), json!(counts.deliver_get()));
            out.insert("deliver_get_details".into(), json!({"rate": (deliver_get_rate * 10.0).round() / 10.0}));
        }
        Value::Object(out)
    }
}

/// What a queue's `message_stats` shows.
pub const QUEUE_KINDS: &[Counted] = &[
    Counted::Publish,
    Counted::Deliver,
    Counted::DeliverNoAck,
    Counted::Get,
    Counted::GetNoAck,
    Counted::Ack,
    Counted::Redeliver,
];

/// What a channel's and the node's `message_stats` show.
pub fn channel_kinds() -> Vec<Counted> {
    ALL.iter().copied().filter(|k| *k != Counted::PublishInConfirm).collect()
}

/// Samples every `interval` while the API lives.
pub fn run(m: Weak<Mgmt>, interval: Duration) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(m) = m.upgrade() else { return };
            m.rates.sample(&m);
        }
    });
}
