//! Consumers and the contract between a queue and whatever delivers its messages (an AMQP channel
//! today, an HTTP push subscription later): the queue offers, the sink decides if it has credit.

use crate::Queue;
use amqp_codec::ShortStr;
use std::sync::Arc;
use warren_core::{Entry, Message};

/// What happened to an offer of one message to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Delivered,
    /// The consumer (or its channel, or its socket) cannot take more now; the sink will call
    /// `Queue::dispatch` when that changes.
    NoCredit,
    /// `take` returned nothing.
    Empty,
}

/// Hands the sink the next message; the queue has already recorded it as unacked when the consumer
/// acknowledges manually.
pub type Take<'a> = &'a mut dyn FnMut() -> Option<Entry>;

pub trait ConsumerSink: Send + Sync {
    /// Deliver at most one message to `consumer` if it has credit; `now_ms` is the broker's time
    /// of this dispatch round. Called with the queue locked, so it must not call back into the
    /// queue.
    fn offer(&self, consumer: &Consumer, queue: &Arc<Queue>, now_ms: u64, take: Take<'_>) -> Offer;
    /// Deliver a direct reply-to message (no queue, no acknowledgement).
    fn deliver_reply(&self, consumer: &Consumer, message: &Arc<Message>);
    /// The broker cancelled this consumer (its queue was deleted).
    fn cancelled_by_broker(&self, consumer: &Consumer);
}

pub struct Consumer {
    pub tag: ShortStr,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority`: consumers with a higher priority get messages first while they have credit.
    pub priority: i32,
    /// Identity of the owning channel (connection id and channel number), so a tag is unique per channel.
    pub owner: (u64, u16),
    pub sink: Arc<dyn ConsumerSink>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tag", &self.tag)
            .field("no_ack", &self.no_ack)
            .field("owner", &self.owner)
            .finish()
    }
}
