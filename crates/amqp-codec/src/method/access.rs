//! Arguments of the deprecated `access` class (class id 30), kept for old clients.

use bytes::{BufMut, Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_shortstr, get_u16, get_u8, put_bits, put_shortstr};
use crate::{CodecError, ShortStr};

/// `access.request` (30.10).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessRequest {
    pub realm: ShortStr,
    pub exclusive: bool,
    pub passive: bool,
    pub active: bool,
    pub write: bool,
    pub read: bool,
}

impl Args for AccessRequest {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        let realm = get_shortstr(buf)?;
        let f = get_u8(buf)?;
        Ok(AccessRequest {
            realm,
            exclusive: bit(f, 0),
            passive: bit(f, 1),
            active: bit(f, 2),
            write: bit(f, 3),
            read: bit(f, 4),
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.realm);
        put_bits(buf, &[self.exclusive, self.passive, self.active, self.write, self.read]);
    }
}

/// `access.request-ok` (30.11).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccessRequestOk {
    pub ticket: u16,
}

impl Args for AccessRequestOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(AccessRequestOk { ticket: get_u16(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.ticket);
    }
}
