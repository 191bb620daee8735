//! Fuzz target: arbitrary bytes through `FieldTable::decode` must never panic; a table that decodes re-encodes to exactly as many bytes as it consumed (`encoded_len` agrees), and decodes again to the same table with the same encoding.
#![no_main]

use amqp_codec::{FieldTable, FieldValue};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fn encode(table: &FieldTable) -> Bytes {
    let mut out = BytesMut::new();
    table.encode(&mut out);
    out.freeze()
}

/// Every accessor on every value, nested ones included.
fn touch(v: &FieldValue) {
    let _ = (v.as_i64(), v.as_str(), v.as_bool(), v.tag(), v.encoded_len());
    if let Some(t) = v.as_table() {
        for (k, v) in t {
            assert!(t.contains_key(k));
            touch(v);
        }
    }
    for item in v.as_array().unwrap_or_default() {
        touch(item);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::copy_from_slice(data);
    let Ok(table) = FieldTable::decode(&mut input) else {
        return;
    };
    let consumed = data.len() - input.len();
    for (_, v) in &table {
        touch(v);
    }

    let first = encode(&table);
    assert_eq!(first.len(), table.encoded_len(), "encoded_len disagrees with encode");
    assert_eq!(first.len(), consumed, "re-encoding changed the table's size");
    let mut rest = first.clone();
    let again = FieldTable::decode(&mut rest).expect("re-encoded table must decode");
    assert!(rest.is_empty(), "re-encoded table left bytes behind");
    // NaN floats are not equal to themselves: compare their text then.
    if again != table {
        assert_eq!(format!("{again:?}"), format!("{table:?}"), "table changed through encode/decode");
    }
    assert_eq!(encode(&again), first, "table encoding is not canonical");
});
