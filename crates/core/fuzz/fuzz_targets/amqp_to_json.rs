//! Fuzz target: arbitrary bytes decoded as an AMQP field table (and as basic properties) through `warren_core::json` (`table_to_json`, `properties_to_json`) must never panic; the JSON of a decoded table converts back (`json_to_table`) to a table that encodes, decodes, and shows as the same JSON (numbers as the same double).
#![no_main]

use amqp_codec::{BasicProperties, FieldTable};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren_core::json::{json_to_properties, json_to_table, properties_to_json, table_to_json};

#[path = "../common/same_json.rs"]
mod same_json;
use same_json::same;

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
