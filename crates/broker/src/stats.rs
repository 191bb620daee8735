//! Message counters for rates and metrics: per queue and per channel, as RabbitMQ's
//! `message_stats` and Prometheus counters count them. Each counter has one writer at a time
//! (the queue's lock holder, the channel's task or its delivery lock), so counting is a plain
//! load and store, no locked instruction on the publish path; readers (the management API, the
//! scraper) load them without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// What is counted, by RabbitMQ's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Messages published (into a queue, or by a channel).
    Publish,
    /// Publishes confirmed to a publisher in confirm mode.
    Confirm,
    /// Publishes that reached at least one queue.
    Routed,
    /// Unroutable publishes dropped (not mandatory).
    DropUnroutable,
    /// Unroutable mandatory publishes returned.
    ReturnUnroutable,
    /// Deliveries to consumers with manual acknowledgement.
    Deliver,
    /// Deliveries to consumers with automatic acknowledgement.
    DeliverNoAck,
    /// basic.get with manual acknowledgement.
    Get,
    /// basic.get with automatic acknowledgement.
    GetNoAck,
    /// basic.get that found nothing.
    GetEmpty,
    /// Deliveries acknowledged.
    Ack,
    /// Deliveries (or gets) of messages delivered before.
    Redeliver,
    /// Publishes received on a channel in confirm mode.
    PublishInConfirm,
}

const KINDS: usize = 13;

/// Every counted kind, in order.
pub const ALL: [Counted; KINDS] = [
    Counted::Publish,
    Counted::Confirm,
    Counted::Routed,
    Counted::DropUnroutable,
    Counted::ReturnUnroutable,
    Counted::Deliver,
    Counted::DeliverNoAck,
    Counted::Get,
    Counted::GetNoAck,
    Counted::GetEmpty,
    Counted::Ack,
    Counted::Redeliver,
    Counted::PublishInConfirm,
];

impl Counted {
    /// The field's name in RabbitMQ's `message_stats`.
    pub fn stats_name(self) -> &'static str {
        match self {
            Counted::Publish => "publish",
            Counted::Confirm => "confirm",
            Counted::Routed => "routed",
            Counted::DropUnroutable => "drop_unroutable",
            Counted::ReturnUnroutable => "return_unroutable",
            Counted::Deliver => "deliver",
            Counted::DeliverNoAck => "deliver_no_ack",
            Counted::Get => "get",
            Counted::GetNoAck => "get_no_ack",
            Counted::GetEmpty => "get_empty",
            Counted::Ack => "ack",
            Counted::Redeliver => "redeliver",
            Counted::PublishInConfirm => "publish_in_confirm",
        }
    }
}

/// Counters the HTTP transport keeps of its push subscriptions (several writers).
#[derive(Debug, Default)]
pub struct HttpStats {
    pub push_attempts: AtomicU64,
    pub push_succeeded: AtomicU64,
    pub push_dead_lettered: AtomicU64,
}

/// Counters of message tracking and its callbacks (several writers).
#[derive(Debug, Default)]
pub struct TrackingStats {
    pub tracked: AtomicU64,
    pub callback_attempts: AtomicU64,
    pub callbacks_delivered: AtomicU64,
    pub callbacks_failed: AtomicU64,
}

/// Adds one to a counter with several writers.
pub fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Counters of one queue or channel.
#[derive(Debug, Default)]
pub struct MessageCounters([AtomicU64; KINDS]);

impl MessageCounters {
    /// Adds `n`. Only for the counter's single writer (see the module's note).
    #[inline]
    pub fn bump(&self, kind: Counted, n: u64) {
        let c = &self.0[kind as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds `n` where several writers may count at once.
    pub fn add_shared(&self, kind: Counted, n: u64) {
        self.0[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Totals {
        Totals(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// Counts read at one moment, summed or subtracted as plain numbers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals([u64; KINDS]);

impl Totals {
    pub fn get(&self, kind: Counted) -> u64 {
        self.0[kind as usize]
    }

    pub fn add(&mut self, other: &Totals) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
    }

    /// How much each count grew since `earlier` (a count that went back, as after a restart of
    /// its object, counts from zero).
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals(std::array::from_fn(|i| self.0[i].checked_sub(earlier.0[i]).unwrap_or(self.0[i])))
    }

    /// Deliveries and gets of every kind (RabbitMQ's `deliver_get`).
    pub fn deliver_get(&self) -> u64 {
        [Counted::Deliver, Counted::DeliverNoAck, Counted::Get, Counted::GetNoAck].iter().map(|k| self.get(*k)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_and_name_themselves_as_rabbitmq_does() {
        let c = MessageCounters::default();
        c.bump(Counted::Publish, 3);
        c.bump(Counted::Deliver, 2);
        c.add_shared(Counted::GetNoAck, 1);
        let mut total = c.snapshot();
        total.add(&c.snapshot());
        assert_eq!((total.get(Counted::Publish), total.deliver_get()), (6, 6));
        assert_eq!(ALL.iter().map(|k| *k as usize).collect::<Vec<_>>(), (0..KINDS).collect::<Vec<_>>());
        assert_eq!(Counted::ReturnUnroutable.stats_name(), "return_unroutable");
    }
}
