//! Arguments of the `queue` class (class id 50).

use bytes::{BufMut, Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_shortstr, get_u16, get_u32, get_u8, put_bits, put_shortstr};
use crate::{CodecError, FieldTable, ShortStr};

/// `queue.declare` (50.10).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclare {
    pub ticket: u16,
    /// Empty = let the server generate a name.
    pub queue: ShortStr,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub nowait: bool,
    pub arguments: FieldTable,
}

impl Args for QueueDeclare {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let ticket = get_u16(buf)?;
        let queue = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(QueueDeclare {
            ticket,
            queue,
            passive: bit(f, 0),
            durable: bit(f, 1),
            exclusive: bit(f, 2),
            auto_delete: bit(f, 3),
            nowait: bit(f, 4),
            arguments: FieldTable::decode(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_bits(buf, &[self.passive, self.durable, self.exclusive, self.auto_delete, self.nowait]);
        self.arguments.encode(buf);
    }
}

/// `queue.declare-ok` (50.11).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclareOk {
    pub queue: ShortStr,
    pub message_count: u32,
    pub consumer_count: u32,
}

impl Args for QueueDeclareOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(QueueDeclareOk { queue: get_shortstr(buf)?, message_count: get_u32(buf)?, consumer_count: get_u32(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.queue);
        buf.put_u32(self.message_count);
        buf.put_u32(self.consumer_count);
    }
}

/// `queue.bind` (50.20).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueBind {
    pub ticket: u16,
    pub queue: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub nowait: bool,
    pub arguments: FieldTable,
}

impl Args for QueueBind {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(QueueBind {
            ticket: get_u16(buf)?,
            queue: get_shortstr(buf)?,
            exchange: get_shortstr(buf)?,
            routing_key: get_shortstr(buf)?,
            nowait: bit(get_u8(buf)?, 0),
            arguments: FieldTable::decode(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.routing_key);
        put_bits(buf, &[self.nowait]);
        self.arguments.encode(buf);
    }
}

/// `queue.unbind` (50.50): note there is no `nowait`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueUnbind {
    pub ticket: u16,
    pub queue: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

impl Args for QueueUnbind {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(QueueUnbind {
            ticket: get_u16(buf)?,
            queue: get_shortstr(buf)?,
            exchange: get_shortstr(buf)?,
            routing_key: get_shortstr(buf)?,
            arguments: FieldTable::decode(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.routing_key);
        self.arguments.encode(buf);
    }
}

/// `queue.purge` (50.30).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueuePurge {
    pub ticket: u16,
    pub queue: ShortStr,
    pub nowait: bool,
}

impl Args for QueuePurge {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(QueuePurge { ticket: get_u16(buf)?, queue: get_shortstr(buf)?, nowait: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_bits(buf, &[self.nowait]);
    }
}

/// `queue.purge-ok` (50.31).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueuePurgeOk {
    pub message_count: u32,
}

/// `queue.delete-ok` (50.41).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeleteOk {
    pub message_count: u32,
}

macro_rules! count_args {
    ($t:ident) => {
        impl Args for $t {
            fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
                Ok($t { message_count: get_u32(buf)? })
            }
            fn encode(&self, buf: &mut BytesMut) {
                buf.put_u32(self.message_count);
            }
        }
    };
}
count_args!(QueuePurgeOk);
count_args!(QueueDeleteOk);

/// `queue.delete` (50.40).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDelete {
    pub ticket: u16,
    pub queue: ShortStr,
    pub if_unused: bool,
    pub if_empty: bool,
    pub nowait: bool,
}

impl Args for QueueDelete {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let ticket = get_u16(buf)?;
        let queue = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(QueueDelete { ticket, queue, if_unused: bit(f, 0), if_empty: bit(f, 1), nowait: bit(f, 2) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.queue);
        put_bits(buf, &[self.if_unused, self.if_empty, self.nowait]);
    }
}
