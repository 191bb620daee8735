//! Fuzz target: arbitrary bytes parsed as JSON through `warren_core::json` (`json_to_table`, `json_to_value`, `json_to_properties`) must never panic, and whatever converts must encode to AMQP bytes that decode again (nothing stored can fail to load) and read back as the same JSON (integers beyond i64 as the same double).
#![no_main]

use amqp_codec::{BasicProperties, FieldTable};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use warren_core::json::{json_to_properties, json_to_table, json_to_value, properties_to_json, table_to_json};

#[path = "../common/same_json.rs"]
mod same_json;
use same_json::same;

/// `table` encoded and decoded again.
fn reload(table: &FieldTable) -> FieldTable {
    let mut buf = BytesMut::new();
    table.encode(&mut buf);
    FieldTable::decode(&mut buf.freeze()).expect("a table made from JSON must decode")
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<Value>(data) else { return };

    if let Ok(table) = json_to_table(&json) {
        let back = table_to_json(&reload(&table));
        let empty = json.is_null() || json.as_array().is_some_and(Vec::is_empty);
        let expected = if empty { Value::Object(Default::default()) } else { json.clone() };
        assert!(same(&back, &expected), "{json} came back as {back}");
    }

    if let Ok(value) = json_to_value(&json) {
        // A value is stored inside a table: that is where the codec counts nesting from.
        let table: FieldTable = [("v", value)].into_iter().collect();
        let back = table_to_json(&reload(&table));
        assert!(same(&back["v"], &json), "{json} came back as {}", back["v"]);
    }

    if let Ok(props) = json_to_properties(&json) {
        let again = BasicProperties::decode(props.to_raw()).expect("properties made from JSON must decode");
        assert_eq!(again, props);
        let shown = properties_to_json(&props);
        assert_eq!(json_to_properties(&shown).as_ref(), Ok(&props), "{shown} does not read back");
    }
});
