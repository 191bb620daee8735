//! Arguments of the `connection` class (class id 10), RabbitMQ extensions included.

use bytes::{BufMut, Bytes, BytesMut};

use super::Args;
use crate::wire::{bit, get_longstr, get_shortstr, get_u16, get_u32, get_u8, put_bits, put_longstr, put_shortstr};
use crate::{CodecError, FieldTable, ShortStr};

/// `connection.start` (10.10): server proposes protocol version, properties, SASL mechanisms, locales.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionStart {
    pub version_major: u8,
    pub version_minor: u8,
    pub server_properties: FieldTable,
    /// Space-separated SASL mechanism names.
    pub mechanisms: Bytes,
    /// Space-separated locales.
    pub locales: Bytes,
}

impl Args for ConnectionStart {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionStart {
            version_major: get_u8(buf)?,
            version_minor: get_u8(buf)?,
            server_properties: FieldTable::decode(buf)?,
            mechanisms: get_longstr(buf)?,
            locales: get_longstr(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.version_major);
        buf.put_u8(self.version_minor);
        self.server_properties.encode(buf);
        put_longstr(buf, &self.mechanisms);
        put_longstr(buf, &self.locales);
    }
}

/// `connection.start-ok` (10.11): client picks a mechanism and sends its first SASL response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionStartOk {
    pub client_properties: FieldTable,
    pub mechanism: ShortStr,
    pub response: Bytes,
    pub locale: ShortStr,
}

impl Args for ConnectionStartOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionStartOk {
            client_properties: FieldTable::decode(buf)?,
            mechanism: get_shortstr(buf)?,
            response: get_longstr(buf)?,
            locale: get_shortstr(buf)?,
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        self.client_properties.encode(buf);
        put_shortstr(buf, &self.mechanism);
        put_longstr(buf, &self.response);
        put_shortstr(buf, &self.locale);
    }
}

/// `connection.secure` (10.20): SASL challenge.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionSecure {
    pub challenge: Bytes,
}

impl Args for ConnectionSecure {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionSecure { challenge: get_longstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_longstr(buf, &self.challenge);
    }
}

/// `connection.secure-ok` (10.21): SASL response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionSecureOk {
    pub response: Bytes,
}

impl Args for ConnectionSecureOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionSecureOk { response: get_longstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_longstr(buf, &self.response);
    }
}

/// `connection.tune` (10.30): server proposes limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionTune {
    pub channel_max: u16,
    pub frame_max: u32,
    /// Heartbeat interval in seconds, 0 = none.
    pub heartbeat: u16,
}

/// `connection.tune-ok` (10.31): client's accepted limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionTuneOk {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

macro_rules! tune_args {
    ($t:ident) => {
        impl Args for $t {
            fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
                Ok($t { channel_max: get_u16(buf)?, frame_max: get_u32(buf)?, heartbeat: get_u16(buf)? })
            }
            fn encode(&self, buf: &mut BytesMut) {
                buf.put_u16(self.channel_max);
                buf.put_u32(self.frame_max);
                buf.put_u16(self.heartbeat);
            }
        }
    };
}
tune_args!(ConnectionTune);
tune_args!(ConnectionTuneOk);

/// `connection.open` (10.40): client selects a virtual host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionOpen {
    pub virtual_host: ShortStr,
    /// Reserved (deprecated `capabilities`), normally empty.
    pub capabilities: ShortStr,
    /// Reserved (deprecated `insist`).
    pub insist: bool,
}

impl Args for ConnectionOpen {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionOpen {
            virtual_host: get_shortstr(buf)?,
            capabilities: get_shortstr(buf)?,
            insist: bit(get_u8(buf)?, 0),
        })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.virtual_host);
        put_shortstr(buf, &self.capabilities);
        put_bits(buf, &[self.insist]);
    }
}

/// `connection.open-ok` (10.41).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionOpenOk {
    /// Reserved (deprecated `known-hosts`), normally empty.
    pub known_hosts: ShortStr,
}

impl Args for ConnectionOpenOk {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionOpenOk { known_hosts: get_shortstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.known_hosts);
    }
}

/// `connection.close` (10.50): either peer closes the connection, with the reason and the failing method.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionClose {
    pub reply_code: u16,
    pub reply_text: ShortStr,
    /// Class of the method that caused the close, 0 if none.
    pub class_id: u16,
    /// Method that caused the close, 0 if none.
    pub method_id: u16,
}

impl Args for ConnectionClose {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionClose {
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

/// `connection.blocked` (10.60, RabbitMQ): the server stopped reading publishes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionBlocked {
    pub reason: ShortStr,
}

impl Args for ConnectionBlocked {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionBlocked { reason: get_shortstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_shortstr(buf, &self.reason);
    }
}

/// `connection.update-secret` (10.70, RabbitMQ): client refreshes its credentials.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectionUpdateSecret {
    pub new_secret: Bytes,
    pub reason: ShortStr,
}

impl Args for ConnectionUpdateSecret {
    fn decode(buf: &mut Bytes) -> Result<Self, CodecError> {
        Ok(ConnectionUpdateSecret { new_secret: get_longstr(buf)?, reason: get_shortstr(buf)? })
    }
    fn encode(&self, buf: &mut BytesMut) {
        put_longstr(buf, &self.new_secret);
        put_shortstr(buf, &self.reason);
    }
}
