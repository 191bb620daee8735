//! The bodies `warren perf` publishes: `--size` bytes carrying their send time (for latencies),
//! either opaque (`x` bytes behind an 8-byte big-endian time) or, with `--json-body`, an order
//! as JSON that a contract or a content filter can read (the time as 20 digits in its `t` field).

/// The JSON body's opening; the send time follows as 20 decimal digits.
const JSON_HEAD: &[u8] = br#"{"t":""#;
const JSON_TIME_DIGITS: usize = 20;
/// The rest of the order (its items follow), before the padding that brings the body to
/// `--size`.
const JSON_ORDER: &[u8] = br#"","order":{"id":12345,"region":"eu","total":99.5,"currency":"EUR","items":["#;
const JSON_ORDER_END: &[u8] = br#"]},"pad":""#;
const JSON_TAIL: &[u8] = br#""}"#;

/// The order's items: two by default.
fn items(n: usize) -> Vec<u8> {
    let each: Vec<String> = (0..n).map(|i| format!(r#"{{"sku":"S-{i}","qty":{}}}"#, i % 5 + 1)).collect();
    each.join(",").into_bytes()
}

/// The smallest JSON body (no padding), with two items.
pub const MIN_JSON_BYTES: usize = 156;

/// A body to publish again and again, stamped with the time before each publish.
pub struct Body {
    bytes: Vec<u8>,
    json: bool,
}

impl Body {
    /// A body of `size` bytes (a JSON one is at least [`MIN_JSON_BYTES`]).
    #[cfg(test)]
    pub fn new(size: usize, json: bool) -> Body {
        Body::with_items(size, json, 2)
    }

    /// A body of `size` bytes; a JSON one has `items` lines in its order and is never cut
    /// short of them.
    pub fn with_items(size: usize, json: bool, items_count: usize) -> Body {
        if !json {
            return Body { bytes: vec![b'x'; size], json };
        }
        let mut bytes = Vec::with_capacity(size.max(MIN_JSON_BYTES));
        bytes.extend_from_slice(JSON_HEAD);
        bytes.extend_from_slice(&[b'0'; JSON_TIME_DIGITS]);
        bytes.extend_from_slice(JSON_ORDER);
        bytes.extend_from_slice(&items(items_count));
        bytes.extend_from_slice(JSON_ORDER_END);
        let pad = size.saturating_sub(bytes.len() + JSON_TAIL.len());
        bytes.resize(bytes.len() + pad, b'x');
        bytes.extend_from_slice(JSON_TAIL);
        Body { bytes, json }
    }

    /// The body stamped with `now_ns`.
    pub fn stamped(&mut self, now_ns: u64) -> &[u8] {
        if self.json {
            let digits = format!("{now_ns:0width$}", width = JSON_TIME_DIGITS);
            self.bytes[JSON_HEAD.len()..JSON_HEAD.len() + JSON_TIME_DIGITS].copy_from_slice(digits.as_bytes());
        } else if self.bytes.len() >= 8 {
            self.bytes[..8].copy_from_slice(&now_ns.to_be_bytes());
        }
        &self.bytes
    }
}

/// The send time a received body carries, if it has one.
pub fn sent_ns(payload: &[u8], json: bool) -> Option<u64> {
    if json {
        let digits = payload.get(JSON_HEAD.len()..JSON_HEAD.len() + JSON_TIME_DIGITS)?;
        return std::str::from_utf8(digits).ok()?.parse().ok();
    }
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_json_of_the_size_asked_and_carry_their_time() {
        let mut body = Body::new(1024, true);
        let bytes = body.stamped(1_234_567_890).to_vec();
        assert_eq!(bytes.len(), 1024);
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["order"]["region"], "eu");
        assert_eq!(sent_ns(&bytes, true), Some(1_234_567_890));
        assert_eq!(Body::new(10, true).stamped(1).len(), MIN_JSON_BYTES, "never cut short");
        let ten: serde_json::Value = serde_json::from_slice(Body::with_items(1024, true, 10).stamped(1)).unwrap();
        assert_eq!(ten["order"]["items"].as_array().map(Vec::len), Some(10));
        let mut opaque = Body::new(16, false);
        assert_eq!(sent_ns(opaque.stamped(77), false), Some(77));
        assert_eq!(sent_ns(b"short", false), None);
    }
}
