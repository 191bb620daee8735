//! The JSON view of AMQP field tables and message properties, shared by every HTTP face (the
//! async API, the management API) so a header reads the same everywhere.

use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortStr, MAX_NESTING_DEPTH};
use bytes::Bytes;
use serde_json::{Map, Value};

/// A field value as JSON: strings stay strings (bytes that are not UTF-8 lossily), numbers stay
/// numbers, decimals become numbers, timestamps seconds.
pub fn value_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::from(*b),
        FieldValue::LongStr(s) | FieldValue::ByteArray(s) => Value::from(String::from_utf8_lossy(s).into_owned()),
        FieldValue::Array(items) => Value::Array(items.iter().map(value_to_json).collect()),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::F32(f) => Value::from(*f),
        FieldValue::F64(f) => Value::from(*f),
        FieldValue::Decimal { scale, value } => Value::from(f64::from(*value) / 10f64.powi(i32::from(*scale))),
        FieldValue::Timestamp(t) => Value::from(*t),
        FieldValue::Void => Value::Null,
        other => other.as_i64().map(Value::from).unwrap_or(Value::Null),
    }
}

pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(t.iter().map(|(k, v)| (k.to_string(), value_to_json(v))).collect())
}

/// JSON as a field value: integers as `l` (or `d` beyond i64), strings as `S`, objects as
/// tables, `null` as void. Errors name what does not fit; nesting deeper than the codec reads
/// back ([`MAX_NESTING_DEPTH`]) is refused, so nothing stored can fail to load.
pub fn json_to_value(value: &Value) -> Result<FieldValue, String> {
    value_at(value, 0)
}

fn value_at(value: &Value, depth: usize) -> Result<FieldValue, String> {
    if depth >= MAX_NESTING_DEPTH && matches!(value, Value::Array(_) | Value::Object(_)) {
        return Err(format!("tables and arrays nest at most {MAX_NESTING_DEPTH} deep"));
    }
    Ok(match value {
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes())),
        // Each table or array inside the top-level table is one level, as the codec counts.
        Value::Array(items) => {
            FieldValue::Array(items.iter().map(|v| value_at(v, depth + 1)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => FieldValue::Table(object_to_table(map, depth + 1)?),
        Value::Null => FieldValue::Void,
    })
}

/// A JSON object (or `null`, or `[]` as RabbitMQ's own clients send for no arguments: an empty
/// table) as a field table.
pub fn json_to_table(value: &Value) -> Result<FieldTable, String> {
    match value {
        Value::Null => Ok(FieldTable::new()),
        Value::Array(items) if items.is_empty() => Ok(FieldTable::new()),
        Value::Object(map) => object_to_table(map, 0),
        _ => Err("expected a JSON object".into()),
    }
}

fn object_to_table(map: &Map<String, Value>, depth: usize) -> Result<FieldTable, String> {
    let mut t = FieldTable::new();
    for (k, v) in map {
        let key = ShortStr::try_from_string(k.clone()).map_err(|_| format!("key '{k}' is longer than 255 bytes"))?;
        t.insert(key, value_at(v, depth)?);
    }
    Ok(t)
}

/// Basic properties as RabbitMQ's management API shows them (`type` for the message type).
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut out = Map::new();
    let mut text = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            out.insert(k.into(), Value::from(v.to_string()));
        }
    };
    text("content_type", &p.content_type);
    text("content_encoding", &p.content_encoding);
    text("correlation_id", &p.correlation_id);
    text("reply_to", &p.reply_to);
    text("expiration", &p.expiration);
    text("message_id", &p.message_id);
    text("type", &p.kind);
    text("user_id", &p.user_id);
    text("app_id", &p.app_id);
    text("cluster_id", &p.cluster_id);
    if let Some(d) = p.delivery_mode {
        out.insert("delivery_mode".into(), Value::from(d));
    }
    if let Some(pr) = p.priority {
        out.insert("priority".into(), Value::from(pr));
    }
    if let Some(t) = p.timestamp {
        out.insert("timestamp".into(), Value::from(t));
    }
    if let Some(h) = &p.headers {
        out.insert("headers".into(), table_to_json(h));
    }
    Value::Object(out)
}

/// RabbitMQ's management form of properties back to basic properties. Unknown keys are errors.
pub fn json_to_properties(value: &Value) -> Result<BasicProperties, String> {
    let map = match value {
        Value::Null => return Ok(BasicProperties::default()),
        Value::Object(map) => map,
        _ => return Err("properties must be a JSON object".into()),
    };
    let mut p = BasicProperties::default();
    for (k, v) in map {
        let text = || -> Result<Option<ShortStr>, String> {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(format!("property {k} must be a string")),
            };
            ShortStr::try_from_string(s).map(Some).map_err(|_| format!("property {k} is longer than 255 bytes"))
        };
        let small = |max: u64| -> Result<u8, String> {
            v.as_u64().filter(|n| *n <= max).map(|n| n as u8).ok_or_else(|| format!("property {k} must be 0..={max}"))
        };
        match k.as_str() {
            "content_type" => p.content_type = text()?,
            "content_encoding" => p.content_encoding = text()?,
            "correlation_id" => p.correlation_id = text()?,
            "reply_to" => p.reply_to = text()?,
            "expiration" => p.expiration = text()?,
            "message_id" => p.message_id = text()?,
            "type" => p.kind = text()?,
            "user_id" => p.user_id = text()?,
            "app_id" => p.app_id = text()?,
            "cluster_id" => p.cluster_id = text()?,
            "delivery_mode" => p.delivery_mode = Some(small(2)?).filter(|m| *m > 0),
            "priority" => p.priority = Some(small(255)?),
            "timestamp" => p.timestamp = Some(v.as_u64().ok_or("property timestamp must be seconds")?),
            "headers" => p.headers = Some(json_to_table(v)?),
            other => return Err(format!("unknown property '{other}'")),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_round_trip_through_json() {
        let v = json!({"a": 1, "b": "two", "c": [true, null], "d": {"e": -5}, "f": 1.5});
        assert_eq!(table_to_json(&json_to_table(&v).unwrap()), v);
        assert!(json_to_table(&json!([1])).is_err());
        assert!(json_to_table(&json!([])).unwrap().is_empty(), "RabbitMQ's clients send [] for no arguments");
        // What the codec reads back, and no deeper: a stored table must load again.
        let nest = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!({ "n": inner }));
        // A top-level table holding 64 nested ones decodes; one more does not.
        let ok = json_to_table(&nest(65)).unwrap();
        let mut encoded = bytes::BytesMut::new();
        ok.encode(&mut encoded);
        assert!(FieldTable::decode(&mut encoded.freeze()).is_ok());
        assert!(json_to_table(&nest(66)).unwrap_err().contains("nest"));
    }

    #[test]
    fn properties_round_trip_and_unknown_keys_are_refused() {
        let v = json!({"content_type": "text/plain", "delivery_mode": 2, "priority": 3, "type": "t",
                       "headers": {"x": 1}, "timestamp": 5});
        assert_eq!(properties_to_json(&json_to_properties(&v).unwrap()), v);
        assert!(json_to_properties(&json!({"colour": "red"})).unwrap_err().contains("colour"));
        assert!(json_to_properties(&json!({"delivery_mode": 7})).is_err());
    }
}
