//! Durable contracts, in the definitions map: key `k` with the vhost and name; the value holds
//! the scope, mode, action (with its dead-letter target) and every kept version (its number and its schema as JSON text).

use super::defs::{key, table_bytes};
use amqp_codec::{FieldTable, FieldValue};
use bytes::Bytes;
use warren_core::contract::{Compatibility, Contract, OnViolation, Scope};

pub fn contract_key(vhost: &str, name: &str) -> Bytes {
    key(b'k', &[vhost.as_bytes(), name.as_bytes()])
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn contract_value(c: &Contract) -> Bytes {
    let mut t = FieldTable::new();
    t.insert("exchange", text(&c.scope().exchange));
    let optional = [
        ("routing_key", &c.scope().routing_key),
        ("message_type", &c.scope().message_type),
        ("content_type", &c.scope().content_type),
    ];
    for (name, value) in optional {
        if let Some(v) = value {
            t.insert(name, text(v));
        }
    }
    if let Some(max) = c.scope().max_body_bytes {
        t.insert("max_body_bytes", FieldValue::I64(max.min(i64::MAX as u64) as i64));
    }
    t.insert("compatibility", text(c.compatibility.as_str()));
    t.insert("on_violation", text(c.on_violation.as_str()));
    if let Some(to) = c.on_violation.dead_letter_to() {
        for (name, value) in [("dead_letter_exchange", &to.exchange), ("dead_letter_routing_key", &to.routing_key)] {
            if let Some(v) = value {
                t.insert(name, text(v));
            }
        }
    }
    let versions = c
        .versions()
        .iter()
        .map(|v| {
            let mut one = FieldTable::new();
            one.insert("number", FieldValue::I64(v.number.into()));
            one.insert("schema", text(&v.schema.to_string()));
            FieldValue::Table(one)
        })
        .collect();
    t.insert("versions", FieldValue::Array(versions));
    table_bytes(&t)
}

/// A stored contract; `None` if the entry is damaged, `Some(Err)` if it no longer compiles.
pub fn parse(vhost: &[u8], name: &[u8], t: &FieldTable) -> Option<Result<Contract, String>> {
    let vhost = std::str::from_utf8(vhost).ok()?;
    let name = std::str::from_utf8(name).ok()?;
    let string = |k: &str| t.get(k).and_then(FieldValue::as_str).map(str::to_owned);
    let scope = Scope {
        exchange: string("exchange")?,
        routing_key: string("routing_key"),
        message_type: string("message_type"),
        content_type: string("content_type"),
        max_body_bytes: t.get("max_body_bytes").and_then(FieldValue::as_i64).map(|n| n.max(0) as u64),
    };
    let compatibility = Compatibility::parse(&string("compatibility")?).ok()?;
    let on_violation =
        OnViolation::parse(&string("on_violation")?, string("dead_letter_exchange"), string("dead_letter_routing_key"))
            .ok()?;
    let FieldValue::Array(items) = t.get("versions")? else { return None };
    let mut versions = Vec::with_capacity(items.len());
    for item in items {
        let v = item.as_table()?;
        let number = u32::try_from(v.get("number")?.as_i64()?).ok()?;
        let schema = serde_json::from_str(v.get("schema")?.as_str()?).ok()?;
        versions.push((number, schema));
    }
    Some(Contract::with_versions(name, vhost, scope, compatibility, on_violation, versions))
}
