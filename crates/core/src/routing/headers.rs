//! The headers exchange type, and its matching: binding arguments against message headers with `x-match` = `all`,
//! `any`, `all-with-x` or `any-with-x`, as RabbitMQ defines them.

use super::ExchangeType;
use crate::AmqpError;
use amqp_codec::{FieldTable, FieldValue, ShortStr};

/// The headers exchange type: each binding's arguments matched against the message's headers.
#[derive(Debug)]
pub struct Headers<D>(Vec<(MatchMode, FieldTable, D)>);

impl<D> Default for Headers<D> {
    fn default() -> Self {
        Headers(Vec::new())
    }
}

impl<D: Clone + PartialEq> ExchangeType<D> for Headers<D> {
    fn insert(&mut self, destination: D, _: &ShortStr, arguments: &FieldTable) -> Result<(), AmqpError> {
        let mode = MatchMode::from_binding_args(arguments)?;
        self.0.push((mode, arguments.clone(), destination));
        Ok(())
    }

    fn remove(&mut self, destination: &D, _: &ShortStr, arguments: &FieldTable) {
        if let Some(i) = self.0.iter().position(|(_, a, d)| d == destination && a == arguments) {
            self.0.swap_remove(i);
        }
    }

    fn route(&self, _: &str, headers: Option<&FieldTable>, emit: &mut impl FnMut(&D)) {
        for (mode, args, dest) in &self.0 {
            if matches(*mode, args, headers) {
                emit(dest);
            }
        }
    }

    fn needs_headers(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl MatchMode {
    /// Read `x-match` from binding arguments (default `all`); an unknown value is 406, as in RabbitMQ.
    pub fn from_binding_args(args: &FieldTable) -> Result<MatchMode, AmqpError> {
        match args.get("x-match") {
            None => Ok(MatchMode::All),
            Some(v) => match v.as_str() {
                Some("all") => Ok(MatchMode::All),
                Some("any") => Ok(MatchMode::Any),
                Some("all-with-x") => Ok(MatchMode::AllWithX),
                Some("any-with-x") => Ok(MatchMode::AnyWithX),
                _ => Err(AmqpError::precondition_failed(format!(
                    "Invalid x-match field value {v:?}; expected all, any, all-with-x, or any-with-x"
                ))),
            },
        }
    }
}

/// Does a message with `headers` match a binding with `args`? A binding value of `void` matches on
/// the presence of the header alone. Keys starting with `x-` are ignored unless the mode is one of
/// the `-with-x` variants (`x-match` itself is always ignored).
pub fn matches(mode: MatchMode, args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let with_x = matches!(mode, MatchMode::AllWithX | MatchMode::AnyWithX);
    let any = matches!(mode, MatchMode::Any | MatchMode::AnyWithX);
    let mut considered = args.iter().filter(|(k, _)| k.as_str() != "x-match" && (with_x || !k.starts_with("x-")));
    let check = |(key, expected): (&amqp_codec::ShortStr, &FieldValue)| match headers.and_then(|h| h.get(key)) {
        None => false,
        Some(actual) => matches!(expected, FieldValue::Void) || values_equal(expected, actual),
    };
    if any {
        considered.any(check)
    } else {
        considered.all(check)
    }
}

/// Integers compare by value whatever their width, so a binding declared with a 32-bit int matches a
/// header sent as a 64-bit long by another client library.
fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    if a == b {
        return true;
    }
    matches!((a.as_i64(), b.as_i64()), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(bytes::Bytes::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn all_and_any() {
        let args = table(&[("format", s("pdf")), ("type", s("report"))]);
        let both = table(&[("format", s("pdf")), ("type", s("report")), ("extra", s("x"))]);
        let one = table(&[("format", s("pdf"))]);
        assert!(matches(MatchMode::All, &args, Some(&both)));
        assert!(!matches(MatchMode::All, &args, Some(&one)));
        assert!(matches(MatchMode::Any, &args, Some(&one)));
        assert!(!matches(MatchMode::Any, &args, None));
        assert!(!matches(MatchMode::Any, &args, Some(&table(&[("format", s("zip"))]))));
    }

    #[test]
    fn x_keys_only_with_x_modes() {
        let args = table(&[("x-match", s("all")), ("x-tenant", s("a"))]);
        let headers = table(&[("x-tenant", s("b"))]);
        assert!(matches(MatchMode::All, &args, Some(&headers)), "x- keys are ignored by all");
        assert!(!matches(MatchMode::AllWithX, &args, Some(&headers)));
        assert!(matches(MatchMode::AllWithX, &args, Some(&table(&[("x-tenant", s("a"))]))));
    }

    #[test]
    fn void_matches_presence_and_ints_compare_by_value() {
        let args = table(&[("k", FieldValue::Void), ("n", FieldValue::I32(5))]);
        let headers = table(&[("k", s("anything")), ("n", FieldValue::I64(5))]);
        assert!(matches(MatchMode::All, &args, Some(&headers)));
    }

    #[test]
    fn bad_x_match_is_406() {
        let args = table(&[("x-match", s("most"))]);
        assert_eq!(MatchMode::from_binding_args(&args).unwrap_err().code, 406);
        assert_eq!(MatchMode::from_binding_args(&FieldTable::new()).unwrap(), MatchMode::All);
    }
}
