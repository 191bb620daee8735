//! Dead-lettering as RabbitMQ does it: the reasons, the message republished through the
//! dead-letter exchange with its `x-death` history and `x-first-death-*` / `x-last-death-*`
//! headers, and the detection of dead-letter cycles.

use crate::Message;
use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};
use bytes::Bytes;

/// Why a message left its queue for the dead-letter exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Rejected or nacked with `requeue=false`.
    Rejected,
    /// Its TTL (queue or message) passed.
    Expired,
    /// Dropped or refused to keep `x-max-length` / `x-max-length-bytes`.
    Maxlen,
    /// Returned more times than `x-delivery-limit` allows (or out of `x-retry-delays`).
    DeliveryLimit,
    /// Broke the contract of the exchange it was published to (it never reached a queue).
    Contract,
    /// The transform of its exchange failed on it (it never reached a queue).
    TransformFailed,
    /// Its exchange could not split it (`x-split`): not JSON, no array at the path, too many
    /// parts.
    SplitFailed,
    /// Its aggregator's group was not complete by its deadline.
    AggregateTimeout,
    /// Its aggregator could not use it: no correlation key, a group over its bounds, a
    /// combined message that could not be made or published.
    AggregateFailed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
            Reason::Contract => "contract",
            Reason::TransformFailed => "transform_failed",
            Reason::SplitFailed => "split_failed",
            Reason::AggregateTimeout => "aggregate_timeout",
            Reason::AggregateFailed => "aggregate_failed",
        }
    }
}

/// Where and why a message died.
#[derive(Debug, Clone, Copy)]
pub struct Death<'a> {
    /// Empty for a message that died before reaching a queue (a contract's dead letter): its
    /// `x-death` entry then names no queue.
    pub queue: &'a str,
    pub reason: Reason,
    pub now_ms: u64,
}

/// The message to republish to `dead_letter_exchange`: routed with `routing_key` if given, else
/// with the keys it was published with (routing key and `CC`). Its `expiration` is removed (kept
/// as `original-expiration`) so it does not expire again on the way, and its headers record the
/// death. Returns the message and the routing keys to route it with. `None` if its properties
/// cannot be decoded (the broker checked them at publish, so that is a bug).
pub fn dead_letter(
    message: &Message,
    death: &Death<'_>,
    dead_letter_exchange: &str,
    routing_key: Option<&str>,
) -> Option<(Message, Vec<ShortStr>)> {
    let mut props = message.decode_properties()?;
    let mut headers = props.headers.take().unwrap_or_default();
    let mut published_keys = vec![message.routing_key.clone()];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        published_keys.extend(cc.iter().filter_map(|v| v.as_str()).map(ShortStr::from));
    }
    let original_expiration = props.expiration.take();
    record_death(&mut headers, message, death, &published_keys, original_expiration.as_ref());
    props.headers = Some(headers);
    let keys = match routing_key {
        Some(key) => vec![ShortStr::from(key)],
        None => published_keys,
    };
    let republished =
        Message::new(ShortStr::from(dead_letter_exchange), keys[0].clone(), props.to_raw(), message.body.clone())
            .at(death.now_ms);
    Some((republished, keys))
}

fn long_str(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

/// Adds the death to `x-death` (most recent first; a repeat of the same queue and reason bumps
/// that entry's count and moves it to the front, as RabbitMQ does) and sets the first/last
/// death headers.
fn record_death(
    headers: &mut FieldTable,
    message: &Message,
    death: &Death<'_>,
    published_keys: &[ShortStr],
    original_expiration: Option<&ShortStr>,
) {
    let reason = death.reason.as_str();
    let mut deaths = match headers.remove("x-death") {
        Some(FieldValue::Array(entries)) => entries,
        _ => Vec::new(),
    };
    // A queue-less death (a contract's) is the same as an earlier one at the same exchange.
    let same = |v: &FieldValue| {
        v.as_table().is_some_and(|t| {
            let field = |key: &str| t.get(key).and_then(FieldValue::as_str).unwrap_or("");
            field("queue") == death.queue
                && field("reason") == reason
                && (!death.queue.is_empty() || field("exchange") == message.exchange.as_str())
        })
    };
    let entry = match deaths.iter().position(same) {
        Some(i) => {
            let FieldValue::Table(mut previous) = deaths.remove(i) else { unreachable!("matched a table") };
            let count = previous.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
            previous.insert("count", FieldValue::I64(count + 1));
            previous
        }
        None => {
            // Keys in sorted order, as RabbitMQ writes them.
            let mut entry = FieldTable::new();
            entry.insert("count", FieldValue::I64(1));
            entry.insert("exchange", long_str(&message.exchange));
            if let Some(expiration) = original_expiration {
                entry.insert("original-expiration", long_str(expiration));
            }
            if !death.queue.is_empty() {
                entry.insert("queue", long_str(death.queue));
            }
            entry.insert("reason", long_str(reason));
            entry.insert("routing-keys", FieldValue::Array(published_keys.iter().map(|k| long_str(k)).collect()));
            entry.insert("time", FieldValue::Timestamp(death.now_ms / 1000));
            entry
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    headers.insert("x-death", FieldValue::Array(deaths));
    for (name, value) in [("reason", reason), ("queue", death.queue), ("exchange", message.exchange.as_str())] {
        if value.is_empty() && name == "queue" {
            continue;
        }
        let first = format!("x-first-death-{name}");
        if !headers.contains_key(&first) {
            headers.insert(first.as_str(), long_str(value));
        }
        headers.insert(format!("x-last-death-{name}").as_str(), long_str(value));
    }
}

/// Whether routing a dead-lettered message (its headers already carrying this death) to
/// `queue` closes a cycle that no client took part in: the message died in `queue` before, and
/// no death since then was a rejection. Such a message is dropped for that queue (RabbitMQ's
/// rule); a rejection anywhere in the loop means a consumer is deciding, so it may go round.
pub fn is_cycle(reason: Reason, headers: Option<&FieldTable>, queue: &str) -> bool {
    if reason == Reason::Rejected {
        return false;
    }
    let Some(FieldValue::Array(deaths)) = headers.and_then(|h| h.get("x-death")) else { return false };
    let field =
        |d: &FieldValue, key: &str| d.as_table().and_then(|t| t.get(key)).and_then(|v| v.as_str().map(str::to_owned));
    for d in deaths {
        if field(d, "reason").as_deref() == Some("rejected") {
            return false;
        }
        if field(d, "queue").as_deref() == Some(queue) {
            return true;
        }
    }
    false
}

/// The decoded headers of a message, if it has any.
pub fn headers_of(properties: &Bytes) -> Option<FieldTable> {
    if !amqp_codec::raw_properties::has_headers(properties) {
        return None;
    }
    BasicProperties::decode(properties.clone()).ok().and_then(|p| p.headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(props: BasicProperties) -> Message {
        Message::new(
            ShortStr::from_static("orders"),
            ShortStr::from_static("order.created"),
            props.to_raw(),
            Bytes::from_static(b"x"),
        )
        .at(1)
    }

    fn death(queue: &str, reason: Reason, now_ms: u64) -> Death<'_> {
        Death { queue, reason, now_ms }
    }

    fn text(t: &FieldTable, key: &str) -> String {
        t.get(key).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{key} missing")).to_owned()
    }

    #[test]
    fn first_death_writes_rabbitmq_headers_and_drops_expiration() {
        let mut headers = FieldTable::new();
        headers.insert("CC", FieldValue::Array(vec![long_str("audit")]));
        let props = BasicProperties {
            expiration: Some(ShortStr::from_static("5000")),
            headers: Some(headers),
            ..Default::default()
        };
        let (dl, keys) =
            dead_letter(&message(props), &death("work", Reason::Expired, 1_700_000_123_456), "dlx", None).unwrap();
        assert_eq!(keys, vec![ShortStr::from_static("order.created"), ShortStr::from_static("audit")]);
        assert_eq!(
            (dl.exchange.as_str(), dl.routing_key.as_str(), dl.timestamp_ms),
            ("dlx", "order.created", 1_700_000_123_456)
        );
        let p = dl.decode_properties().unwrap();
        assert_eq!(p.expiration, None);
        let h = p.headers.unwrap();
        let deaths = h.get("x-death").and_then(|v| v.as_array()).unwrap();
        assert_eq!(deaths.len(), 1);
        let d = deaths[0].as_table().unwrap();
        let keys: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["count", "exchange", "original-expiration", "queue", "reason", "routing-keys", "time"]);
        assert_eq!(d.get("count"), Some(&FieldValue::I64(1)));
        assert_eq!(
            (text(d, "exchange"), text(d, "queue"), text(d, "reason")),
            ("orders".into(), "work".into(), "expired".into())
        );
        assert_eq!(text(d, "original-expiration"), "5000");
        assert_eq!(d.get("time"), Some(&FieldValue::Timestamp(1_700_000_123)));
        assert_eq!(d.get("routing-keys").and_then(|v| v.as_array()).unwrap().len(), 2);
        for (name, value) in [("reason", "expired"), ("queue", "work"), ("exchange", "orders")] {
            assert_eq!(text(&h, &format!("x-first-death-{name}")), value);
            assert_eq!(text(&h, &format!("x-last-death-{name}")), value);
        }
    }

    #[test]
    fn repeated_deaths_count_up_and_move_to_the_front() {
        let m = message(BasicProperties::default());
        let (m, _) = dead_letter(&m, &death("a", Reason::Rejected, 1_000), "dlx", Some("b")).unwrap();
        assert_eq!(m.routing_key.as_str(), "b");
        let (m, _) = dead_letter(&m, &death("b", Reason::Expired, 2_000), "", Some("a")).unwrap();
        let (m, _) = dead_letter(&m, &death("a", Reason::Rejected, 3_000), "dlx", Some("b")).unwrap();
        let h = m.decode_properties().unwrap().headers.unwrap();
        let deaths = h.get("x-death").and_then(|v| v.as_array()).unwrap();
        let summary: Vec<(String, String, Option<i64>)> = deaths
            .iter()
            .map(|d| {
                let t = d.as_table().unwrap();
                (text(t, "queue"), text(t, "reason"), t.get("count").and_then(|v| v.as_i64()))
            })
            .collect();
        assert_eq!(summary, vec![("a".into(), "rejected".into(), Some(2)), ("b".into(), "expired".into(), Some(1))]);
        let first = deaths[0].as_table().unwrap();
        assert_eq!(first.get("time"), Some(&FieldValue::Timestamp(1)), "a repeat keeps the first time");
        assert_eq!(
            (text(&h, "x-first-death-queue"), text(&h, "x-first-death-reason")),
            ("a".into(), "rejected".into())
        );
        assert_eq!((text(&h, "x-last-death-queue"), text(&h, "x-last-death-reason")), ("a".into(), "rejected".into()));
        assert_eq!(text(&h, "x-last-death-exchange"), "", "the exchange it was last published to");
    }

    #[test]
    fn a_contract_death_names_no_queue_and_repeats_count_up() {
        let m = message(BasicProperties::default());
        let (dl, keys) = dead_letter(&m, &death("", Reason::Contract, 4_000), "invalid", None).unwrap();
        assert_eq!(keys, ["order.created"]);
        let h = dl.decode_properties().unwrap().headers.unwrap();
        let Some(FieldValue::Array(deaths)) = h.get("x-death") else { panic!("no x-death") };
        let d = deaths[0].as_table().unwrap();
        let names: Vec<&str> = d.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["count", "exchange", "reason", "routing-keys", "time"]);
        assert_eq!((text(d, "reason"), text(d, "exchange")), ("contract".into(), "orders".into()));
        assert!(!h.contains_key("x-first-death-queue") && !h.contains_key("x-last-death-queue"));
        assert_eq!(text(&h, "x-first-death-reason"), "contract");
        let again = Message::new(m.exchange.clone(), m.routing_key.clone(), dl.properties.clone(), m.body.clone());
        let (dl2, _) = dead_letter(&again, &death("", Reason::Contract, 5_000), "invalid", None).unwrap();
        let h2 = dl2.decode_properties().unwrap().headers.unwrap();
        let Some(FieldValue::Array(deaths)) = h2.get("x-death") else { panic!("no x-death") };
        assert_eq!(deaths.len(), 1);
        assert_eq!(deaths[0].as_table().unwrap().get("count").and_then(|v| v.as_i64()), Some(2));
    }

    #[test]
    fn cycles_without_a_rejection_are_detected() {
        let m = message(BasicProperties::default());
        let (m1, _) = dead_letter(&m, &death("a", Reason::Expired, 1_000), "", Some("b")).unwrap();
        let h1 = m1.decode_properties().unwrap().headers;
        assert!(is_cycle(Reason::Expired, h1.as_ref(), "a"), "back to the queue it expired in");
        assert!(!is_cycle(Reason::Expired, h1.as_ref(), "b"));
        assert!(!is_cycle(Reason::Rejected, h1.as_ref(), "a"), "a rejection is a consumer's choice");
        let (m2, _) = dead_letter(&m1, &death("b", Reason::Rejected, 2_000), "", Some("a")).unwrap();
        let h2 = m2.decode_properties().unwrap().headers;
        let (m3, _) = dead_letter(&m2, &death("a", Reason::Expired, 3_000), "", Some("b")).unwrap();
        let h3 = m3.decode_properties().unwrap().headers;
        assert!(!is_cycle(Reason::Expired, h3.as_ref(), "b"), "the loop through b had a rejection");
        assert!(is_cycle(Reason::Expired, h3.as_ref(), "a"));
        assert!(!is_cycle(Reason::Expired, h2.as_ref(), "c"));
        assert!(!is_cycle(Reason::Expired, None, "a"));
    }
}
