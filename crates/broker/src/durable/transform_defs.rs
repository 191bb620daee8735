//! Durable transforms, in the definitions map: key `t` with the vhost and name; the value holds
//! the version, the program, the lookup tables (JSON text) and the budget.

use super::defs::{key, table_bytes};
use crate::transforms::Transform;
use amqp_codec::{FieldTable, FieldValue};
use bytes::Bytes;
use warren_transform::Limits;

pub fn transform_key(vhost: &str, name: &str) -> Bytes {
    key(b't', &[vhost.as_bytes(), name.as_bytes()])
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn transform_value(t: &Transform) -> Bytes {
    let mut table = FieldTable::new();
    table.insert("version", FieldValue::I64(t.version.into()));
    table.insert("program", text(&t.program.text));
    table.insert("lookup", text(&t.program.lookup.to_string()));
    table.insert("timeout_ms", FieldValue::I64(t.limits.timeout_ms.min(i64::MAX as u64) as i64));
    table.insert("max_outputs", FieldValue::I64(t.limits.max_outputs as i64));
    table.insert("max_output_bytes", FieldValue::I64(t.limits.max_output_bytes as i64));
    table_bytes(&table)
}

/// A stored transform; `None` if the entry is damaged.
pub fn parse(vhost: &[u8], name: &[u8], t: &FieldTable) -> Option<Transform> {
    let vhost = std::str::from_utf8(vhost).ok()?;
    let name = std::str::from_utf8(name).ok()?;
    let int = |k: &str| t.get(k).and_then(FieldValue::as_i64).filter(|n| *n >= 0);
    let program = t.get("program")?.as_str()?.to_owned();
    let lookup = serde_json::from_str(t.get("lookup")?.as_str()?).ok()?;
    let limits = Limits {
        timeout_ms: int("timeout_ms")? as u64,
        max_outputs: int("max_outputs")? as usize,
        max_output_bytes: int("max_output_bytes")? as usize,
    };
    Some(Transform::new(vhost, name, u32::try_from(int("version")?).ok()?, program, lookup, limits))
}
