//! Policies: arguments an operator applies to queues and exchanges by name pattern, as
//! RabbitMQ's policies and operator policies do. Of the policies whose vhost, `apply-to` and
//! pattern (a regular expression, matched anywhere in the name) fit an object, the one with the
//! highest priority applies, and likewise one operator policy. For the numeric limits (TTLs,
//! lengths, delivery limit, consumer timeout) the lowest of the queue's own argument, its policy
//! and its operator policy applies, as in RabbitMQ; for the other keys the object's own argument
//! wins over its policy.

use crate::queue_args::QueueArgs;
use amqp_codec::{FieldTable, FieldValue};
use regex::Regex;
use std::sync::Arc;

/// Keys a policy may set on queues (each becomes the `x-` queue argument of the same name).
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

/// Keys a policy may set on exchanges.
pub const EXCHANGE_POLICY_KEYS: &[&str] = &["alternate-exchange"];

/// Keys an operator policy may set: limits, where the lower value applies.
pub const OPERATOR_POLICY_KEYS: &[&str] =
    &["message-ttl", "expires", "max-length", "max-length-bytes", "delivery-limit", "consumer-timeout"];

/// RabbitMQ policy keys for what Warren does not have (mirroring, queue storage versions, stream
/// retention, federation): accepted, so definitions exported from RabbitMQ import unchanged, kept
/// and exported, and named in [`Policy::not_applied`], but without effect.
pub const NOT_APPLIED_KEYS: &[&str] = &[
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-mode",
    "queue-version",
    "queue-master-locator",
    "queue-leader-locator",
    "initial-cluster-size",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "dead-letter-strategy",
    "max-age",
    "stream-max-segment-size-bytes",
    "federation-upstream",
    "federation-upstream-set",
];

/// Most policies (and operator policies) a broker keeps.
pub const MAX_POLICIES: usize = 10_000;
/// Longest pattern accepted.
pub const MAX_PATTERN_LEN: usize = 1024;

/// What kinds of objects a policy applies to (RabbitMQ's `apply-to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    Queues,
    Exchanges,
    All,
    ClassicQueues,
    QuorumQueues,
}

impl ApplyTo {
    pub fn parse(text: &str) -> Result<ApplyTo, String> {
        Ok(match text {
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "all" => ApplyTo::All,
            "classic_queues" => ApplyTo::ClassicQueues,
            "quorum_queues" => ApplyTo::QuorumQueues,
            other => {
                return Err(format!(
                    "apply-to '{other}' unrecognised; should be 'queues', 'classic_queues', 'quorum_queues', \
                     'exchanges' or 'all'"
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
            ApplyTo::ClassicQueues => "classic_queues",
            ApplyTo::QuorumQueues => "quorum_queues",
        }
    }

    fn fits(self, target: Target) -> bool {
        match (self, target) {
            (ApplyTo::All, _) => true,
            (ApplyTo::Exchanges, Target::Exchange) => true,
            (ApplyTo::Queues, Target::Queue { .. }) => true,
            (ApplyTo::ClassicQueues, Target::Queue { quorum }) => !quorum,
            (ApplyTo::QuorumQueues, Target::Queue { quorum }) => quorum,
            _ => false,
        }
    }
}

/// The kind of object a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Queue { quorum: bool },
    Exchange,
}

/// One policy or operator policy, checked and compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub vhost: String,
    /// The pattern as written.
    pub pattern: String,
    compiled: Regex,
    pub apply_to: ApplyTo,
    pub priority: i32,
    /// An operator policy: its limits cap what clients ask for.
    pub operator: bool,
    /// The definition as given (keys without `x-`), for listing, export and storage.
    pub definition: Vec<(String, FieldValue)>,
    /// The `x-` queue arguments it applies.
    queue_args: FieldTable,
    /// The alternate exchange it gives exchanges.
    pub alternate_exchange: Option<String>,
    /// Keys of the definition Warren keeps but does not act on (see [`NOT_APPLIED_KEYS`]).
    pub not_applied: Vec<String>,
}

impl Policy {
    /// A policy from its parts; the error says what is wrong (pattern, key or value), in words
    /// close to RabbitMQ's.
    pub fn new(
        name: &str,
        vhost: &str,
        pattern: &str,
        apply_to: ApplyTo,
        priority: i32,
        operator: bool,
        definition: Vec<(String, FieldValue)>,
    ) -> Result<Policy, String> {
        let what = if operator { "operator policy" } else { "policy" };
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!("{what} '{name}': pattern longer than {MAX_PATTERN_LEN} bytes"));
        }
        let compiled = Regex::new(pattern)
            .map_err(|e| format!("{what} '{name}': pattern should be a regular expression but is invalid: {e}"))?;
        if definition.is_empty() {
            return Err(format!("{what} '{name}': no policy provided (the definition is empty)"));
        }
        let allowed: &[&str] = if operator { OPERATOR_POLICY_KEYS } else { POLICY_KEYS };
        let mut queue_args = FieldTable::new();
        let mut alternate_exchange = None;
        let mut not_applied = Vec::new();
        let mut unknown = Vec::new();
        for (key, value) in &definition {
            if allowed.contains(&key.as_str()) {
                queue_args.insert(format!("x-{key}").as_str(), value.clone());
            } else if !operator && EXCHANGE_POLICY_KEYS.contains(&key.as_str()) {
                match value.as_str() {
                    Some(exchange) => alternate_exchange = Some(exchange.to_owned()),
                    None => return Err(format!("{what} '{name}': alternate-exchange must be a string")),
                }
            } else if NOT_APPLIED_KEYS.contains(&key.as_str()) {
                not_applied.push(key.clone());
            } else {
                unknown.push(key.as_str());
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "{what} '{name}': {} not recognised {what} settings (Warren applies: {})",
                unknown.join(", "),
                allowed.join(", ")
            ));
        }
        QueueArgs::parse(&queue_args, "(policy)", vhost).map_err(|e| format!("{what} '{name}': {}", e.text))?;
        Ok(Policy {
            name: name.to_owned(),
            vhost: vhost.to_owned(),
            pattern: pattern.to_owned(),
            compiled,
            apply_to,
            priority,
            operator,
            definition,
            queue_args,
            alternate_exchange,
            not_applied,
        })
    }

    fn applies_to(&self, vhost: &str, target: Target, name: &str) -> bool {
        self.vhost == vhost && self.apply_to.fits(target) && self.compiled.is_match(name)
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

/// What policies make of one queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effective {
    /// The arguments the queue runs with: its own, what its policy adds, its operator's caps.
    pub arguments: FieldTable,
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
    /// The policy's and operator policy's definitions merged (the lower limit of the two),
    /// as RabbitMQ shows it in `effective_policy_definition`.
    pub definition: Vec<(String, FieldValue)>,
}

/// Every policy and operator policy of a broker: immutable, replaced whole on a change.
#[derive(Debug, Clone, Default)]
pub struct Policies(Vec<Arc<Policy>>);

impl Policies {
    pub fn new(policies: Vec<Policy>) -> Policies {
        Policies(policies.into_iter().map(Arc::new).collect())
    }

    pub fn all(&self) -> &[Arc<Policy>] {
        &self.0
    }

    pub fn get(&self, vhost: &str, name: &str, operator: bool) -> Option<&Arc<Policy>> {
        self.0.iter().find(|p| p.vhost == vhost && p.name == name && p.operator == operator)
    }

    /// These policies with `policy` added or replacing the one of its name.
    pub fn with(&self, policy: Policy) -> Policies {
        let mut all = self.without(&policy.vhost, &policy.name, policy.operator).0;
        all.push(Arc::new(policy));
        Policies(all)
    }

    /// These policies without the named one.
    pub fn without(&self, vhost: &str, name: &str, operator: bool) -> Policies {
        Policies(
            self.0
                .iter()
                .filter(|p| !(p.vhost == vhost && p.name == name && p.operator == operator))
                .cloned()
                .collect(),
        )
    }

    /// These policies without any of `vhost`'s.
    pub fn without_vhost(&self, vhost: &str) -> Policies {
        Policies(self.0.iter().filter(|p| p.vhost != vhost).cloned().collect())
    }

    fn winner(&self, vhost: &str, target: Target, name: &str, operator: bool) -> Option<&Arc<Policy>> {
        self.0
            .iter()
            .filter(|p| p.operator == operator && p.applies_to(vhost, target, name))
            .max_by(|a, b| a.priority.cmp(&b.priority).then_with(|| b.name.cmp(&a.name)))
    }

    /// The arguments queue `queue` of `vhost` runs with: its own, then what its policy adds,
    /// then its operator policy's caps.
    pub fn effective(&self, vhost: &str, queue: &str, own: &FieldTable) -> FieldTable {
        self.effective_queue(vhost, queue, own).arguments
    }

    /// What the policies make of queue `queue` of `vhost` with arguments `own`.
    pub fn effective_queue(&self, vhost: &str, queue: &str, own: &FieldTable) -> Effective {
        let quorum = own.get("x-queue-type").and_then(FieldValue::as_str) == Some("quorum");
        let target = Target::Queue { quorum };
        let mut effective = Effective { arguments: own.clone(), ..Effective::default() };
        let mut merged = FieldTable::new();
        for operator in [false, true] {
            let Some(policy) = self.winner(vhost, target, queue, operator) else { continue };
            if operator {
                effective.operator_policy = Some(policy.name.clone());
            } else {
                effective.policy = Some(policy.name.clone());
            }
            for (key, value) in policy.queue_args.iter() {
                let stricter = |current: &FieldValue| is_limit(key) && limit(key, value) < limit(key, current);
                if merged.get(key).is_none_or(stricter) {
                    merged.insert(key.clone(), value.clone());
                }
                if effective.arguments.get(key).is_none_or(stricter) {
                    effective.arguments.insert(key.clone(), value.clone());
                }
            }
        }
        effective.definition =
            merged.iter().map(|(k, v)| (k.strip_prefix("x-").unwrap_or(k).to_owned(), v.clone())).collect();
        effective
    }

    /// The policy that applies to exchange `exchange` of `vhost`, if any.
    pub fn for_exchange(&self, vhost: &str, exchange: &str) -> Option<&Arc<Policy>> {
        self.winner(vhost, Target::Exchange, exchange, false)
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
        Policy::new(name, "/", pattern, ApplyTo::All, priority, operator, def).unwrap()
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
        assert_eq!(
            policies.winner("/", Target::Queue { quorum: false }, "events.x", false).map(|p| p.name.as_str()),
            Some("events")
        );
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
            Policy::new("p", "/", pattern, ApplyTo::Queues, 0, operator, def).unwrap_err()
        };
        assert!(bad(false, vec![], "(").contains("regular expression but is invalid"));
        assert!(bad(false, vec![("max-priority".into(), int(5))], ".*").contains("not recognised"));
        assert!(bad(true, vec![("dead-letter-exchange".into(), text("x"))], ".*").contains("not recognised"));
        assert!(bad(false, vec![], ".*").contains("no policy provided"));
        assert!(bad(false, vec![("alternate-exchange".into(), int(1))], ".*").contains("must be a string"));
        assert!(ApplyTo::parse("streams").unwrap_err().contains("unrecognised"));
        assert!(bad(false, vec![("message-ttl".into(), text("soon"))], ".*").contains("x-message-ttl"));
        assert!(bad(false, vec![("dead-letter-routing-key".into(), text("k"))], ".*").contains("together"));
    }

    #[test]
    fn apply_to_narrows_what_a_policy_matches_and_names_are_reported() {
        let make = |name: &str, apply_to, def: Vec<(String, FieldValue)>| {
            Policy::new(name, "/", "^orders", apply_to, 0, false, def).unwrap()
        };
        let policies = Policies::new(vec![
            make("ae", ApplyTo::Exchanges, vec![("alternate-exchange".into(), text("unrouted"))]),
            make("classic", ApplyTo::ClassicQueues, vec![("max-length".into(), int(7))]),
            make("quorum", ApplyTo::QuorumQueues, vec![("delivery-limit".into(), int(3))]),
        ])
        .with(Policy::new("cap", "/", ".*", ApplyTo::Queues, 0, true, vec![("max-length".into(), int(5))]).unwrap());
        let classic = policies.effective_queue("/", "orders", &FieldTable::new());
        assert_eq!((classic.policy.as_deref(), classic.operator_policy.as_deref()), (Some("classic"), Some("cap")));
        assert_eq!(classic.arguments.get("x-max-length"), Some(&int(5)));
        assert_eq!(classic.definition, vec![("max-length".to_string(), int(5))], "the lower limit of the two");
        let mut quorum_args = FieldTable::new();
        quorum_args.insert("x-queue-type", text("quorum"));
        let quorum = policies.effective_queue("/", "orders", &quorum_args);
        assert_eq!(quorum.policy.as_deref(), Some("quorum"));
        assert_eq!(
            policies.for_exchange("/", "orders.in").and_then(|p| p.alternate_exchange.as_deref()),
            Some("unrouted")
        );
        assert!(policies.for_exchange("/", "payments").is_none());
        let gone = policies.without("/", "cap", true);
        assert_eq!(gone.effective_queue("/", "orders", &FieldTable::new()).operator_policy, None);
        assert_eq!(gone.all().len(), 3);
        assert!(gone.without_vhost("/").all().is_empty());
    }

    #[test]
    fn rabbitmq_keys_without_a_warren_counterpart_are_kept_but_named() {
        let p = Policy::new(
            "ha",
            "/",
            ".*",
            ApplyTo::Queues,
            0,
            false,
            vec![("ha-mode".into(), text("all")), ("message-ttl".into(), int(10))],
        )
        .unwrap();
        assert_eq!(p.not_applied, vec!["ha-mode".to_string()]);
        assert_eq!(p.definition.len(), 2, "kept for listing and export");
        let effective = Policies::new(vec![p]).effective("/", "q", &FieldTable::new());
        assert_eq!(effective.get("x-message-ttl"), Some(&int(10)));
        assert_eq!(effective.get("x-ha-mode"), None);
    }
}
