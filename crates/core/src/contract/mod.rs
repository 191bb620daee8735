//! Contracts: named, versioned JSON Schemas (2020-12) that the messages published to an exchange
//! must follow, optionally only those with a routing key matching a topic pattern and/or a
//! message `type`, with a required content type and a largest body. A message that breaks its
//! contract is refused (`reject`) or dead-lettered with the violations (`dead-letter`). A new
//! version must be compatible with the previous one under the contract's mode (`compat.rs`).
//! Schemas are compiled once, when a version is added; checking a message runs the compiled
//! validator on its parsed body.

pub mod compat;

pub use compat::Compatibility;

use crate::routing::topic::TopicTrie;
use serde_json::Value;
use std::sync::Arc;

/// Largest schema accepted, in bytes of JSON.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Versions kept per contract (the oldest go first).
pub const MAX_VERSIONS: usize = 100;
/// Violations reported per message, and the longest message of each.
pub const MAX_VIOLATIONS: usize = 10;
pub const MAX_VIOLATION_TEXT: usize = 200;

/// What happens to a message that breaks its contract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OnViolation {
    /// Refused: a publisher-confirm nack (and a `basic.return` if mandatory); HTTP 422.
    #[default]
    Reject,
    /// Routed to a dead-letter exchange with reason `contract` and the violations.
    DeadLetter(DeadLetterTo),
}

/// Where a contract's dead letters go. Without an exchange of its own, the dead-letter
/// exchange of the exchange the message was published to (its `x-dead-letter-exchange`
/// argument); without a routing key, the keys it was published with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterTo {
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
}

impl OnViolation {
    /// The action named `text`, with the dead-letter target (which only `dead-letter` takes).
    pub fn parse(text: &str, exchange: Option<String>, routing_key: Option<String>) -> Result<OnViolation, String> {
        for name in [&exchange, &routing_key].into_iter().flatten() {
            if name.len() > 255 {
                return Err("a dead-letter exchange or routing key is at most 255 bytes".into());
            }
        }
        match text {
            "reject" if exchange.is_none() && routing_key.is_none() => Ok(OnViolation::Reject),
            "reject" => Err("dead_letter_exchange and dead_letter_routing_key go with on_violation dead-letter".into()),
            "dead-letter" => Ok(OnViolation::DeadLetter(DeadLetterTo { exchange, routing_key })),
            other => Err(format!("on_violation '{other}' is reject or dead-letter")),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            OnViolation::Reject => "reject",
            OnViolation::DeadLetter(_) => "dead-letter",
        }
    }

    /// The dead-letter target, for `dead-letter`.
    pub fn dead_letter_to(&self) -> Option<&DeadLetterTo> {
        match self {
            OnViolation::Reject => None,
            OnViolation::DeadLetter(to) => Some(to),
        }
    }
}

/// Which messages a contract covers, and what it asks of them besides the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub exchange: String,
    /// A topic pattern (`orders.*.created`, `#`) the routing key must match.
    pub routing_key: Option<String>,
    /// The `type` property the message must have.
    pub message_type: Option<String>,
    pub content_type: Option<String>,
    pub max_body_bytes: Option<u64>,
}

/// One version of a contract's schema, compiled.
#[derive(Clone)]
pub struct Version {
    pub number: u32,
    pub schema: Value,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version").field("number", &self.number).field("schema", &self.schema).finish()
    }
}

/// A place in a message where it breaks its contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// A JSON pointer into the body (`""` for the whole message).
    pub pointer: String,
    pub message: String,
}

impl Violation {
    /// As the APIs show it: `{"pointer", "message"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"pointer": self.pointer, "message": self.message})
    }
}

/// A contract: its scope, mode and versions (the last is the one messages are checked against).
#[derive(Debug, Clone)]
pub struct Contract {
    pub name: String,
    pub vhost: String,
    /// Private: the routing-key pattern is compiled from it.
    scope: Scope,
    pub compatibility: Compatibility,
    pub on_violation: OnViolation,
    versions: Vec<Version>,
    routing_key: Option<Arc<TopicTrie<()>>>,
}

fn compile(number: u32, schema: Value) -> Result<Version, String> {
    let size = serde_json::to_vec(&schema).map(|b| b.len()).unwrap_or(usize::MAX);
    if size > MAX_SCHEMA_BYTES {
        return Err(format!("the schema is larger than {MAX_SCHEMA_BYTES} bytes"));
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&schema)
        .map_err(|e| format!("not a valid JSON Schema (2020-12): {e}"))?;
    Ok(Version { number, schema, validator: Arc::new(validator) })
}

impl Contract {
    /// A contract with its first version.
    pub fn new(
        name: &str,
        vhost: &str,
        scope: Scope,
        compatibility: Compatibility,
        on_violation: OnViolation,
        schema: Value,
    ) -> Result<Contract, String> {
        Contract::with_versions(name, vhost, scope, compatibility, on_violation, vec![(1, schema)])
    }

    /// A contract as stored: its versions, oldest first (not re-checked for compatibility).
    pub fn with_versions(
        name: &str,
        vhost: &str,
        scope: Scope,
        compatibility: Compatibility,
        on_violation: OnViolation,
        versions: Vec<(u32, Value)>,
    ) -> Result<Contract, String> {
        if name.is_empty() || name.len() > 255 {
            return Err("a contract name is 1 to 255 bytes".into());
        }
        if versions.is_empty() {
            return Err("a contract has at least one version".into());
        }
        let routing_key = scope.routing_key.as_ref().map(|pattern| {
            let mut trie = TopicTrie::default();
            trie.insert(pattern, ());
            Arc::new(trie)
        });
        let versions = versions.into_iter().map(|(n, s)| compile(n, s)).collect::<Result<Vec<_>, _>>()?;
        Ok(Contract {
            name: name.to_owned(),
            vhost: vhost.to_owned(),
            scope,
            compatibility,
            on_violation,
            versions,
            routing_key,
        })
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// The version messages are checked against.
    pub fn latest(&self) -> &Version {
        self.versions.last().expect("a contract has a version")
    }

    /// This contract with `schema` as a new version, if it is compatible with the latest one;
    /// else the reasons it is not.
    pub fn with_new_version(&self, schema: Value) -> Result<Contract, Vec<String>> {
        let reasons = compat::check(self.compatibility, &self.latest().schema, &schema);
        if !reasons.is_empty() {
            return Err(reasons);
        }
        let version = compile(self.latest().number + 1, schema).map_err(|e| vec![e])?;
        let mut next = self.clone();
        next.versions.push(version);
        if next.versions.len() > MAX_VERSIONS {
            next.versions.remove(0);
        }
        Ok(next)
    }

    /// Whether the contract covers a message published to its exchange with `routing_key`
    /// and `message_type`.
    pub fn covers(&self, routing_key: &str, message_type: Option<&str>) -> bool {
        if let Some(trie) = &self.routing_key {
            let mut hit = false;
            trie.route(routing_key, &mut |_| hit = true);
            if !hit {
                return false;
            }
        }
        match &self.scope.message_type {
            Some(t) => message_type == Some(t.as_str()),
            None => true,
        }
    }

    /// Checks a covered message: its content type, size and body against the latest schema.
    /// `Ok` with the version it passed, or the violations (at most [`MAX_VIOLATIONS`]).
    pub fn check(&self, content_type: Option<&str>, body: &[u8]) -> Result<u32, Vec<Violation>> {
        let whole = |message: String| vec![Violation { pointer: String::new(), message }];
        if let Some(max) = self.scope.max_body_bytes {
            if body.len() as u64 > max {
                return Err(whole(format!("the body is {} bytes, more than the {max} allowed", body.len())));
            }
        }
        if let Some(wanted) = &self.scope.content_type {
            if content_type != Some(wanted.as_str()) {
                return Err(whole(format!("content_type must be '{wanted}', not '{}'", content_type.unwrap_or(""))));
            }
        }
        let instance: Value = serde_json::from_slice(body).map_err(|e| whole(format!("the body is not JSON: {e}")))?;
        let version = self.latest();
        // The common case, a valid message, is decided without building errors.
        if version.validator.is_valid(&instance) {
            return Ok(version.number);
        }
        let violations: Vec<Violation> = version
            .validator
            .iter_errors(&instance)
            .take(MAX_VIOLATIONS)
            .map(|e| {
                let message = crate::text::cut(&e.to_string(), MAX_VIOLATION_TEXT);
                Violation { pointer: e.instance_path().to_string(), message }
            })
            .collect();
        if violations.is_empty() {
            Ok(version.number)
        } else {
            Err(violations)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn orders(scope_key: Option<&str>) -> Contract {
        let scope = Scope {
            exchange: "orders".into(),
            routing_key: scope_key.map(str::to_owned),
            message_type: None,
            content_type: Some("application/json".into()),
            max_body_bytes: Some(1024),
        };
        let schema = json!({"type": "object", "required": ["id"],
                            "properties": {"id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}}});
        Contract::new("order", "/", scope, Compatibility::Backward, OnViolation::Reject, schema).unwrap()
    }

    #[test]
    fn messages_are_checked_against_the_latest_version_with_pointers() {
        let c = orders(None);
        let json = Some("application/json");
        assert_eq!(c.check(json, br#"{"id": 7, "total": 3.5}"#), Ok(1));
        let bad = c.check(json, br#"{"total": -1}"#).unwrap_err();
        let pointers: Vec<&str> = bad.iter().map(|v| v.pointer.as_str()).collect();
        assert!(pointers.contains(&"") && pointers.contains(&"/total"), "{bad:?}");
        assert!(bad.iter().any(|v| v.message.contains(r#""id" is a required property"#)), "{bad:?}");
        assert!(c.check(Some("text/plain"), br#"{"id": 1}"#).unwrap_err()[0].message.contains("content_type"));
        assert!(c.check(json, b"{oops").unwrap_err()[0].message.contains("not JSON"));
        assert!(c.check(json, &vec![b' '; 2000]).unwrap_err()[0].message.contains("more than the 1024"));
    }

    #[test]
    fn new_versions_must_be_compatible_and_scopes_narrow_what_is_covered() {
        let c = orders(Some("orders.*.created"));
        assert!(c.covers("orders.eu.created", None));
        assert!(!c.covers("orders.eu.cancelled", None));
        let mut optional = c.latest().schema.clone();
        optional["properties"]["note"] = json!({"type": "string"});
        optional["additionalProperties"] = json!(true);
        let refused = c.with_new_version(optional).unwrap_err();
        assert!(refused[0].starts_with("backward"), "{refused:?}");
        let mut looser = c.latest().schema.clone();
        looser["properties"]["total"] = json!({"type": "number"});
        let v2 = c.with_new_version(looser).unwrap();
        assert_eq!((v2.latest().number, v2.versions().len()), (2, 2));
        assert_eq!(v2.check(Some("application/json"), br#"{"id": 1, "total": -5}"#), Ok(2));
        assert!(Contract::new("x", "/", c.scope.clone(), Compatibility::None, OnViolation::Reject, json!({"type": 5}))
            .unwrap_err()
            .contains("not a valid JSON Schema"));
        let to = DeadLetterTo { exchange: Some("invalid".into()), routing_key: None };
        assert_eq!(OnViolation::parse("dead-letter", Some("invalid".into()), None), Ok(OnViolation::DeadLetter(to)));
        assert!(OnViolation::parse("reject", Some("invalid".into()), None).is_err(), "a target needs dead-letter");
    }
}
