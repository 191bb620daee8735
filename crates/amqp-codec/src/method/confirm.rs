//! Arguments of RabbitMQ's `confirm` class (class id 85, publisher confirms).

use bytes::{Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_u8, put_bits};
use crate::CodecError;

/// `confirm.select` (85.10): put the channel in confirm mode.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfirmSelect {
    pub nowait: bool,
}

impl Args for ConfirmSelect {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConfirmSelect { nowait: bit(get_u8(buf)?, 0) })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_bits(buf, &[self.nowait]);
    }
}
