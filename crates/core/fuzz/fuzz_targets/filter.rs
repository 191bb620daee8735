//! Fuzz target: a content filter's text (before the first NUL byte) and a JSON message (after it: its `p` object gives the properties, `h` the headers, the whole document the body) through `Filter::parse`, `Filter::matches` and `parse_path` must never panic; an error points inside the text; a parsed filter printed back parses to the same expression (or fails only on the depth/length bounds the extra parentheses can cross) and decides the same; and a filter and `NOT (filter)` never both match (three-valued logic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use warren_core::filter::{parse_path, Filter, Subject, Value};

/// A message made from a JSON document.
struct Message(Option<Json>);

fn scalar(v: &Json) -> Value<'_> {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Null, Value::Float),
        },
        Json::String(s) => Value::Str(s),
        _ => Value::Other,
    }
}

impl Subject for Message {
    fn property(&self, name: &str) -> Option<Value<'_>> {
        self.0.as_ref()?.get("p")?.get(name).map(scalar)
    }
    fn header(&self, name: &str) -> Option<Value<'_>> {
        self.0.as_ref()?.get("h")?.get(name).map(scalar)
    }
    fn body(&self) -> Option<&Json> {
        self.0.as_ref()
    }
}

/// Errors only the printed form can run into: it puts every operation in parentheses.
fn is_bound(message: &str) -> bool {
    message.contains("nested deeper") || message.contains("longer than")
}

fuzz_target!(|data: &[u8]| {
    let (text, message) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], serde_json::from_slice(&data[at + 1..]).ok()),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let message = Message(message);

    if let Ok(path) = parse_path(text) {
        let _ = path.read(&message);
        match parse_path(&path.to_string()) {
            Ok(again) => assert_eq!(again, path, "printed path parses differently"),
            Err(e) => assert!(is_bound(&e.message), "printed path {path} refused: {e}"),
        }
    }

    let filter = match Filter::parse(text) {
        Ok(f) => f,
        Err(e) => {
            assert!(e.position <= text.len(), "error position {} outside the text", e.position);
            return;
        }
    };
    let matched = filter.matches(&message);

    let printed = filter.expr().to_string();
    match Filter::parse(&printed) {
        Ok(again) => {
            assert_eq!(again.expr(), filter.expr(), "printed filter {printed} parses differently");
            assert_eq!(again.reads_body(), filter.reads_body());
            assert_eq!(again.matches(&message), matched, "printed filter {printed} decides differently");
        }
        Err(e) => assert!(is_bound(&e.message), "printed filter {printed} refused: {e}"),
    }

    if let Ok(negated) = Filter::parse(&format!("NOT ({text})")) {
        assert!(!(matched && negated.matches(&message)), "both the filter and its negation match");
    }
});
