//! Fuzz target: arbitrary bytes decoded as an AMQP field table (and as basic properties) through `warren_core::json` (`table_to_json`, `properties_to_json`) must never panic; the JSON of a decoded table converts back (`json_to_table`) to a table that encodes, decodes, and shows as the same JSON (numbers as the same double).
#![no_main]

use amqp_codec::{BasicProperties, FieldTable};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use warren_core::json::{json_to_properties, json_to_table, properties_to_json, table_to_json};

/// Equal JSON, where two numbers are equal if they are the same double.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(props) = BasicProperties::decode(Bytes::copy_from_slice(data)) {
        let _ = json_to_properties(&properties_to_json(&props));
    }

    let Ok(table) = FieldTable::decode(&mut Bytes::copy_from_slice(data)) else { return };
    let json = table_to_json(&table);
    let back = json_to_table(&json).unwrap_or_else(|e| panic!("the JSON of a decoded table is refused: {e}"));
    let mut buf = BytesMut::new();
    back.encode(&mut buf);
    let reloaded = FieldTable::decode(&mut buf.freeze()).expect("a table made from JSON must decode");
    let again = table_to_json(&reloaded);
    assert!(same(&again, &json), "{json} came back as {again}");
});
