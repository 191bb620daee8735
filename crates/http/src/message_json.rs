//! The JSON form of a queued message, as HTTP consumers see it: pull receives return it and
//! push subscriptions POST it. Text bodies stay text; others are base64.

use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use warren_broker::tracking::id_text;
use warren_core::json::value_to_json;
use warren_core::Entry;

#[derive(Serialize)]
pub struct MessageJson {
    /// Its tracking id, if it is tracked.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    exchange: String,
    routing_key: String,
    redelivered: bool,
    body: String,
    body_encoding: &'static str,
    properties: BTreeMap<String, Value>,
    headers: BTreeMap<String, Value>,
}

impl MessageJson {
    pub fn of(entry: &Entry) -> MessageJson {
        let m = &entry.message;
        let props = m.decode_properties().unwrap_or_default();
        let mut properties = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                properties.insert(k.to_owned(), Value::from(v));
            }
        };
        put("content_type", props.content_type.map(String::from));
        put("content_encoding", props.content_encoding.map(String::from));
        put("correlation_id", props.correlation_id.map(String::from));
        put("reply_to", props.reply_to.map(String::from));
        put("message_id", props.message_id.map(String::from));
        put("expiration", props.expiration.map(String::from));
        put("type", props.kind.map(String::from));
        put("app_id", props.app_id.map(String::from));
        if let Some(p) = props.priority {
            properties.insert("priority".into(), Value::from(p));
        }
        if let Some(d) = props.delivery_mode {
            properties.insert("delivery_mode".into(), Value::from(d));
        }
        if let Some(t) = props.timestamp {
            properties.insert("timestamp".into(), Value::from(t));
        }
        let headers = props
            .headers
            .map(|h| h.iter().map(|(k, v)| (k.to_string(), value_to_json(v))).collect())
            .unwrap_or_default();
        let (body, body_encoding) = match std::str::from_utf8(&m.body) {
            Ok(text) => (text.to_owned(), "utf8"),
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(&m.body), "base64"),
        };
        MessageJson {
            id: (m.track != 0).then(|| id_text(m.track)),
            exchange: m.exchange.to_string(),
            routing_key: m.routing_key.to_string(),
            redelivered: entry.redelivered,
            body,
            body_encoding,
            properties,
            headers,
        }
    }
}
