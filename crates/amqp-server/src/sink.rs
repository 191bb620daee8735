//! The delivery side of one channel, shared with the queues that deliver to it: delivery tags,
//! unacknowledged messages, prefetch credit (per consumer and per channel, RabbitMQ's `global`),
//! channel.flow, and encoding basic.deliver into the connection's outbound buffer.

use crate::outbound::Outbound;
use crate::unacked::ByTag;
use amqp_codec::{BasicCancel, BasicDeliver, BasicGetOk, Method, ShortStr, BASIC_CLASS_ID};
use bytes::BytesMut;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use warren_broker::stats::{Counted, MessageCounters, Totals};
use warren_broker::{Consumer, ConsumerSink, Offer, Queue, Take, Timers};
use warren_core::{Entry, Message};

/// A delivered message the client has yet to settle.
pub struct Unacked {
    pub queue: Arc<Queue>,
    pub seq: u64,
    pub consumer_tag: Option<ShortStr>,
    /// When it was delivered (by the broker's clock), for the acknowledgement timeout.
    pub delivered_at_ms: u64,
    /// How long the consumer may hold it unacknowledged (0 = no limit).
    pub timeout_ms: u64,
}

/// A consumer registered on this channel.
pub struct ChannelConsumer {
    pub consumer: Arc<Consumer>,
    /// `None` for the direct reply-to pseudo-consumer.
    pub queue: Option<Arc<Queue>>,
    /// Per-consumer prefetch (basic.qos global=false at consume time); 0 = unlimited.
    pub prefetch: u16,
    pub unacked: u32,
}

impl ChannelConsumer {
    pub fn new(consumer: Arc<Consumer>, queue: Option<Arc<Queue>>, prefetch: u16) -> ChannelConsumer {
        ChannelConsumer { consumer, queue, prefetch, unacked: 0 }
    }
}

#[derive(Default)]
pub struct DeliveryState {
    next_tag: u64,
    pub unacked: ByTag<Unacked>,
    /// By tag; Fx hashing because every delivery and ack looks its consumer up.
    pub consumers: FxHashMap<ShortStr, ChannelConsumer>,
    /// basic.qos global=true; 0 = unlimited.
    pub channel_prefetch: u16,
    /// basic.qos global=false, applied to consumers created afterwards.
    pub consumer_prefetch: u16,
    pub closed: bool,
    /// confirm.select or tx.select was seen (shown by the management API).
    pub confirm: bool,
    pub transactional: bool,
    /// Delivery tags whose acknowledgement timed out (their messages went back to the queue): a
    /// late ack or nack of one is ignored rather than being an unknown tag.
    pub timed_out: BTreeSet<u64>,
    /// When the timer will next look for timed-out deliveries.
    pub timeout_check_ms: Option<u64>,
}

/// Timed-out delivery tags remembered per channel; older ones are forgotten past this (a very
/// late ack of one is then a 406 unknown delivery tag).
const MAX_TIMED_OUT_TAGS: usize = 65_536;

impl DeliveryState {
    fn next_delivery_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Remove settled tags (`multiple` = everything up to `tag`; tag 0 with multiple = all).
    /// `None` if `tag` is unknown: as in RabbitMQ, a multiple settlement names a tag that is
    /// itself unsettled. Tags that timed out are settled as nothing.
    pub fn settle(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        let taken: Vec<Unacked> = if multiple {
            if tag != 0 && !self.unacked.contains(tag) && !self.timed_out.contains(&tag) {
                return None;
            }
            let upto = if tag == 0 { u64::MAX } else { tag };
            let later = self.timed_out.split_off(&upto.saturating_add(1));
            self.timed_out = later;
            self.unacked.take_upto(upto)
        } else {
            match self.unacked.remove(tag) {
                Some(u) => vec![u],
                None if self.timed_out.remove(&tag) => Vec::new(),
                None => return None,
            }
        };
        for u in &taken {
            if let Some(c) = u.consumer_tag.as_ref().and_then(|t| self.consumers.get_mut(t)) {
                c.unacked = c.unacked.saturating_sub(1);
            }
        }
        Some(taken)
    }

    /// Takes every delivery of consumer `tag` out of the unacked set, remembering their tags
    /// as timed out.
    pub fn take_timed_out(&mut self, tag: &ShortStr) -> Vec<Unacked> {
        let mut taken = Vec::new();
        for (t, u) in self.unacked.take_where(|u| u.consumer_tag.as_ref() == Some(tag)) {
            taken.push(u);
            self.timed_out.insert(t);
        }
        while self.timed_out.len() > MAX_TIMED_OUT_TAGS {
            self.timed_out.pop_first();
        }
        taken
    }

    pub fn take_all_unacked(&mut self) -> Vec<Unacked> {
        for c in self.consumers.values_mut() {
            c.unacked = 0;
        }
        self.timed_out.clear();
        self.unacked.take_all()
    }
}

pub struct ChannelSink {
    pub channel: u16,
    pub out: Arc<Outbound>,
    pub state: Mutex<DeliveryState>,
    /// The client asked for broker-initiated basic.cancel (capability consumer_cancel_notify).
    pub(crate) cancel_notify: bool,
    pub(crate) timers: Arc<Timers>,
    /// The broker's acknowledgement timeout, for queues without `x-consumer-timeout`.
    consumer_timeout_ms: u64,
    /// Itself, to schedule its timeout checks with the timers.
    me: Weak<ChannelSink>,
    /// The channel's message counters: publishes, confirms, returns and acks are counted by the
    /// connection's task, deliveries and gets under `state`'s lock (one writer each).
    pub counters: MessageCounters,
}

impl warren_broker::registry::ChannelView for ChannelSink {
    fn info(&self) -> warren_broker::registry::ChannelInfo {
        let st = self.state.lock();
        warren_broker::registry::ChannelInfo {
            number: self.channel,
            confirm: st.confirm,
            transactional: st.transactional,
            prefetch_count: st.consumer_prefetch,
            global_prefetch_count: st.channel_prefetch,
            consumer_count: st.consumers.len(),
            messages_unacknowledged: st.unacked.len(),
        }
    }

    fn counters(&self) -> Totals {
        self.counters.snapshot()
    }
}

impl ChannelSink {
    pub fn new(
        channel: u16,
        out: Arc<Outbound>,
        cancel_notify: bool,
        timers: Arc<Timers>,
        consumer_timeout_ms: u64,
    ) -> Arc<ChannelSink> {
        let state = DeliveryState::default();
        Arc::new_cyclic(|me| ChannelSink {
            channel,
            out,
            state: Mutex::new(state),
            cancel_notify,
            timers,
            consumer_timeout_ms,
            me: me.clone(),
            counters: MessageCounters::default(),
        })
    }

    /// Records a manual-ack delivery of `tag` to a consumer and makes sure the timer will
    /// look at it when its acknowledgement timeout runs out.
    fn track(&self, st: &mut DeliveryState, tag: u64, queue: &Arc<Queue>, seq: u64, consumer: &Consumer, now_ms: u64) {
        let timeout_ms = queue.args().consumer_timeout_ms.unwrap_or(self.consumer_timeout_ms);
        let delivered_at_ms = if timeout_ms > 0 { now_ms } else { 0 };
        let unacked = Unacked {
            queue: queue.clone(),
            seq,
            consumer_tag: Some(consumer.tag.clone()),
            delivered_at_ms,
            timeout_ms,
        };
        st.unacked.insert(tag, unacked);
        if let Some(c) = st.consumers.get_mut(&consumer.tag) {
            c.unacked += 1;
        }
        if timeout_ms > 0 {
            let due = delivered_at_ms.saturating_add(timeout_ms);
            if st.timeout_check_ms.is_none_or(|at| due < at) {
                if let Some(me) = self.me.upgrade() {
                    self.timers.reschedule(st.timeout_check_ms, due, &me);
                }
                st.timeout_check_ms = Some(due);
            }
        }
    }

    /// basic.get-ok: record the delivery (unless no-ack) and encode it.
    pub fn deliver_get(&self, queue: &Arc<Queue>, entry: Entry, no_ack: bool, message_count: u32) {
        let mut st = self.state.lock();
        let tag = st.next_delivery_tag();
        self.counters.bump(if no_ack { Counted::GetNoAck } else { Counted::Get }, 1);
        if entry.redelivered {
            self.counters.bump(Counted::Redeliver, 1);
        }
        if !no_ack {
            // basic.get has no consumer to cancel: no acknowledgement timeout.
            let unacked =
                Unacked { queue: queue.clone(), seq: entry.seq, consumer_tag: None, delivered_at_ms: 0, timeout_ms: 0 };
            st.unacked.insert(tag, unacked);
        }
        let m = &entry.message;
        let method = Method::BasicGetOk(BasicGetOk {
            delivery_tag: tag,
            redelivered: entry.redelivered,
            exchange: m.exchange.clone(),
            routing_key: m.routing_key.clone(),
            message_count,
        });
        self.out.write(|buf| encode_content(buf, self.channel, &method, m, self.out.frame_max()));
    }

    fn has_credit(st: &DeliveryState, consumer: &Consumer) -> bool {
        if consumer.no_ack {
            return true;
        }
        if st.channel_prefetch > 0 && st.unacked.len() >= st.channel_prefetch as usize {
            return false;
        }
        match st.consumers.get(&consumer.tag) {
            Some(c) => c.prefetch == 0 || c.unacked < c.prefetch as u32,
            None => false,
        }
    }

    fn encode_deliver(&self, consumer_tag: &ShortStr, tag: u64, redelivered: bool, m: &Message) {
        let method = Method::BasicDeliver(BasicDeliver {
            consumer_tag: consumer_tag.clone(),
            delivery_tag: tag,
            redelivered,
            exchange: m.exchange.clone(),
            routing_key: m.routing_key.clone(),
        });
        self.out.write(|buf| encode_content(buf, self.channel, &method, m, self.out.frame_max()));
    }
}

/// Encode a content-bearing method: method frame, content header, body frames.
pub fn encode_content(buf: &mut BytesMut, channel: u16, method: &Method, m: &Message, frame_max: u32) {
    amqp_codec::encode_method(buf, channel, method);
    amqp_codec::encode_content_header(buf, channel, BASIC_CLASS_ID, m.body.len() as u64, &m.properties);
    amqp_codec::encode_body(buf, channel, &m.body, frame_max);
}

impl ConsumerSink for ChannelSink {
    fn offer(&self, consumer: &Consumer, queue: &Arc<Queue>, now_ms: u64, take: Take<'_>) -> Offer {
        let mut st = self.state.lock();
        if st.closed || !Self::has_credit(&st, consumer) {
            return Offer::NoCredit;
        }
        if self.out.over_watermark() {
            self.out.pause(queue);
            return Offer::NoCredit;
        }
        let Some(entry) = take() else { return Offer::Empty };
        let tag = st.next_delivery_tag();
        self.counters.bump(if consumer.no_ack { Counted::DeliverNoAck } else { Counted::Deliver }, 1);
        if entry.redelivered {
            self.counters.bump(Counted::Redeliver, 1);
        }
        if !consumer.no_ack {
            self.track(&mut st, tag, queue, entry.seq, consumer, now_ms);
        }
        drop(st);
        self.encode_deliver(&consumer.tag, tag, entry.redelivered, &entry.message);
        Offer::Delivered
    }

    fn deliver_reply(&self, consumer: &Consumer, message: &Arc<Message>) {
        let mut st = self.state.lock();
        if st.closed {
            return;
        }
        let tag = st.next_delivery_tag();
        drop(st);
        self.encode_deliver(&consumer.tag, tag, false, message);
    }

    fn cancelled_by_broker(&self, consumer: &Consumer) {
        let mut st = self.state.lock();
        if st.consumers.remove(&consumer.tag).is_none() || st.closed {
            return;
        }
        drop(st);
        if self.cancel_notify {
            let method = Method::BasicCancel(BasicCancel { consumer_tag: consumer.tag.clone(), nowait: true });
            self.out.write(|buf| amqp_codec::encode_method(buf, self.channel, &method));
        }
    }
}
