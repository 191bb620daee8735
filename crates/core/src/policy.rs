//! Policies: queue arguments an operator applies by queue-name pattern, as RabbitMQ's policies
//! and operator policies do. Of the policies whose vhost and pattern (a regular expression,
//! matched anywhere in the name) fit a queue, the one with the highest priority applies, and
//! likewise one operator policy. For the numeric limits (TTLs, lengths, delivery limit, consumer
//! timeout) the lowest of the queue's own argument, its policy and its operator policy applies,
//! as in RabbitMQ; for the other keys the queue's own argument wins over its policy.

use crate::queue_args::QueueArgs;
use amqp_codec::{FieldTable, FieldValue};
use regex::Regex;

/// Keys a policy may set (each becomes the `x-` queue argument of the same name).
pub const POLICY_KEYS: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "delivery-limit",
    "consumer-timeout",
    "retry-delays",
];

/// Keys an operator policy may set: limits, where the lower value applies.
pub const OPERATOR_POLICY_KEYS: &[&str] =
    &["message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit", "consumer-timeout"];

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub vhost: String,
    pattern: Regex,
    pub priority: i32,
    /// An operator policy: its limits cap what clients ask for.
    pub operator: bool,
    /// The `x-` arguments it applies.
    definition: FieldTable,
}

impl Policy {
    /// A policy from its parts; the error says what is wrong (pattern, key or value).
    pub fn new(
        name: &str,
        vhost: &str,
        pattern: &str,
        priority: i32,
        operator: bool,
        definition: Vec<(String, FieldValue)>,
    ) -> Result<Policy, String> {
        let what = if operator { "operator policy" } else { "policy" };
        let pattern = Regex::new(pattern).map_err(|e| format!("{what} '{name}': invalid pattern: {e}"))?;
        let allowed = if operator { OPERATOR_POLICY_KEYS } else { POLICY_KEYS };
        let mut table = FieldTable::new();
        for (key, value) in definition {
            if !allowed.contains(&key.as_str()) {
                return Err(format!("{what} '{name}': unknown key '{key}' (allowed: {})", allowed.join(", ")));
            }
            table.insert(format!("x-{key}").as_str(), value);
        }
        QueueArgs::parse(&table, "(policy)", vhost).map_err(|e| format!("{what} '{name}': {}", e.text))?;
        Ok(Policy { name: name.to_owned(), vhost: vhost.to_owned(), pattern, priority, operator, definition: table })
    }

    fn applies_to(&self, vhost: &str, queue: &str) -> bool {
        self.vhost == vhost && self.pattern.is_match(queue)
    }
}

/// Whether `x-key` is a numeric limit, where the lowest value applies.
fn is_limit(key: &str) -> bool {
    key.strip_prefix("x-").is_some_and(|k| OPERATOR_POLICY_KEYS.contains(&k))
}

/// A limit's strictness: lower is stricter (a consumer timeout of 0 means none, the loosest).
fn limit(key: &str, value: &FieldValue) -> u64 {
    match value.as_i64() {
        Some(0) if key == "x-consumer-timeout" => u64::MAX,
        Some(n) => n.max(0) as u64,
        None => u64::MAX,
    }
}

/// Every configured policy.
#[derive(Debug, Clone, Default)]
pub struct Policies(Vec<Policy>);

impl Policies {
    pub fn new(policies: Vec<Policy>) -> Policies {
        Policies(policies)
    }

    fn winner(&self, vhost: &str, queue: &str, operator: bool) -> Option<&Policy> {
        self.0
            .iter()
            .filter(|p| p.operator == operator && p.applies_to(vhost, queue))
            .max_by(|a, b| a.priority.cmp(&b.priority).then_with(|| b.name.cmp(&a.name)))
    }

    /// The arguments queue `queue` of `vhost` runs with: its own, then what its policy adds,
    /// then its operator policy's caps.
    pub fn effective(&self, vhost: &str, queue: &str, own: &FieldTable) -> FieldTable {
        let mut args = own.clone();
        for operator in [false, true] {
            let Some(policy) = self.winner(vhost, queue, operator) else { continue };
            for (key, value) in policy.definition.iter() {
                let takes = match args.get(key) {
                    None => true,
                    Some(current) if is_limit(key) => limit(key, value) < limit(key, current),
                    Some(_) => false,
                };
                if takes {
                    args.insert(key.clone(), value.clone());
                }
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> FieldValue {
        FieldValue::I64(n)
    }

    fn text(s: &str) -> FieldValue {
        FieldValue::LongStr(bytes::Bytes::copy_from_slice(s.as_bytes()))
    }

    fn policy(name: &str, pattern: &str, priority: i32, operator: bool, def: &[(&str, FieldValue)]) -> Policy {
        let def = def.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        Policy::new(name, "/", pattern, priority, operator, def).unwrap()
    }

    #[test]
    fn the_highest_priority_policy_fills_in_what_the_queue_did_not_set() {
        let policies = Policies::new(vec![
            policy("all", ".*", 0, false, &[("message-ttl", int(1000)), ("max-length", int(5))]),
            policy(
                "events",
                "^events\\.",
                10,
                false,
                &[("dead-letter-exchange", text("dlx")), ("message-ttl", int(60_000))],
            ),
        ]);
        let mut own = FieldTable::new();
        own.insert("x-message-ttl", int(90_000));
        own.insert("x-dead-letter-exchange", text("own"));
        let a = policies.effective("/", "events.orders", &own);
        assert_eq!(a.get("x-message-ttl"), Some(&int(60_000)), "the lower limit applies");
        assert_eq!(a.get("x-dead-letter-exchange"), Some(&text("own")), "the queue's own argument wins");
        let b = policies.effective("/", "events.orders", &FieldTable::new());
        assert_eq!(b.get("x-dead-letter-exchange"), Some(&text("dlx")));
        assert_eq!(a.get("x-max-length"), None, "only one policy applies");
        let b = policies.effective("/", "jobs", &FieldTable::new());
        assert_eq!((b.get("x-message-ttl"), b.get("x-max-length")), (Some(&int(1000)), Some(&int(5))));
        assert!(policies.effective("other-vhost", "jobs", &FieldTable::new()).is_empty());
        assert_eq!(policies.winner("/", "events.x", false).map(|p| p.name.as_str()), Some("events"));
    }

    #[test]
    fn operator_policies_cap_limits_whatever_the_queue_asks() {
        let policies = Policies::new(vec![
            policy("cap", ".*", 0, true, &[("max-length", int(100)), ("message-ttl", int(5000))]),
            policy("lenient", ".*", 0, false, &[("max-length", int(1_000_000))]),
        ]);
        let mut own = FieldTable::new();
        own.insert("x-message-ttl", FieldValue::I32(1000));
        let a = policies.effective("/", "q", &own);
        assert_eq!(a.get("x-max-length"), Some(&int(100)), "the operator's cap beats the policy");
        assert_eq!(a.get("x-message-ttl"), Some(&FieldValue::I32(1000)), "a lower client value stays");
        let cap = Policies::new(vec![policy("timeout", ".*", 0, true, &[("consumer-timeout", int(60_000))])]);
        let mut never = FieldTable::new();
        never.insert("x-consumer-timeout", int(0));
        let c = cap.effective("/", "q", &never);
        assert_eq!(c.get("x-consumer-timeout"), Some(&int(60_000)), "0 (no timeout) does not escape the cap");
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let bad = |operator, def: Vec<(String, FieldValue)>, pattern: &str| {
            Policy::new("p", "/", pattern, 0, operator, def).unwrap_err()
        };
        assert!(bad(false, vec![], "(").contains("invalid pattern"));
        assert!(bad(false, vec![("max-priority".into(), int(5))], ".*").contains("unknown key"));
        assert!(bad(true, vec![("dead-letter-exchange".into(), text("x"))], ".*").contains("unknown key"));
        assert!(bad(false, vec![("message-ttl".into(), text("soon"))], ".*").contains("x-message-ttl"));
        assert!(bad(false, vec![("dead-letter-routing-key".into(), text("k"))], ".*").contains("together"));
    }
}
