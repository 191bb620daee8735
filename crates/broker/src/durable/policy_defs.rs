//! Durable policies and operator policies, in the same definitions map as everything else.
//! Keys are `y` (policy) or `o` (operator policy) with the vhost and name; the value is a field
//! table of the pattern, `apply-to`, priority and the definition as given.

use super::defs::{key, table_bytes};
use amqp_codec::{FieldTable, FieldValue};
use bytes::Bytes;
use warren_core::policy::{ApplyTo, Policy};

/// Set once the configuration's policies were written (separately from the access marker:
/// data directories from before runtime policies get the configured ones once).
pub fn seeded_key() -> Bytes {
    key(b'm', &[b"policies-seeded"])
}

pub fn policy_key(vhost: &str, name: &str, operator: bool) -> Bytes {
    key(if operator { b'o' } else { b'y' }, &[vhost.as_bytes(), name.as_bytes()])
}

pub fn policy_value(p: &Policy) -> Bytes {
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    let mut definition = FieldTable::new();
    for (k, v) in &p.definition {
        definition.insert(k.as_str(), v.clone());
    }
    let mut t = FieldTable::new();
    t.insert("pattern", text(&p.pattern));
    t.insert("apply_to", text(p.apply_to.as_str()));
    t.insert("priority", FieldValue::I64(p.priority as i64));
    t.insert("definition", FieldValue::Table(definition));
    table_bytes(&t)
}

/// Parses one stored policy; `Err` with the reason if it no longer compiles.
pub fn parse(kind: u8, vhost: &[u8], name: &[u8], table: &FieldTable) -> Option<Result<Policy, String>> {
    let vhost = std::str::from_utf8(vhost).ok()?;
    let name = std::str::from_utf8(name).ok()?;
    let pattern = table.get("pattern").and_then(FieldValue::as_str)?;
    let apply_to = ApplyTo::parse(table.get("apply_to").and_then(FieldValue::as_str)?).ok()?;
    let priority = table.get("priority").and_then(FieldValue::as_i64)? as i32;
    let definition = table.get("definition").and_then(FieldValue::as_table)?;
    let definition = definition.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect();
    Some(Policy::new(name, vhost, pattern, apply_to, priority, kind == b'o', definition))
}
