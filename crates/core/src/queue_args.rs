//! The `x-` queue arguments RabbitMQ clients send in `queue.declare`: validation with RabbitMQ's
//! 406 errors, parsing into typed settings, and the equivalence rule for redeclaration.

use crate::exchange::describe;
use crate::AmqpError;
use amqp_codec::{FieldTable, FieldValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    #[default]
    Classic,
    /// Accepted so code written for RabbitMQ quorum queues declares unchanged; stored as a durable
    /// queue with the same delivery semantics.
    Quorum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// Typed view of a queue's arguments. Fields are optional because "absent" is meaningful.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueArgs {
    pub queue_type: QueueType,
    pub message_ttl_ms: Option<u64>,
    pub expires_ms: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub delivery_limit: Option<u64>,
    /// `x-consumer-timeout`: overrides the broker's delivery acknowledgement timeout (0 = never).
    pub consumer_timeout_ms: Option<u64>,
    /// `x-retry-delays` (Warren's own): a message rejected without requeue comes back after the
    /// next of these delays (ms); once they are used up it is dead-lettered.
    pub retry_delays_ms: Vec<u64>,
}

/// Most delays `x-retry-delays` may list.
pub const MAX_RETRY_DELAYS: usize = 64;

/// Arguments that must be equal when a queue is redeclared (RabbitMQ's list).
const EQUIVALENCE_ARGS: &[&str] = &[
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-message-ttl",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-retry-delays",
];

impl QueueArgs {
    /// Validate and parse `arguments` as RabbitMQ does; unknown arguments are kept but ignored.
    pub fn parse(arguments: &FieldTable, queue: &str, vhost: &str) -> Result<QueueArgs, AmqpError> {
        let invalid = |arg: &str, why: &str| {
            AmqpError::precondition_failed(format!("invalid arg '{arg}' for queue '{queue}' in vhost '{vhost}': {why}"))
        };
        let int = |arg: &str, min: i64| -> Result<Option<u64>, AmqpError> {
            match arguments.get(arg) {
                None => Ok(None),
                Some(v @ (FieldValue::F32(_) | FieldValue::F64(_) | FieldValue::Decimal { .. })) => {
                    Err(invalid(arg, &format!("{{unacceptable_type,{}}}", crate::exchange::type_name(v))))
                }
                Some(v) => match v.as_i64() {
                    Some(n) if n >= min => Ok(Some(n as u64)),
                    Some(n) if min > 0 => Err(invalid(arg, &format!("{{value_zero,{n}}}"))),
                    Some(n) => Err(invalid(arg, &format!("{{value_negative,{n}}}"))),
                    None => Err(invalid(arg, &format!("{{unacceptable_type,{}}}", crate::exchange::type_name(v)))),
                },
            }
        };
        let string = |arg: &str| -> Result<Option<String>, AmqpError> {
            match arguments.get(arg) {
                None => Ok(None),
                Some(FieldValue::LongStr(s)) => Ok(Some(String::from_utf8_lossy(s).into_owned())),
                Some(v) => Err(invalid(arg, &format!("{{unacceptable_type,{}}}", crate::exchange::type_name(v)))),
            }
        };

        crate::dedup::DedupSettings::from_arguments(arguments).map_err(|why| {
            AmqpError::precondition_failed(format!(
                "invalid deduplication arguments for queue '{queue}' in vhost '{vhost}': {why}"
            ))
        })?;
        let mut parsed = QueueArgs {
            message_ttl_ms: int("x-message-ttl", 0)?,
            expires_ms: int("x-expires", 1)?,
            max_length: int("x-max-length", 0)?,
            max_length_bytes: int("x-max-length-bytes", 0)?,
            delivery_limit: int("x-delivery-limit", 0)?,
            consumer_timeout_ms: int("x-consumer-timeout", 0)?,
            dead_letter_exchange: string("x-dead-letter-exchange")?,
            dead_letter_routing_key: string("x-dead-letter-routing-key")?,
            ..QueueArgs::default()
        };
        if parsed.dead_letter_routing_key.is_some() && parsed.dead_letter_exchange.is_none() {
            return Err(AmqpError::precondition_failed(
                "Key x-dead-letter-routing-key should be specified together with x-dead-letter-exchange",
            ));
        }
        if let Some(p) = int("x-max-priority", 0)? {
            if p > 255 {
                return Err(invalid("x-max-priority", &format!("{{value_too_big,{p}}}")));
            }
            parsed.max_priority = Some(p as u8);
        }
        parsed.overflow = match string("x-overflow")?.as_deref() {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some(other) => return Err(invalid("x-overflow", &format!("{{unknown_value,<<\"{other}\">>}}"))),
        };
        parsed.queue_type = match string("x-queue-type")?.as_deref() {
            None | Some("classic") => QueueType::Classic,
            Some("quorum") => QueueType::Quorum,
            Some(other) => {
                return Err(invalid("x-queue-type", &format!("queue type '{other}' is not supported by Warren")))
            }
        };
        match string("x-queue-mode")?.as_deref() {
            None | Some("default") | Some("lazy") => {}
            Some(other) => return Err(invalid("x-queue-mode", &format!("{{unknown_value,<<\"{other}\">>}}"))),
        }
        match string("x-queue-version") {
            Ok(_) => {}
            Err(_) => match int("x-queue-version", 1)? {
                None | Some(1) | Some(2) => {}
                Some(v) => return Err(invalid("x-queue-version", &format!("{{unsupported_version,{v}}}"))),
            },
        }
        parsed.retry_delays_ms = match arguments.get("x-retry-delays") {
            None => Vec::new(),
            Some(FieldValue::Array(delays)) if !delays.is_empty() && delays.len() <= MAX_RETRY_DELAYS => {
                let mut parsed = Vec::with_capacity(delays.len());
                for d in delays {
                    match d.as_i64() {
                        Some(ms) if ms >= 0 => parsed.push(ms as u64),
                        _ => return Err(invalid("x-retry-delays", "each delay must be a non-negative integer (ms)")),
                    }
                }
                parsed
            }
            Some(FieldValue::Array(_)) => {
                return Err(invalid("x-retry-delays", &format!("between 1 and {MAX_RETRY_DELAYS} delays are allowed")))
            }
            Some(v) => {
                return Err(invalid(
                    "x-retry-delays",
                    &format!("{{unacceptable_type,{}}}", crate::exchange::type_name(v)),
                ))
            }
        };
        parsed.single_active_consumer = match arguments.get("x-single-active-consumer") {
            None => false,
            Some(FieldValue::Bool(b)) => *b,
            Some(v) => {
                return Err(invalid(
                    "x-single-active-consumer",
                    &format!("{{unacceptable_type,{}}}", crate::exchange::type_name(v)),
                ))
            }
        };
        Ok(parsed)
    }

    /// A quorum queue must be durable, non-exclusive and not auto-delete (RabbitMQ's rule).
    pub fn check_queue_type_flags(
        &self,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        queue: &str,
        vhost: &str,
    ) -> Result<(), AmqpError> {
        if self.queue_type != QueueType::Quorum {
            return Ok(());
        }
        let bad = |what: &str, value: bool| {
            AmqpError::precondition_failed(format!(
                "invalid property '{what}' for queue '{queue}' in vhost '{vhost}': {value}"
            ))
        };
        if !durable {
            return Err(bad("non-durable", true));
        }
        if exclusive {
            return Err(bad("exclusive", true));
        }
        if auto_delete {
            return Err(bad("auto-delete", true));
        }
        Ok(())
    }
}

/// Redeclaration check: the listed arguments must be equal; `x-queue-type` absent means classic.
pub fn check_equivalent(
    existing: &FieldTable,
    requested: &FieldTable,
    queue: &str,
    vhost: &str,
) -> Result<(), AmqpError> {
    for arg in EQUIVALENCE_ARGS {
        let (r, c) = (requested.get(arg), existing.get(arg));
        if !args_equal(r, c) {
            return Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for queue '{queue}' in vhost '{vhost}': received {} but current is {}",
                describe(r),
                describe(c)
            )));
        }
    }
    let queue_type = |t: &FieldTable| {
        t.get("x-queue-type").and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "classic".into())
    };
    let (r, c) = (queue_type(requested), queue_type(existing));
    if r != c {
        return Err(AmqpError::precondition_failed(format!(
            "inequivalent arg 'x-queue-type' for queue '{queue}' in vhost '{vhost}': received the value '{r}' of type 'longstr' but current is the value '{c}' of type 'longstr'"
        )));
    }
    Ok(())
}

fn args_equal(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || matches!((x.as_i64(), y.as_i64()), (Some(p), Some(q)) if p == q),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
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
    fn valid_arguments_parse() {
        let a = QueueArgs::parse(
            &args(&[
                ("x-message-ttl", FieldValue::I32(1000)),
                ("x-max-length", FieldValue::I64(10)),
                ("x-overflow", s("reject-publish")),
                ("x-dead-letter-exchange", s("dlx")),
                ("x-max-priority", FieldValue::U8(10)),
                ("x-queue-type", s("quorum")),
                ("x-single-active-consumer", FieldValue::Bool(true)),
            ]),
            "q",
            "/",
        )
        .unwrap();
        assert_eq!(a.message_ttl_ms, Some(1000));
        assert_eq!(a.max_length, Some(10));
        assert_eq!(a.overflow, Overflow::RejectPublish);
        assert_eq!(a.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(a.max_priority, Some(10));
        assert_eq!(a.queue_type, QueueType::Quorum);
        assert!(a.single_active_consumer);
        let r = QueueArgs::parse(
            &args(&[("x-retry-delays", FieldValue::Array(vec![FieldValue::I32(1000), FieldValue::I64(30_000)]))]),
            "q",
            "/",
        )
        .unwrap();
        assert_eq!(r.retry_delays_ms, vec![1000, 30_000]);
    }

    #[test]
    fn bad_values_are_406() {
        let cases = [
            args(&[("x-message-ttl", FieldValue::I32(-1))]),
            args(&[("x-expires", FieldValue::I32(0))]),
            args(&[("x-max-length", s("ten"))]),
            args(&[("x-overflow", s("explode"))]),
            args(&[("x-max-priority", FieldValue::I32(256))]),
            args(&[("x-queue-type", s("stream-ish"))]),
            args(&[("x-dead-letter-routing-key", s("k"))]),
            args(&[("x-single-active-consumer", s("yes"))]),
            args(&[("x-message-ttl", FieldValue::F64(1.5))]),
            args(&[("x-retry-delays", FieldValue::Array(vec![]))]),
            args(&[("x-retry-delays", FieldValue::Array(vec![FieldValue::I32(-5)]))]),
            args(&[("x-retry-delays", FieldValue::I32(5))]),
            args(&[("x-retry-delays", FieldValue::Array(vec![FieldValue::I32(1); MAX_RETRY_DELAYS + 1]))]),
        ];
        for a in cases {
            let e = QueueArgs::parse(&a, "q", "/").unwrap_err();
            assert_eq!(e.code, 406, "{a:?}");
        }
    }

    #[test]
    fn equivalence_ignores_width_and_defaults_queue_type() {
        let a = args(&[("x-max-length", FieldValue::I32(5))]);
        let b = args(&[("x-max-length", FieldValue::I64(5))]);
        assert!(check_equivalent(&a, &b, "q", "/").is_ok());
        let classic = args(&[("x-queue-type", s("classic"))]);
        assert!(check_equivalent(&FieldTable::new(), &classic, "q", "/").is_ok());
        let e = check_equivalent(&a, &FieldTable::new(), "q", "/").unwrap_err();
        assert_eq!(e.code, 406);
        assert!(e.text.contains("inequivalent arg 'x-max-length'"), "{}", e.text);
    }

    #[test]
    fn quorum_must_be_durable() {
        let a = QueueArgs::parse(&args(&[("x-queue-type", s("quorum"))]), "q", "/").unwrap();
        assert_eq!(a.check_queue_type_flags(false, false, false, "q", "/").unwrap_err().code, 406);
        assert!(a.check_queue_type_flags(true, false, false, "q", "/").is_ok());
    }
}
