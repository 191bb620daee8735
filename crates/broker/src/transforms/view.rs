//! A message as a transform sees it, and a transform's output as a message: the view is
//! `{body, routing_key, exchange, properties, headers}` with the body parsed as JSON; an output
//! is an object whose `body`, `routing_key`, `properties` (merged: a `null` removes one) and
//! `headers` (replaced whole) change the message, and whose other fields are refused.

use amqp_codec::ShortStr;
use bytes::Bytes;
use serde_json::{Map, Value};
use warren_core::json::{json_to_properties, json_to_table, properties_to_json, table_to_json};
use warren_core::Message;

/// The JSON view of `message`; `Err` if its body is not JSON.
pub fn message_view(message: &Message) -> Result<Value, String> {
    let body: Value = serde_json::from_slice(&message.body)
        .map_err(|e| format!("the body is not JSON ({e}), so no transform can read it"))?;
    let props = message.decode_properties().unwrap_or_default();
    let mut properties = properties_to_json(&props);
    if let Some(map) = properties.as_object_mut() {
        map.remove("headers");
    }
    let headers = props.headers.as_ref().map(table_to_json).unwrap_or_else(|| Value::Object(Map::new()));
    Ok(serde_json::json!({
        "body": body,
        "routing_key": message.routing_key.as_str(),
        "exchange": message.exchange.as_str(),
        "properties": properties,
        "headers": headers,
    }))
}

/// The message a transform's `output` makes of `original`.
pub fn output_message(original: &Message, output: &Value) -> Result<Message, String> {
    let Some(fields) = output.as_object() else {
        return Err(format!("an output must be an object with body, routing_key, properties or headers, not {output}"));
    };
    if let Some(other) =
        fields.keys().find(|k| !matches!(k.as_str(), "body" | "routing_key" | "properties" | "headers" | "exchange"))
    {
        return Err(format!("an output has an unknown field '{other}'"));
    }
    let props = original.decode_properties().unwrap_or_default();
    let mut merged = match properties_to_json(&props) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    match fields.get("properties") {
        None => {}
        Some(Value::Object(changes)) => {
            for (k, v) in changes {
                if k == "headers" {
                    return Err("headers go in the output's own headers field".into());
                }
                if v.is_null() {
                    merged.remove(k);
                } else {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        Some(other) => return Err(format!("properties must be an object, not {other}")),
    }
    match fields.get("headers") {
        None => {}
        Some(Value::Null) => {
            merged.remove("headers");
        }
        Some(headers) => {
            json_to_table(headers).map_err(|e| format!("headers: {e}"))?;
            merged.insert("headers".into(), headers.clone());
        }
    }
    let (body, json_body) = match fields.get("body") {
        None => (original.body.clone(), false),
        Some(body) => (Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?), true),
    };
    if json_body && !merged.contains_key("content_type") {
        merged.insert("content_type".into(), Value::from("application/json"));
    }
    let props = json_to_properties(&Value::Object(merged)).map_err(|e| format!("properties: {e}"))?;
    let routing_key = match fields.get("routing_key") {
        None => original.routing_key.clone(),
        Some(Value::String(key)) => {
            ShortStr::try_from_string(key.clone()).map_err(|_| "routing_key is longer than 255 bytes".to_string())?
        }
        Some(other) => return Err(format!("routing_key must be a string, not {other}")),
    };
    Ok(Message::new(original.exchange.clone(), routing_key, props.to_raw(), body)
        .at(original.timestamp_ms)
        .tracked(original.track))
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::BasicProperties;
    use serde_json::json;

    #[test]
    fn a_view_and_an_output_round_trip_the_parts_a_transform_changes() {
        let mut headers = amqp_codec::FieldTable::new();
        headers.insert("region", amqp_codec::FieldValue::LongStr("eu".into()));
        let props = BasicProperties {
            headers: Some(headers),
            correlation_id: Some("c-1".into()),
            delivery_mode: Some(2),
            ..Default::default()
        };
        let m = Message::new("orders".into(), "placed".into(), props.to_raw(), Bytes::from_static(br#"{"n": 1}"#));
        let view = message_view(&m).unwrap();
        assert_eq!(view["body"], json!({"n": 1}));
        assert_eq!(
            (view["headers"]["region"].clone(), view["properties"]["correlation_id"].clone()),
            (json!("eu"), json!("c-1"))
        );
        let out = output_message(
            &m,
            &json!({"body": {"m": 2}, "routing_key": "wh.eu", "properties": {"correlation_id": null, "type": "line"},
                    "headers": {"warehouse": "north"}}),
        )
        .unwrap();
        let p = out.decode_properties().unwrap();
        assert_eq!((out.routing_key.as_str(), out.body.as_ref()), ("wh.eu", br#"{"m":2}"#.as_slice()));
        assert_eq!((p.correlation_id, p.kind.as_deref(), p.delivery_mode), (None, Some("line"), Some(2)));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        let h = p.headers.unwrap();
        assert_eq!((h.get("warehouse").and_then(|v| v.as_str()), h.get("region")), (Some("north"), None));
        assert_eq!(output_message(&m, &json!({})).unwrap().body, m.body, "an empty output keeps the message");
        assert!(output_message(&m, &json!([1])).unwrap_err().contains("must be an object"));
        assert!(output_message(&m, &json!({"bogus": 1})).unwrap_err().contains("unknown field"));
        assert!(message_view(&Message::new("x".into(), "k".into(), Bytes::new(), Bytes::from_static(b"<xml/>")))
            .unwrap_err()
            .contains("not JSON"));
    }
}
