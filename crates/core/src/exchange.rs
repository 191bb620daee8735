//! Exchange definitions: the four AMQP exchange types, the `x-delayed-message` type (which
//! routes like its `x-delayed-type` after holding each message for its `x-delay`), and
//! RabbitMQ's equivalence rules for redeclaration.

use crate::AmqpError;
use amqp_codec::{FieldTable, FieldValue, ShortStr};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn parse(kind: &str) -> Result<ExchangeKind, AmqpError> {
        match kind {
            "direct" => Ok(ExchangeKind::Direct),
            "fanout" => Ok(ExchangeKind::Fanout),
            "topic" => Ok(ExchangeKind::Topic),
            "headers" => Ok(ExchangeKind::Headers),
            // RabbitMQ 3.13+ answers 406 on the channel; older releases closed the connection (503).
            other => Err(AmqpError::precondition_failed(format!("unknown exchange type '{other}'"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a client asked for in `exchange.declare`, and what an existing exchange was declared with.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDef {
    pub name: ShortStr,
    /// How it routes (for a delayed exchange: its `x-delayed-type`).
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// Declared as `x-delayed-message`: messages with an `x-delay` header wait that long first.
    pub delayed: bool,
}

/// The exchange type of delayed-message exchanges (the name RabbitMQ's plugin gives it).
pub const DELAYED_TYPE: &str = "x-delayed-message";

/// The `x-delay` of a message's headers, in ms, if it asks for a positive one.
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u64> {
    let delay = headers?.get("x-delay")?.as_i64()?;
    (delay > 0).then_some(delay as u64)
}

impl ExchangeKind {
    /// The routing kind of a declared type: one of the four, or for `x-delayed-message` the
    /// type named by its `x-delayed-type` argument. Returns the kind and whether it is delayed.
    /// Deduplication arguments are checked here too.
    pub fn declared(kind: &str, arguments: &FieldTable) -> Result<(ExchangeKind, bool), AmqpError> {
        crate::dedup::DedupSettings::from_arguments(arguments)
            .map_err(|why| AmqpError::precondition_failed(format!("invalid deduplication arguments: {why}")))?;
        crate::split::Split::from_arguments(arguments).map_err(AmqpError::precondition_failed)?;
        if kind != DELAYED_TYPE {
            return Ok((ExchangeKind::parse(kind)?, false));
        }
        let routing = arguments.get("x-delayed-type").and_then(FieldValue::as_str).map(ExchangeKind::parse);
        match routing {
            Some(Ok(kind)) => Ok((kind, true)),
            _ => Err(AmqpError::precondition_failed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            )),
        }
    }
}

/// Arguments whose values take part in redeclaration equivalence, as in RabbitMQ.
const EQUIVALENCE_ARGS: &[&str] = &["alternate-exchange"];

impl ExchangeDef {
    /// The type as declared (`x-delayed-message` for a delayed exchange).
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            DELAYED_TYPE
        } else {
            self.kind.as_str()
        }
    }

    pub fn alternate_exchange(&self) -> Option<&str> {
        match self.arguments.get("alternate-exchange") {
            Some(FieldValue::LongStr(s)) => std::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// Check a redeclaration against this (existing) definition: 406 on any difference.
    pub fn check_equivalent(&self, requested: &ExchangeDef, vhost: &str) -> Result<(), AmqpError> {
        let mismatch = |arg: &str, received: &dyn fmt::Display, current: &dyn fmt::Display| {
            AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for exchange '{}' in vhost '{vhost}': received '{received}' but current is '{current}'",
                self.name
            ))
        };
        if requested.type_name() != self.type_name() {
            return Err(mismatch("type", &requested.type_name(), &self.type_name()));
        }
        if requested.kind != self.kind {
            return Err(mismatch("x-delayed-type", &requested.kind, &self.kind));
        }
        if requested.durable != self.durable {
            return Err(mismatch("durable", &requested.durable, &self.durable));
        }
        if requested.auto_delete != self.auto_delete {
            return Err(mismatch("auto_delete", &requested.auto_delete, &self.auto_delete));
        }
        if requested.internal != self.internal {
            return Err(mismatch("internal", &requested.internal, &self.internal));
        }
        for arg in EQUIVALENCE_ARGS {
            let (r, c) = (requested.arguments.get(arg), self.arguments.get(arg));
            if r != c {
                return Err(AmqpError::precondition_failed(format!(
                    "inequivalent arg '{arg}' for exchange '{}' in vhost '{vhost}': received {} but current is {}",
                    self.name,
                    describe(r),
                    describe(c)
                )));
            }
        }
        Ok(())
    }
}

/// Describe an optional argument value the way RabbitMQ's equivalence errors do.
pub fn describe(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".to_string(),
        Some(FieldValue::LongStr(s)) => format!("the value '{}' of type 'longstr'", String::from_utf8_lossy(s)),
        Some(other) => match other.as_i64() {
            Some(i) => format!("the value '{i}' of type '{}'", type_name(other)),
            None => format!("the value '{other:?}' of type '{}'", type_name(other)),
        },
    }
}

pub fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::ByteArray(_) => "bytearray",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: ExchangeKind, durable: bool) -> ExchangeDef {
        ExchangeDef {
            name: "x".into(),
            kind,
            durable,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
            delayed: false,
        }
    }

    #[test]
    fn unknown_type_is_precondition_failed() {
        assert_eq!(ExchangeKind::parse("nope").unwrap_err().code, 406);
        assert_eq!(ExchangeKind::parse("topic").unwrap(), ExchangeKind::Topic);
    }

    #[test]
    fn redeclare_with_other_type_or_durability_is_406() {
        let existing = def(ExchangeKind::Direct, true);
        assert!(existing.check_equivalent(&def(ExchangeKind::Direct, true), "/").is_ok());
        let e = existing.check_equivalent(&def(ExchangeKind::Fanout, true), "/").unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.text.contains("inequivalent arg 'type'"), "{}", e.text);
        assert_eq!(existing.check_equivalent(&def(ExchangeKind::Direct, false), "/").unwrap_err().code, 406);
    }

    #[test]
    fn delayed_exchanges_route_like_their_delayed_type() {
        let mut args = FieldTable::new();
        assert_eq!(ExchangeKind::declared(DELAYED_TYPE, &args).unwrap_err().code, 406);
        args.insert("x-delayed-type", FieldValue::LongStr("nope".into()));
        assert_eq!(ExchangeKind::declared(DELAYED_TYPE, &args).unwrap_err().code, 406);
        args.insert("x-delayed-type", FieldValue::LongStr("topic".into()));
        assert_eq!(ExchangeKind::declared(DELAYED_TYPE, &args).unwrap(), (ExchangeKind::Topic, true));
        assert_eq!(ExchangeKind::declared("topic", &args).unwrap(), (ExchangeKind::Topic, false));
        let mut delayed = def(ExchangeKind::Topic, true);
        delayed.delayed = true;
        let e = delayed.check_equivalent(&def(ExchangeKind::Topic, true), "/").unwrap_err();
        assert!(e.text.contains("received 'topic' but current is 'x-delayed-message'"), "{}", e.text);
        let mut headers = FieldTable::new();
        assert_eq!(delay_of(Some(&headers)), None);
        headers.insert("x-delay", FieldValue::I32(-5));
        assert_eq!(delay_of(Some(&headers)), None);
        headers.insert("x-delay", FieldValue::I64(1500));
        assert_eq!(delay_of(Some(&headers)), Some(1500));
    }

    #[test]
    fn alternate_exchange_takes_part_in_equivalence() {
        let existing = def(ExchangeKind::Direct, false);
        let mut with_ae = def(ExchangeKind::Direct, false);
        with_ae.arguments.insert("alternate-exchange", FieldValue::LongStr("ae".into()));
        assert_eq!(with_ae.alternate_exchange(), Some("ae"));
        assert_eq!(existing.check_equivalent(&with_ae, "/").unwrap_err().code, 406);
    }
}
