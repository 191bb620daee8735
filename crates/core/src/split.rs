//! Splitting (the Splitter pattern): an exchange with `x-split` turns each message into parts
//! before routing, the elements of a JSON array at a path of its body (`body.lines`, or `body`
//! for a body that is an array), or the outputs of its `x-transform` (`x-split: transform`).
//! Each part carries `x-split-id` (the original's `message_id`, else an id the broker makes),
//! `x-split-index` (from 0), `x-split-count` and the original's `correlation_id`, so an
//! aggregator can put them back together.

use crate::filter::{parse_path, Root, Step};
use amqp_codec::{FieldTable, FieldValue};
use bytes::Bytes;
use serde_json::Value;

/// The exchange argument that makes an exchange split.
pub const SPLIT_ARG: &str = "x-split";
/// The argument bounding the parts of one message (default [`DEFAULT_MAX_PARTS`]).
pub const MAX_PARTS_ARG: &str = "x-split-max-parts";
/// Headers of every part.
pub const ID_HEADER: &str = "x-split-id";
pub const INDEX_HEADER: &str = "x-split-index";
pub const COUNT_HEADER: &str = "x-split-count";
/// Parts of one message by default, and at most (a group of parts is one store record).
pub const DEFAULT_MAX_PARTS: usize = 1_000;
pub const MAX_PARTS: usize = 10_000;
/// Largest body split (parsed as JSON whole).
pub const MAX_SPLIT_BODY_BYTES: usize = 16 << 20;

/// What an exchange splits its messages by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitBy {
    /// The elements of the array at these steps into the body.
    Path(Vec<Step>),
    /// The outputs of the exchange's transform.
    Transform,
}

/// An exchange's splitting, as its arguments declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub by: SplitBy,
    pub max_parts: usize,
    /// The argument's text, for listings.
    pub text: String,
}

impl Split {
    /// The splitting `arguments` declare: `None` without `x-split`, `Err` with what is wrong.
    pub fn from_arguments(arguments: &FieldTable) -> Result<Option<Split>, String> {
        let Some(value) = arguments.get(SPLIT_ARG) else { return Ok(None) };
        let Some(text) = value.as_str() else { return Err(format!("{SPLIT_ARG} must be a string")) };
        let by = if text == "transform" {
            if arguments.get("x-transform").and_then(FieldValue::as_str).is_none() {
                return Err(format!("{SPLIT_ARG} 'transform' needs an x-transform argument"));
            }
            SplitBy::Transform
        } else {
            let path = parse_path(text).map_err(|e| format!("{SPLIT_ARG}: {e}"))?;
            if path.root != Root::Body {
                return Err(format!("{SPLIT_ARG} must be a path into the body (body.lines) or 'transform'"));
            }
            SplitBy::Path(path.steps)
        };
        let max_parts = match arguments.get(MAX_PARTS_ARG) {
            None => DEFAULT_MAX_PARTS,
            Some(v) => match v.as_i64() {
                Some(n) if (1..=MAX_PARTS as i64).contains(&n) => n as usize,
                _ => return Err(format!("{MAX_PARTS_ARG} must be an integer from 1 to {MAX_PARTS}")),
            },
        };
        Ok(Some(Split { by, max_parts, text: text.to_owned() }))
    }

    /// The bodies of the parts of a message with `body` (split by a path): each element of the
    /// array there, as JSON. `Err` says why it cannot be split.
    pub fn parts_of(&self, body: &[u8]) -> Result<Vec<Bytes>, String> {
        let SplitBy::Path(steps) = &self.by else { return Err("split by the transform's outputs".into()) };
        if body.len() > MAX_SPLIT_BODY_BYTES {
            return Err(format!("the body is larger than {MAX_SPLIT_BODY_BYTES} bytes"));
        }
        let mut doc: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON ({e})"))?;
        let mut at = &mut doc;
        for step in steps {
            let next = match (step, at) {
                (Step::Key(k), Value::Object(map)) => map.get_mut(k),
                (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
                _ => None,
            };
            at = next.ok_or_else(|| format!("the body has nothing at {}", self.text))?;
        }
        let Value::Array(items) = at.take() else { return Err(format!("{} is not an array", self.text)) };
        if items.len() > self.max_parts {
            return Err(format!(
                "{} has {} elements, more than the {} parts allowed",
                self.text,
                items.len(),
                self.max_parts
            ));
        }
        Ok(items.iter().map(|item| Bytes::from(serde_json::to_vec(item).unwrap_or_default())).collect())
    }
}

/// Stamps part `index` of `count` of the message `split_id` into `headers`.
pub fn stamp(headers: &mut FieldTable, split_id: &str, index: usize, count: usize) {
    headers.insert(ID_HEADER, FieldValue::LongStr(Bytes::copy_from_slice(split_id.as_bytes())));
    headers.insert(INDEX_HEADER, FieldValue::I64(index as i64));
    headers.insert(COUNT_HEADER, FieldValue::I64(count as i64));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Result<Option<Split>, String> {
        let mut args = FieldTable::new();
        args.insert(SPLIT_ARG, FieldValue::LongStr(text.to_owned().into()));
        Split::from_arguments(&args)
    }

    #[test]
    fn a_path_splits_the_array_there_into_json_parts() {
        let s = split("body.order.lines").unwrap().unwrap();
        let parts = s.parts_of(br#"{"order": {"lines": [{"sku": "a"}, 2, "x", null]}}"#).unwrap();
        let texts: Vec<&[u8]> = parts.iter().map(|b| b.as_ref()).collect();
        assert_eq!(texts, vec![&br#"{"sku":"a"}"#[..], b"2", br#""x""#, b"null"]);
        assert_eq!(split("body").unwrap().unwrap().parts_of(b"[1,[2]]").unwrap().len(), 2);
        assert_eq!(split("body.lines").unwrap().unwrap().parts_of(br#"{"lines": []}"#).unwrap().len(), 0);
        assert_eq!(split("body[1].l").unwrap().unwrap().parts_of(br#"[0, {"l": [5]}]"#).unwrap().len(), 1);
    }

    #[test]
    fn what_cannot_be_split_says_why() {
        let s = split("body.lines").unwrap().unwrap();
        assert!(s.parts_of(b"<xml/>").unwrap_err().contains("not JSON"));
        assert!(s.parts_of(br#"{"other": 1}"#).unwrap_err().contains("nothing at body.lines"));
        assert!(s.parts_of(br#"{"lines": {"a": 1}}"#).unwrap_err().contains("not an array"));
        let mut args = FieldTable::new();
        args.insert(SPLIT_ARG, FieldValue::LongStr("body".into()));
        args.insert(MAX_PARTS_ARG, FieldValue::I64(2));
        let small = Split::from_arguments(&args).unwrap().unwrap();
        assert!(small.parts_of(b"[1,2,3]").unwrap_err().contains("more than the 2 parts"));
    }

    #[test]
    fn bad_arguments_are_refused_with_the_reason() {
        assert!(split("headers.lines").unwrap_err().contains("path into the body"));
        assert!(split("body.").unwrap_err().contains("expected a name"));
        assert!(split("transform").unwrap_err().contains("needs an x-transform"));
        let mut args = FieldTable::new();
        args.insert(SPLIT_ARG, FieldValue::LongStr("transform".into()));
        args.insert("x-transform", FieldValue::LongStr("t".into()));
        assert_eq!(Split::from_arguments(&args).unwrap().unwrap().by, SplitBy::Transform);
        args.insert(MAX_PARTS_ARG, FieldValue::I64(0));
        assert!(Split::from_arguments(&args).unwrap_err().contains("from 1 to"));
        assert_eq!(Split::from_arguments(&FieldTable::new()).unwrap(), None);
    }
}
