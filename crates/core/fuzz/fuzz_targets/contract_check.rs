//! Fuzz target: a routing key (before the first newline) and a message body (after it) through `Contract::covers` and `Contract::check` against a fixed JSON Schema (2020-12) using most keywords must never panic; a message passes only if its body is JSON, and a refusal carries 1 to MAX_VIOLATIONS violations, each with a JSON-pointer and a message cut to MAX_VIOLATION_TEXT bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::sync::OnceLock;
use warren_core::contract::{Compatibility, Contract, OnViolation, Scope, MAX_VIOLATIONS, MAX_VIOLATION_TEXT};

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let schema = json!({
            "$defs": {
                "sku": {"type": "string", "pattern": "^[A-Z]{1,3}-[0-9]+$", "maxLength": 12},
                "line": {"type": "object", "required": ["sku", "qty"], "additionalProperties": false,
                         "properties": {"sku": {"$ref": "#/$defs/sku"},
                                        "qty": {"type": "integer", "minimum": 1, "maximum": 1000},
                                        "price": {"type": "number", "multipleOf": 0.01, "exclusiveMinimum": 0}}}
            },
            "type": "object",
            "required": ["id", "lines"],
            "properties": {
                "id": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "format": "uuid"}]},
                "region": {"enum": ["eu", "us", "asia", null]},
                "kind": {"const": "order"},
                "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}, "minItems": 1, "maxItems": 50,
                          "uniqueItems": true, "contains": {"properties": {"qty": {"minimum": 2}}}},
                "tags": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}],
                         "items": false},
                "note": {"type": ["string", "null"], "minLength": 1, "maxLength": 40},
                "meta": {"type": "object", "propertyNames": {"pattern": "^[a-z_]+$"}, "maxProperties": 8,
                         "patternProperties": {"^x_": {"type": "string"}}},
                "paid": {"type": "boolean"},
                "total": {"type": "number"}
            },
            "dependentRequired": {"paid": ["total"]},
            "if": {"properties": {"region": {"const": "eu"}}, "required": ["region"]},
            "then": {"required": ["total"]},
            "not": {"required": ["forbidden"]},
            "oneOf": [{"required": ["note"]}, {"not": {"required": ["note"]}}],
            "unevaluatedProperties": false
        });
        let scope = Scope {
            exchange: "orders".into(),
            routing_key: Some("orders.*.#".into()),
            message_type: None,
            content_type: Some("application/json".into()),
            max_body_bytes: Some(2048),
        };
        Contract::new("order", "/", scope, Compatibility::Backward, OnViolation::Reject, schema)
            .expect("the fuzz schema compiles")
    })
}

fuzz_target!(|data: &[u8]| {
    let contract = contract();
    let (key, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&data[..0], data),
    };
    let key = String::from_utf8_lossy(key);
    let _ = contract.covers(&key, None);

    match contract.check(Some("application/json"), body) {
        Ok(version) => {
            assert_eq!(version, 1);
            assert!(serde_json::from_slice::<serde_json::Value>(body).is_ok(), "a body that is not JSON passed");
        }
        Err(violations) => {
            assert!((1..=MAX_VIOLATIONS).contains(&violations.len()), "{} violations", violations.len());
            for v in &violations {
                assert!(v.pointer.is_empty() || v.pointer.starts_with('/'), "pointer {:?}", v.pointer);
                assert!(v.message.len() <= MAX_VIOLATION_TEXT + '…'.len_utf8(), "message of {} bytes", v.message.len());
            }
        }
    }
    assert!(contract.check(Some("text/plain"), body).is_err(), "the wrong content type passed");
});
