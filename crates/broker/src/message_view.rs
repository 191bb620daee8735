//! A message as content filters see it (`warren_core::filter::Subject`): its properties decoded
//! at most once, and its body parsed as JSON at most once, only when a filter reads it.

use amqp_codec::{BasicProperties, FieldValue};
use std::cell::OnceCell;
use warren_core::filter::{Subject, Value};
use warren_core::Message;

/// Bodies larger than this are not parsed for filters: they have no fields (a filter on a
/// body field does not match them).
pub const MAX_FILTERED_BODY_BYTES: usize = 1 << 20;

pub struct MessageView<'a> {
    message: &'a Message,
    properties: OnceCell<Option<BasicProperties>>,
    body: OnceCell<Option<serde_json::Value>>,
}

impl<'a> MessageView<'a> {
    pub fn new(message: &'a Message) -> Self {
        MessageView { message, properties: OnceCell::new(), body: OnceCell::new() }
    }

    fn properties(&self) -> Option<&BasicProperties> {
        self.properties.get_or_init(|| self.message.decode_properties()).as_ref()
    }
}

fn text(bytes: &[u8]) -> Value<'_> {
    std::str::from_utf8(bytes).map_or(Value::Other, Value::Str)
}

fn field(v: &FieldValue) -> Value<'_> {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => Value::Float(f64::from(*f)),
        FieldValue::F64(f) => Value::Float(*f),
        FieldValue::LongStr(s) => text(s),
        FieldValue::Void => Value::Null,
        FieldValue::Table(_) | FieldValue::Array(_) => Value::Other,
        other => match other.as_i64() {
            Some(i) => Value::Int(i),
            None => other.as_str().map_or(Value::Other, Value::Str),
        },
    }
}

impl Subject for MessageView<'_> {
    fn property(&self, name: &str) -> Option<Value<'_>> {
        match name {
            "routing_key" => return Some(Value::Str(self.message.routing_key.as_str())),
            "exchange" => return Some(Value::Str(self.message.exchange.as_str())),
            _ => {}
        }
        let p = self.properties()?;
        fn short(s: &Option<amqp_codec::ShortStr>) -> Option<Value<'_>> {
            s.as_ref().map(|s| Value::Str(s.as_str()))
        }
        match name {
            "content_type" => short(&p.content_type),
            "content_encoding" => short(&p.content_encoding),
            "delivery_mode" => p.delivery_mode.map(|d| Value::Int(d.into())),
            "priority" => p.priority.map(|d| Value::Int(d.into())),
            "correlation_id" => short(&p.correlation_id),
            "reply_to" => short(&p.reply_to),
            "expiration" => short(&p.expiration),
            "message_id" => short(&p.message_id),
            "timestamp" => p.timestamp.map(|t| Value::Int(t.min(i64::MAX as u64) as i64)),
            "type" => short(&p.kind),
            "user_id" => short(&p.user_id),
            "app_id" => short(&p.app_id),
            _ => None,
        }
    }

    fn header(&self, name: &str) -> Option<Value<'_>> {
        if !amqp_codec::raw_properties::has_headers(&self.message.properties) {
            return None;
        }
        self.properties()?.headers.as_ref()?.get(name).map(field)
    }

    fn body(&self) -> Option<&serde_json::Value> {
        self.body
            .get_or_init(|| {
                let body = &self.message.body;
                (body.len() <= MAX_FILTERED_BODY_BYTES).then(|| serde_json::from_slice(body).ok()).flatten()
            })
            .as_ref()
    }
}
