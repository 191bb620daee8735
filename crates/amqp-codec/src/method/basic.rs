//! Arguments of the `basic` class (class id 60), including RabbitMQ's `basic.nack`.

use bytes::{BufMut, Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_shortstr, get_u16, get_u32, get_u64, get_u8, put_bits, put_shortstr};
use crate::{CodecError, FieldTable, ShortStr};

/// `basic.qos` (60.10).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicQos {
    pub prefetch_size: u32,
    pub prefetch_count: u16,
    pub global: bool,
}

impl Args for BasicQos {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicQos { prefetch_size: get_u32(buf)?, prefetch_count: get_u16(buf)?, global: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32(self.prefetch_size);
        buf.put_u16(self.prefetch_count);
        put_bits(buf, &[self.global]);
    }
}

/// `basic.consume` (60.20).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicConsume {
    pub ticket: u16,
    pub queue: ShortStr,
    /// Empty = let the server generate a tag.
    pub consumer_tag: ShortStr,
    pub no_local: bool,
    pub no_ack: bool,
    pub exclusive: bool,
    pub nowait: bool,
    pub arguments: FieldTable,
}

impl Args for BasicConsume {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let ticket = get_u16(buf)?;
        let queue = get_shortstr(buf)?;
        let consumer_tag = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(BasicConsume {
            ticket,
            queue,
            consumer_tag,
            no_local: bit(f, 0),
            no_ack: bit(f, 1),
            exclusive: bit(f, 2),
            nowait: bit(f, 3),
            arguments: FieldTable::decode(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_shortstr(buf, &self.consumer_tag);
        put_bits(buf, &[self.no_local, self.no_ack, self.exclusive, self.nowait]);
        self.arguments.encode(buf);
    }
}

/// `basic.consume-ok` (60.21).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicConsumeOk {
    pub consumer_tag: ShortStr,
}

/// `basic.cancel-ok` (60.31).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicCancelOk {
    pub consumer_tag: ShortStr,
}

macro_rules! tag_args {
    ($t:ident) => {
        impl Args for $t {
            fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
                Ok($t { consumer_tag: get_shortstr(buf)? })
            }
            fn encode(&self, buf: &mut BytesMut) {
                put_shortstr(buf, &self.consumer_tag);
            }
        }
    };
}
tag_args!(BasicConsumeOk);
tag_args!(BasicCancelOk);

/// `basic.cancel` (60.30): sent by the client, or by RabbitMQ to a client (consumer cancel notify).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicCancel {
    pub consumer_tag: ShortStr,
    pub nowait: bool,
}

impl Args for BasicCancel {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicCancel { consumer_tag: get_shortstr(buf)?, nowait: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.consumer_tag);
        put_bits(buf, &[self.nowait]);
    }
}

/// `basic.publish` (60.40): followed by a content header and body frames.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicPublish {
    pub ticket: u16,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub mandatory: bool,
    pub immediate: bool,
}

impl Args for BasicPublish {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let ticket = get_u16(buf)?;
        let exchange = get_shortstr(buf)?;
        let routing_key = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(BasicPublish { ticket, exchange, routing_key, mandatory: bit(f, 0), immediate: bit(f, 1) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.routing_key);
        put_bits(buf, &[self.mandatory, self.immediate]);
    }
}

/// `basic.return` (60.50): an undeliverable mandatory message comes back; content follows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicReturn {
    pub reply_code: u16,
    pub reply_text: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
}

impl Args for BasicReturn {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicReturn {
            reply_code: get_u16(buf)?,
            reply_text: get_shortstr(buf)?,
            exchange: get_shortstr(buf)?,
            routing_key: get_shortstr(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.reply_code);
        put_shortstr(buf, &self.reply_text);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.routing_key);
    }
}

/// `basic.deliver` (60.60): a message for a consumer; content follows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicDeliver {
    pub consumer_tag: ShortStr,
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
}

impl Args for BasicDeliver {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicDeliver {
            consumer_tag: get_shortstr(buf)?,
            delivery_tag: get_u64(buf)?,
            redelivered: bit(get_u8(buf)?, 0),
            exchange: get_shortstr(buf)?,
            routing_key: get_shortstr(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.consumer_tag);
        buf.put_u64(self.delivery_tag);
        put_bits(buf, &[self.redelivered]);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.routing_key);
    }
}

/// `basic.get` (60.70).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicGet {
    pub ticket: u16,
    pub queue: ShortStr,
    pub no_ack: bool,
}

impl Args for BasicGet {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicGet { ticket: get_u16(buf)?, queue: get_shortstr(buf)?, no_ack: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_bits(buf, &[self.no_ack]);
    }
}

/// `basic.get-ok` (60.71): content follows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicGetOk {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub message_count: u32,
}

impl Args for BasicGetOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicGetOk {
            delivery_tag: get_u64(buf)?,
            redelivered: bit(get_u8(buf)?, 0),
            exchange: get_shortstr(buf)?,
            routing_key: get_shortstr(buf)?,
            message_count: get_u32(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.delivery_tag);
        put_bits(buf, &[self.redelivered]);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.routing_key);
        buf.put_u32(self.message_count);
    }
}

/// `basic.get-empty` (60.72) carries one reserved short string (`cluster-id`): it is read and
/// dropped on decode, and written empty on encode.
pub(crate) fn decode_get_empty(buf: &mut Bytes) -> Result<(), CodecError> {
    get_shortstr(buf).map(drop)
}

pub(crate) fn encode_get_empty(buf: &mut BytesMut) {
    buf.put_u8(0);
}

/// `basic.ack` (60.80).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicAck {
    pub delivery_tag: u64,
    pub multiple: bool,
}

impl Args for BasicAck {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicAck { delivery_tag: get_u64(buf)?, multiple: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.delivery_tag);
        put_bits(buf, &[self.multiple]);
    }
}

/// `basic.reject` (60.90).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicReject {
    pub delivery_tag: u64,
    pub requeue: bool,
}

impl Args for BasicReject {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(BasicReject { delivery_tag: get_u64(buf)?, requeue: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.delivery_tag);
        put_bits(buf, &[self.requeue]);
    }
}

/// `basic.recover-async` (60.100, deprecated).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicRecoverAsync {
    pub requeue: bool,
}

/// `basic.recover` (60.110).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicRecover {
    pub requeue: bool,
}

macro_rules! requeue_args {
    ($t:ident) => {
        impl Args for $t {
            fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
                Ok($t { requeue: bit(get_u8(buf)?, 0) })
            }
            fn encode(&self, buf: &mut BytesMut) {
                put_bits(buf, &[self.requeue]);
            }
        }
    };
}
requeue_args!(BasicRecoverAsync);
requeue_args!(BasicRecover);

/// `basic.nack` (60.120, RabbitMQ).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BasicNack {
    pub delivery_tag: u64,
    pub multiple: bool,
    pub requeue: bool,
}

impl Args for BasicNack {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let delivery_tag = get_u64(buf)?;
        let f = get_u8(buf)?;
        Ok(BasicNack { delivery_tag, multiple: bit(f, 0), requeue: bit(f, 1) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64(self.delivery_tag);
        put_bits(buf, &[self.multiple, self.requeue]);
    }
}
