//! Helpers for arguments and headers through lapin: a table of string arguments, a delivery's
//! header, and the reason of its first `x-death` entry.

use lapin::types::{AMQPValue, FieldTable, LongString};

/// A table of string arguments (`x-split`, `x-transform`, `x-dead-letter-exchange` ...).
pub fn text_args(pairs: &[(&str, &str)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in pairs {
        table.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    table
}

pub fn header(delivery: &lapin::message::Delivery, name: &str) -> Option<AMQPValue> {
    delivery.properties.headers().as_ref()?.inner().get(name).cloned()
}

/// The reason of a dead letter's latest `x-death` entry.
pub fn death_reason(delivery: &lapin::message::Delivery) -> Option<String> {
    let Some(AMQPValue::FieldArray(deaths)) = header(delivery, "x-death") else { return None };
    let AMQPValue::FieldTable(death) = deaths.as_slice().first()? else { return None };
    match death.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}
