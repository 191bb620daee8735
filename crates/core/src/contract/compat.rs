//! Whether a new version of a contract's schema is compatible with the previous one, as
//! Confluent Schema Registry defines the modes for JSON Schema: `backward` (the new schema
//! accepts every message the old one did: consumers upgrade first), `forward` (the old schema
//! accepts every message the new one does: producers upgrade first), `full` (both), `none`.
//!
//! Both directions come down to one question, "does every instance valid under A also validate
//! under B?", answered structurally: types, enums and constants, numeric and length bounds,
//! required and known properties, closed objects (`additionalProperties: false`), array items.
//! The check is sound but not complete: what it cannot prove (`anyOf`, `oneOf`, `not`, `$ref`,
//! conditionals that differ between the versions) counts as incompatible, with the reason.

use serde_json::{Map, Value};

/// How versions of a contract must relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    None,
    Backward,
    Forward,
    Full,
}

impl Compatibility {
    pub fn parse(text: &str) -> Result<Compatibility, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(Compatibility::None),
            "backward" => Ok(Compatibility::Backward),
            "forward" => Ok(Compatibility::Forward),
            "full" => Ok(Compatibility::Full),
            other => Err(format!("compatibility '{other}' is none, backward, forward or full")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "none",
            Compatibility::Backward => "backward",
            Compatibility::Forward => "forward",
            Compatibility::Full => "full",
        }
    }
}

/// The reasons `new` is not compatible with `old` under `mode` (empty: compatible).
pub fn check(mode: Compatibility, old: &Value, new: &Value) -> Vec<String> {
    let mut reasons = Vec::new();
    if matches!(mode, Compatibility::Backward | Compatibility::Full) {
        subset(old, new, "", &mut reasons, "backward: a message the previous version accepted is refused");
    }
    if matches!(mode, Compatibility::Forward | Compatibility::Full) {
        subset(new, old, "", &mut reasons, "forward: a message this version accepts is refused by the previous one");
    }
    reasons
}

/// Keywords whose meaning this check does not model: compared for equality only.
const OPAQUE: &[&str] = &[
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "$dynamicRef",
    "if",
    "then",
    "else",
    "patternProperties",
    "dependentSchemas",
    "dependentRequired",
    "prefixItems",
    "contains",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
];

fn accepts_everything(s: &Value) -> bool {
    match s {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| !is_constraint(k)),
        _ => false,
    }
}

/// Whether a keyword constrains instances (annotations such as `title` do not).
fn is_constraint(key: &str) -> bool {
    !matches!(
        key,
        "$schema"
            | "$id"
            | "$comment"
            | "title"
            | "description"
            | "default"
            | "examples"
            | "deprecated"
            | "readOnly"
            | "writeOnly"
            | "format"
            | "$defs"
            | "definitions"
            | "$anchor"
    )
}

fn types(s: &Map<String, Value>) -> Option<Vec<String>> {
    match s.get("type")? {
        Value::String(t) => Some(vec![t.clone()]),
        Value::Array(ts) => Some(ts.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()),
        _ => None,
    }
}

fn type_within(t: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| a == t || (t == "integer" && a == "number"))
}

/// Adds to `reasons` where instances valid under `a` may be invalid under `b`.
fn subset(a: &Value, b: &Value, at: &str, reasons: &mut Vec<String>, why: &str) {
    if a == b || accepts_everything(b) || *a == Value::Bool(false) {
        return;
    }
    let fail = |reasons: &mut Vec<String>, what: String| {
        if reasons.len() < 32 {
            reasons.push(format!("{why} at '{}': {what}", if at.is_empty() { "/" } else { at }));
        }
    };
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return fail(reasons, "one of the two versions is `true`/`false` where the other is a schema".into());
    };
    for key in OPAQUE {
        if a.get(*key) != b.get(*key) {
            return fail(reasons, format!("'{key}' differs, and its effect cannot be compared"));
        }
    }
    match (types(a), types(b)) {
        (_, None) => {}
        (None, Some(tb)) => return fail(reasons, format!("any type was allowed, now only {}", tb.join(", "))),
        (Some(ta), Some(tb)) => {
            if let Some(t) = ta.iter().find(|t| !type_within(t, &tb)) {
                return fail(reasons, format!("type '{t}' is no longer allowed"));
            }
        }
    }
    for key in ["enum", "const"] {
        if let Some(vb) = b.get(key) {
            let allowed: Vec<&Value> = match vb {
                Value::Array(v) if key == "enum" => v.iter().collect(),
                v => vec![v],
            };
            let from_a: Option<Vec<&Value>> = a
                .get("enum")
                .and_then(Value::as_array)
                .map(|v| v.iter().collect())
                .or_else(|| a.get("const").map(|c| vec![c]));
            match from_a {
                Some(values) if values.iter().all(|v| allowed.contains(v)) => {}
                _ => fail(reasons, format!("'{key}' narrows the values allowed")),
            }
        }
    }
    bound(a, b, "minimum", true, at, reasons, why);
    bound(a, b, "exclusiveMinimum", true, at, reasons, why);
    bound(a, b, "maximum", false, at, reasons, why);
    bound(a, b, "exclusiveMaximum", false, at, reasons, why);
    bound(a, b, "minLength", true, at, reasons, why);
    bound(a, b, "maxLength", false, at, reasons, why);
    bound(a, b, "minItems", true, at, reasons, why);
    bound(a, b, "maxItems", false, at, reasons, why);
    bound(a, b, "minProperties", true, at, reasons, why);
    bound(a, b, "maxProperties", false, at, reasons, why);
    for key in ["pattern", "multipleOf", "uniqueItems"] {
        if let Some(vb) = b.get(key) {
            if a.get(key) != Some(vb) {
                fail(reasons, format!("'{key}' is new or changed"));
            }
        }
    }
    // Objects.
    let required = |s: &Map<String, Value>| -> Vec<String> {
        s.get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (req_a, req_b) = (required(a), required(b));
    for r in req_b.iter().filter(|r| !req_a.contains(r)) {
        fail(reasons, format!("property '{r}' is now required"));
    }
    let empty = Map::new();
    let props = |s: &Map<String, Value>| {
        s.get("properties").and_then(Value::as_object).cloned().unwrap_or_else(|| empty.clone())
    };
    let (props_a, props_b) = (props(a), props(b));
    let open = |s: &Map<String, Value>| s.get("additionalProperties").cloned().unwrap_or(Value::Bool(true));
    let (extra_a, extra_b) = (open(a), open(b));
    for (name, sb) in &props_b {
        let path = format!("{at}/properties/{name}");
        match props_a.get(name) {
            Some(sa) => subset(sa, sb, &path, reasons, why),
            // Under `a` the property was covered by additionalProperties.
            None => subset(&extra_a, sb, &path, reasons, why),
        }
    }
    for (name, sa) in props_a.iter().filter(|(n, _)| !props_b.contains_key(*n)) {
        subset(sa, &extra_b, &format!("{at}/properties/{name}"), reasons, why);
    }
    if extra_a != Value::Bool(false) {
        subset(&extra_a, &extra_b, &format!("{at}/additionalProperties"), reasons, why);
    }
    // Arrays.
    if let Some(ib) = b.get("items") {
        let ia = a.get("items").cloned().unwrap_or(Value::Bool(true));
        subset(&ia, ib, &format!("{at}/items"), reasons, why);
    }
}

/// A bound in `b` must not be tighter than in `a` (`lower`: a minimum, else a maximum).
fn bound(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    key: &str,
    lower: bool,
    at: &str,
    reasons: &mut Vec<String>,
    why: &str,
) {
    let Some(nb) = b.get(key).and_then(Value::as_f64) else { return };
    let tighter = match a.get(key).and_then(Value::as_f64) {
        None => true,
        Some(na) => {
            if lower {
                nb > na
            } else {
                nb < na
            }
        }
    };
    if tighter && reasons.len() < 32 {
        reasons.push(format!("{why} at '{}': '{key}' is tighter", if at.is_empty() { "/" } else { at }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(extra: Value) -> Value {
        let mut s = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}}});
        if let (Some(base), Some(more)) = (s.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                base.insert(k.clone(), v.clone());
            }
        }
        s
    }

    #[test]
    fn an_optional_property_keeps_an_open_schema_compatible_both_ways() {
        let old = order(json!({}));
        let mut new = old.clone();
        new["properties"]["note"] = json!({"type": "string"});
        // Old messages may carry any `note` (the old schema is open): the new one limits it to
        // strings, so backward fails; every new message validates under the old one: forward holds.
        assert!(!check(Compatibility::Backward, &old, &new).is_empty());
        assert!(check(Compatibility::Forward, &old, &new).is_empty());
    }

    #[test]
    fn required_properties_types_and_bounds_decide_each_direction() {
        let old = order(json!({}));
        let mut more_required = old.clone();
        more_required["required"] = json!(["id", "total"]);
        assert!(check(Compatibility::Backward, &old, &more_required)[0].contains("'total' is now required"));
        assert!(check(Compatibility::Forward, &old, &more_required).is_empty());
        let mut narrower = old.clone();
        narrower["properties"]["id"] = json!({"type": "string"});
        let reasons = check(Compatibility::Full, &old, &narrower);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("/properties/id") && reasons[0].contains("type 'integer'"));
        let mut tighter = old.clone();
        tighter["properties"]["total"]["minimum"] = json!(10);
        assert!(check(Compatibility::Backward, &old, &tighter)[0].contains("'minimum' is tighter"));
        assert!(check(Compatibility::Forward, &old, &tighter).is_empty());
        let mut wider = old.clone();
        wider["properties"]["id"] = json!({"type": "number"});
        assert!(check(Compatibility::Backward, &old, &wider).is_empty(), "integers are numbers");
        assert!(check(Compatibility::None, &old, &json!({"type": "string"})).is_empty());
    }

    #[test]
    fn closed_objects_enums_and_unknown_keywords() {
        let closed = order(json!({"additionalProperties": false}));
        let mut closed_more = closed.clone();
        closed_more["properties"]["note"] = json!({"type": "string"});
        assert!(
            check(Compatibility::Full, &closed, &closed_more).iter().all(|r| r.starts_with("forward")),
            "a closed object gaining an optional property is backward compatible"
        );
        assert!(check(Compatibility::Backward, &closed, &closed_more).is_empty());
        let colours = json!({"enum": ["red", "green"]});
        assert!(check(Compatibility::Backward, &colours, &json!({"enum": ["red", "green", "blue"]})).is_empty());
        assert!(!check(Compatibility::Backward, &colours, &json!({"enum": ["red"]})).is_empty());
        let one_of = json!({"oneOf": [{"type": "string"}, {"type": "integer"}]});
        assert!(check(Compatibility::Backward, &one_of, &json!({"oneOf": [{"type": "string"}]}))[0]
            .contains("cannot be compared"));
        assert!(check(Compatibility::Full, &one_of, &one_of.clone()).is_empty(), "an unchanged schema is compatible");
        assert_eq!(Compatibility::parse("FULL"), Ok(Compatibility::Full));
        assert!(Compatibility::parse("transitive").is_err());
    }
}
