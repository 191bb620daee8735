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
}

impl Message {
    pub fn new(exchange: ShortStr, routing_key: ShortStr, properties: Bytes, body: Bytes) -> Self {
        Message { exchange, routing_key, properties, body }
    }

    /// Full decode of the properties; `None` if the publisher sent malformed property bytes.
    pub fn decode_properties(&self) -> Option<BasicProperties> {
        BasicProperties::decode(self.properties.clone()).ok()
    }

    /// Bytes the message accounts for in queue memory limits (body only, as RabbitMQ counts).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }
}
