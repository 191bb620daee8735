//! The delivery side of one channel, shared with the queues that deliver to it: delivery tags,
//! unacknowledged messages, prefetch credit (per consumer and per channel, RabbitMQ's `global`),
//! channel.flow, and encoding basic.deliver into the connection's outbound buffer.

use crate::outbound::Outbound;
use amqp_codec::{BasicCancel, BasicDeliver, BasicGetOk, Method, ShortStr, BASIC_CLASS_ID};
use bytes::BytesMut;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use warren_broker::{Consumer, ConsumerSink, Offer, Queue, Take};
use warren_core::{Entry, Message};

/// A delivered message the client has yet to settle.
pub struct Unacked {
    pub queue: Arc<Queue>,
    pub seq: u64,
    pub consumer_tag: Option<ShortStr>,
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

#[derive(Default)]
pub struct DeliveryState {
    next_tag: u64,
    pub unacked: BTreeMap<u64, Unacked>,
    pub consumers: HashMap<ShortStr, ChannelConsumer>,
    /// basic.qos global=true; 0 = unlimited.
    pub channel_prefetch: u16,
    /// basic.qos global=false, applied to consumers created afterwards.
    pub consumer_prefetch: u16,
    pub flow_active: bool,
    pub closed: bool,
}

impl DeliveryState {
    fn next_delivery_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Remove settled tags (`multiple` = everything up to `tag`; tag 0 with multiple = all).
    /// `None` if a single tag is unknown.
    pub fn settle(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        let taken: Vec<Unacked> = if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let keep = self.unacked.split_off(&upto.saturating_add(1));
            let taken = std::mem::replace(&mut self.unacked, keep);
            if tag != 0 && taken.is_empty() {
                return None;
            }
            taken.into_values().collect()
        } else {
            vec![self.unacked.remove(&tag)?]
        };
        for u in &taken {
            if let Some(c) = u.consumer_tag.as_ref().and_then(|t| self.consumers.get_mut(t)) {
                c.unacked = c.unacked.saturating_sub(1);
            }
        }
        Some(taken)
    }

    pub fn take_all_unacked(&mut self) -> Vec<Unacked> {
        for c in self.consumers.values_mut() {
            c.unacked = 0;
        }
        std::mem::take(&mut self.unacked).into_values().collect()
    }
}

pub struct ChannelSink {
    pub channel: u16,
    pub out: Arc<Outbound>,
    pub state: Mutex<DeliveryState>,
    /// The client asked for broker-initiated basic.cancel (capability consumer_cancel_notify).
    cancel_notify: bool,
}

impl ChannelSink {
    pub fn new(channel: u16, out: Arc<Outbound>, cancel_notify: bool) -> ChannelSink {
        let state = DeliveryState { flow_active: true, ..DeliveryState::default() };
        ChannelSink { channel, out, state: Mutex::new(state), cancel_notify }
    }

    /// basic.get-ok: record the delivery (unless no-ack) and encode it.
    pub fn deliver_get(&self, queue: &Arc<Queue>, entry: Entry, no_ack: bool, message_count: u32) {
        let mut st = self.state.lock();
        let tag = st.next_delivery_tag();
        if !no_ack {
            st.unacked.insert(tag, Unacked { queue: queue.clone(), seq: entry.seq, consumer_tag: None });
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
    fn offer(&self, consumer: &Consumer, queue: &Arc<Queue>, take: Take<'_>) -> Offer {
        let mut st = self.state.lock();
        if st.closed || !st.flow_active || !Self::has_credit(&st, consumer) {
            return Offer::NoCredit;
        }
        if self.out.over_watermark() {
            self.out.pause(queue);
            return Offer::NoCredit;
        }
        let Some(entry) = take() else { return Offer::Empty };
        let tag = st.next_delivery_tag();
        if !consumer.no_ack {
            st.unacked.insert(
                tag,
                Unacked { queue: queue.clone(), seq: entry.seq, consumer_tag: Some(consumer.tag.clone()) },
            );
            if let Some(c) = st.consumers.get_mut(&consumer.tag) {
                c.unacked += 1;
            }
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
