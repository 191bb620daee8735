//! JSON equality for the fuzz targets that convert JSON to AMQP values and back: numbers are
//! equal if they are the same double (integers beyond i64 travel as doubles).

use serde_json::Value;

/// Equal JSON, where two numbers are equal if they are the same double.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}
