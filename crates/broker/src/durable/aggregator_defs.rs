//! Durable aggregators, in the definitions map: key `g` with the vhost and name; the value
//! holds the definition as JSON.

use super::defs::{key, table_bytes};
use crate::aggregators::AggregatorDef;
use amqp_codec::{FieldTable, FieldValue};
use bytes::Bytes;

pub fn aggregator_key(vhost: &str, name: &str) -> Bytes {
    key(b'g', &[vhost.as_bytes(), name.as_bytes()])
}

pub fn aggregator_value(def: &AggregatorDef) -> Bytes {
    let mut table = FieldTable::new();
    let json = serde_json::to_string(def).unwrap_or_default();
    table.insert("definition", FieldValue::LongStr(Bytes::from(json)));
    table_bytes(&table)
}

/// A stored aggregator; `None` if the entry is damaged.
pub fn parse(vhost: &[u8], name: &[u8], t: &FieldTable) -> Option<AggregatorDef> {
    let mut def: AggregatorDef = serde_json::from_str(t.get("definition")?.as_str()?).ok()?;
    def.vhost = std::str::from_utf8(vhost).ok()?.to_owned();
    def.name = std::str::from_utf8(name).ok()?.to_owned();
    Some(def)
}
