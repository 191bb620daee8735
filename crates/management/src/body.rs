//! Request bodies as RabbitMQ's API reads them: JSON whose booleans and numbers may also come
//! as strings (`rabbitmqadmin` sends `"false"` and `"1"`), an empty body as `{}`, and any
//! malformed body a 400.

use crate::error::{MgmtError, Result};
use bytes::Bytes;
use serde::de::{DeserializeOwned, Deserializer, Error};
use serde::Deserialize;
use serde_json::Value;

/// Parses a request body (empty: `{}`).
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(text).map_err(|e| MgmtError::bad_request(format!("invalid JSON body: {e}")))
}

/// A name as an AMQP short string, or 400 naming `what` it is.
pub fn short_name(name: &str, what: &str) -> Result<amqp_codec::ShortStr> {
    amqp_codec::ShortStr::try_from_string(name.to_owned())
        .map_err(|_| MgmtError::bad_request(format!("{what} '{name}' is longer than 255 bytes")))
}

/// A boolean, or the string `"true"` / `"false"`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        other => Err(D::Error::custom(format!("expected a boolean, got {other}"))),
    }
}

pub fn optional_boolean<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<bool>, D::Error> {
    boolean(d).map(Some)
}

/// A non-negative integer, or a string of one.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) if n.is_u64() => Ok(n.as_u64().unwrap_or(0)),
        Value::String(s) => s.trim().parse().map_err(|_| D::Error::custom(format!("expected a count, got \"{s}\""))),
        other => Err(D::Error::custom(format!("expected a count, got {other}"))),
    }
}

pub fn optional_count<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    count(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "boolean")]
        flag: bool,
        #[serde(deserialize_with = "count")]
        n: u64,
    }

    #[test]
    fn strings_stand_for_booleans_and_counts() {
        let s: Sample = parse(&Bytes::from_static(br#"{"flag": "true", "n": "12"}"#)).unwrap();
        assert!(s.flag && s.n == 12);
        let s: Sample = parse(&Bytes::from_static(br#"{"flag": false, "n": 3}"#)).unwrap();
        assert!(!s.flag && s.n == 3);
        assert_eq!(parse::<Sample>(&Bytes::from_static(br#"{"flag": "yes", "n": 1}"#)).unwrap_err().status, 400);
        assert_eq!(parse::<Sample>(&Bytes::from_static(b"{not json")).unwrap_err().status, 400);
    }
}
