//! The bytes of one persisted message in the store: when it entered the queues, the routing
//! information, the publisher's raw properties and the body. Format version 2:
//! `version u8 = 2 | timestamp_ms u64 LE | track u64 LE | exchange_len u8 | exchange |
//! routing_key_len u8 | routing_key | properties_len u32 LE | properties | body (the rest)`.
//! Version 1 is the same without `timestamp_ms` and `track`; it is still read (its messages'
//! time is unknown, so they never expire, and they are not tracked).

use amqp_codec::ShortStr;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use warren_core::Message;

const VERSION: u8 = 2;
const VERSION_WITHOUT_TIMESTAMP: u8 = 1;

/// Encodes `message` for the store.
pub fn encode(message: &Message) -> Bytes {
    let len = 1 + 8 + 8 + 1 + message.exchange.len() + 1 + message.routing_key.len() + 4 + message.properties.len();
    let mut buf = BytesMut::with_capacity(len + message.body.len());
    buf.put_u8(VERSION);
    buf.put_u64_le(message.timestamp_ms);
    buf.put_u64_le(message.track);
    buf.put_u8(message.exchange.len() as u8);
    buf.put_slice(message.exchange.as_bytes());
    buf.put_u8(message.routing_key.len() as u8);
    buf.put_slice(message.routing_key.as_bytes());
    buf.put_u32_le(message.properties.len() as u32);
    buf.put_slice(&message.properties);
    buf.put_slice(&message.body);
    buf.freeze()
}

/// Decodes what [`encode`] wrote; `None` for bytes of another version or a short record (the
/// store's checksum passed, so this means a bug or a future format, never a torn write).
pub fn decode(mut bytes: Bytes) -> Option<Message> {
    if bytes.len() < 7 {
        return None;
    }
    let (timestamp_ms, track) = match bytes.get_u8() {
        VERSION if bytes.len() >= 16 + 6 => (bytes.get_u64_le(), bytes.get_u64_le()),
        VERSION_WITHOUT_TIMESTAMP => (0, 0),
        _ => return None,
    };
    let exchange = short(&mut bytes)?;
    let routing_key = short(&mut bytes)?;
    if bytes.len() < 4 {
        return None;
    }
    let properties_len = bytes.get_u32_le() as usize;
    if bytes.len() < properties_len {
        return None;
    }
    let properties = bytes.split_to(properties_len);
    Some(Message::new(exchange, routing_key, properties, bytes).at(timestamp_ms).tracked(track))
}

fn short(bytes: &mut Bytes) -> Option<ShortStr> {
    let len = *bytes.first()? as usize;
    if bytes.len() < 1 + len {
        return None;
    }
    bytes.advance(1);
    ShortStr::try_from_bytes(bytes.split_to(len)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let m = Message::new(
            ShortStr::from_static("ex"),
            ShortStr::from_static("rk.1"),
            Bytes::from_static(&[0x10, 0x00, 2]),
            Bytes::from_static(b"hello"),
        )
        .at(1_700_000_000_123)
        .tracked(0xfeed);
        let bytes = encode(&m);
        assert_eq!(decode(bytes.clone()), Some(m.clone()));
        assert_eq!(decode(bytes.slice(..6)), None);
        assert_eq!(decode(bytes.slice(..20)), None);
        let mut other = bytes.to_vec();
        other[0] = 3;
        assert_eq!(decode(Bytes::from(other)), None);
        // Version 1, as stores written before timestamps hold it: read with an unknown time.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&bytes[17..]);
        assert_eq!(decode(Bytes::from(v1)), Some(m.at(0).tracked(0)));
        let empty = Message::new(ShortStr::from_static(""), ShortStr::from_static(""), Bytes::new(), Bytes::new());
        assert_eq!(decode(encode(&empty)), Some(empty));
    }
}
