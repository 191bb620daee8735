//! A published message as the broker holds it: routing info, the client's raw property bytes and
//! the body. One allocation shared by every queue the message is routed to.

use amqp_codec::{BasicProperties, ShortStr};
use bytes::Bytes;

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// The content header's property flags and list exactly as the publisher sent them; forwarded
    /// byte for byte and decoded only where a rule needs a property.
    pub properties: Bytes,
    pub body: Bytes,
    /// When the message entered the broker's queues (ms since the Unix epoch): queue and message
    /// TTLs count from here. 0 means unknown (such a message never expires).
    pub timestamp_ms: u64,
    /// The id its outcome is tracked under (0: not tracked).
    pub track: u64,
}

impl Message {
    pub fn new(exchange: ShortStr, routing_key: ShortStr, properties: Bytes, body: Bytes) -> Self {
        Message { exchange, routing_key, properties, body, timestamp_ms: 0, track: 0 }
    }

    /// The message stamped as entering the queues at `timestamp_ms`.
    pub fn at(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self
    }

    /// The message with its outcome tracked under `track`.
    pub fn tracked(mut self, track: u64) -> Self {
        self.track = track;
        self
    }

    /// Full decode of the properties; `None` if the publisher sent malformed property bytes.
    pub fn decode_properties(&self) -> Option<BasicProperties> {
        BasicProperties::decode(self.properties.clone()).ok()
    }

    /// The same message with `props` as its properties (re-encoded).
    pub fn with_properties(&self, props: &BasicProperties) -> Message {
        Message { properties: props.to_raw(), ..self.clone() }
    }

    /// Bytes the message accounts for in queue memory limits (body only, as RabbitMQ counts).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// The per-message TTL from the `expiration` property, if it has a valid one.
    pub fn expiration_ms(&self) -> Option<u64> {
        amqp_codec::raw_properties::expiration(&self.properties).and_then(|e| parse_expiration(e).ok())
    }

    /// When this message expires in a queue whose `x-message-ttl` is `queue_ttl_ms` (the
    /// smaller of the two TTLs applies, as in RabbitMQ); `None` if never.
    pub fn deadline_ms(&self, queue_ttl_ms: Option<u64>) -> Option<u64> {
        if self.timestamp_ms == 0 {
            return None;
        }
        let ttl = match (queue_ttl_ms, self.expiration_ms()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(self.timestamp_ms.saturating_add(ttl))
    }
}

/// Parses an `expiration` property: a non-negative integer number of milliseconds as text. The
/// error names why, for the channel error RabbitMQ sends for an invalid one.
pub fn parse_expiration(text: &str) -> Result<u64, &'static str> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if text.starts_with('-') { "value_negative" } else { "not_an_integer" });
    }
    text.parse::<u64>().map_err(|_| "value_too_large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_expiration(expiration: &str) -> Message {
        let props = BasicProperties { expiration: Some(ShortStr::from(expiration)), ..Default::default() };
        Message::new(ShortStr::from_static(""), ShortStr::from_static("q"), props.to_raw(), Bytes::new()).at(1_000)
    }

    #[test]
    fn the_smaller_ttl_applies_and_unknown_time_never_expires() {
        let m = with_expiration("50");
        assert_eq!(m.deadline_ms(None), Some(1_050));
        assert_eq!(m.deadline_ms(Some(20)), Some(1_020));
        assert_eq!(m.deadline_ms(Some(90)), Some(1_050));
        let plain = Message::new(ShortStr::from_static(""), ShortStr::from_static("q"), Bytes::new(), Bytes::new());
        assert_eq!(plain.clone().at(5).deadline_ms(None), None);
        assert_eq!(plain.clone().at(5).deadline_ms(Some(0)), Some(5));
        assert_eq!(plain.deadline_ms(Some(10)), None, "unknown entry time");
    }

    #[test]
    fn expiration_text_is_checked() {
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("60000"), Ok(60_000));
        assert_eq!(parse_expiration("-1"), Err("value_negative"));
        assert_eq!(parse_expiration("1.5"), Err("not_an_integer"));
        assert_eq!(parse_expiration(""), Err("not_an_integer"));
        assert_eq!(parse_expiration("99999999999999999999999"), Err("value_too_large"));
    }
}
