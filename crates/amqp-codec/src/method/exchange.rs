//! Arguments of the `exchange` class (class id 40), including RabbitMQ's exchange-to-exchange bindings.

use bytes::{BufMut, Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_shortstr, get_u16, get_u8, put_bits, put_shortstr};
use crate::{CodecError, FieldTable, ShortStr};

/// `exchange.declare` (40.10).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDeclare {
    /// Reserved (deprecated access ticket).
    pub ticket: u16,
    pub exchange: ShortStr,
    /// The exchange type (the spec's `type`): "direct", "fanout", "topic", "headers", ...
    pub kind: ShortStr,
    pub passive: bool,
    pub durable: bool,
    /// Reserved in 0-9-1, used by RabbitMQ.
    pub auto_delete: bool,
    /// Reserved in 0-9-1, used by RabbitMQ.
    pub internal: bool,
    pub nowait: bool,
    pub arguments: FieldTable,
}

impl Args for ExchangeDeclare {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let ticket = get_u16(buf)?;
        let exchange = get_shortstr(buf)?;
        let kind = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(ExchangeDeclare {
            ticket,
            exchange,
            kind,
            passive: bit(f, 0),
            durable: bit(f, 1),
            auto_delete: bit(f, 2),
            internal: bit(f, 3),
            nowait: bit(f, 4),
            arguments: FieldTable::decode(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.exchange);
        put_shortstr(buf, &self.kind);
        put_bits(buf, &[self.passive, self.durable, self.auto_delete, self.internal, self.nowait]);
        self.arguments.encode(buf);
    }
}

/// `exchange.delete` (40.20).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDelete {
    pub ticket: u16,
    pub exchange: ShortStr,
    pub if_unused: bool,
    pub nowait: bool,
}

impl Args for ExchangeDelete {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let ticket = get_u16(buf)?;
        let exchange = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(ExchangeDelete { ticket, exchange, if_unused: bit(f, 0), nowait: bit(f, 1) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
        put_shortstr(buf, &self.exchange);
        put_bits(buf, &[self.if_unused, self.nowait]);
    }
}

/// `exchange.bind` (40.30, RabbitMQ): bind exchange `destination` to exchange `source`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeBind {
    pub ticket: u16,
    pub destination: ShortStr,
    pub source: ShortStr,
    pub routing_key: ShortStr,
    pub nowait: bool,
    pub arguments: FieldTable,
}

/// `exchange.unbind` (40.40, RabbitMQ): same fields as `exchange.bind`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeUnbind {
    pub ticket: u16,
    pub destination: ShortStr,
    pub source: ShortStr,
    pub routing_key: ShortStr,
    pub nowait: bool,
    pub arguments: FieldTable,
}

macro_rules! e2e_args {
    ($t:ident) => {
        impl Args for $t {
            fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
                Ok($t {
                    ticket: get_u16(buf)?,
                    destination: get_shortstr(buf)?,
                    source: get_shortstr(buf)?,
                    routing_key: get_shortstr(buf)?,
                    nowait: bit(get_u8(buf)?, 0),
                    arguments: FieldTable::decode(buf)?,
                })
            }
            fn encode(&self, buf: &mut BytesMut) {
                buf.put_u16(self.ticket);
                put_shortstr(buf, &self.destination);
                put_shortstr(buf, &self.source);
                put_shortstr(buf, &self.routing_key);
                put_bits(buf, &[self.nowait]);
                self.arguments.encode(buf);
            }
        }
    };
}
e2e_args!(ExchangeBind);
e2e_args!(ExchangeUnbind);
