//! Arguments of the `channel` class (class id 20).

use bytes::{BufMut, Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_longstr, get_shortstr, get_u16, get_u8, put_bits, put_longstr, put_shortstr};
use crate::{CodecError, ShortStr};

/// `channel.open` (20.10).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelOpen {
    /// Reserved (deprecated `out-of-band`), normally empty.
    pub out_of_band: ShortStr,
}

impl Args for ChannelOpen {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ChannelOpen { out_of_band: get_shortstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.out_of_band);
    }
}

/// `channel.open-ok` (20.11).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelOpenOk {
    /// Reserved (deprecated `channel-id`, a long string), normally empty.
    pub channel_id: Bytes,
}

impl Args for ChannelOpenOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ChannelOpenOk { channel_id: get_longstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_longstr(buf, &self.channel_id);
    }
}

/// `channel.flow` (20.20): ask the peer to pause or resume sending content.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelFlow {
    pub active: bool,
}

/// `channel.flow-ok` (20.21).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelFlowOk {
    pub active: bool,
}

macro_rules! flow_args {
    ($t:ident) => {
        impl Args for $t {
            fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
                Ok($t { active: bit(get_u8(buf)?, 0) })
            }
            fn encode(&self, buf: &mut BytesMut) {
                put_bits(buf, &[self.active]);
            }
        }
    };
}
flow_args!(ChannelFlow);
flow_args!(ChannelFlowOk);

/// `channel.close` (20.40): same fields as `connection.close`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelClose {
    pub reply_code: u16,
    pub reply_text: ShortStr,
    pub class_id: u16,
    pub method_id: u16,
}

impl Args for ChannelClose {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ChannelClose {
            reply_code: get_u16(buf)?,
            reply_text: get_shortstr(buf)?,
            class_id: get_u16(buf)?,
            method_id: get_u16(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.reply_code);
        put_shortstr(buf, &self.reply_text);
        buf.put_u16(self.class_id);
        buf.put_u16(self.method_id);
    }
}
