//! Aggregators as broker objects (the Aggregator pattern): each consumes a queue, gathers its
//! messages into groups by a correlation key (`core::aggregate`), and publishes one combined
//! message per complete group to an exchange (`runner.rs`). Definitions are durable in the
//! definitions log (`durable/aggregator_defs.rs`, key `g`), managed over HTTP and exported with
//! the definitions; a group in progress survives a restart because its parts stay unacked in
//! their queue until the combined message is written (in the same store record as their acks).

mod runner;

use crate::durable::aggregator_defs as keys;
use crate::Broker;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use warren_core::aggregate::{Completion, Limits};
use warren_core::filter::{parse_path, Path};
use warren_core::AmqpError;

pub use runner::Figures;

/// Most aggregators a broker keeps.
pub const MAX_AGGREGATORS: usize = 1_000;
/// Bounds of one aggregator: open groups, parts per group, and parts held at once (their
/// messages are in memory, unacked in their queue).
pub const MAX_GROUPS: usize = 100_000;
pub const MAX_PARTS: usize = 10_000;
pub const MAX_PARTS_HELD: usize = 100_000;
/// The longest a group may wait for its parts, ms (a day).
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;

/// When a group is complete, as a definition says it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompleteWhen {
    /// As many parts as their `x-split-count` header says.
    SplitCount,
    /// This many parts.
    Count(usize),
    /// The named transform, run over `{key, parts}`, outputs `true`.
    Transform(String),
}

/// An aggregator as it is defined (and kept, and exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorDef {
    #[serde(default)]
    pub vhost: String,
    #[serde(default)]
    pub name: String,
    /// The queue whose messages it gathers.
    pub queue: String,
    /// Where a message's correlation key is, as a filter path: `headers['x-split-id']` (the
    /// default), `correlation_id`, `body.order.id`.
    #[serde(default = "split_id_path")]
    pub correlate_by: String,
    #[serde(default = "split_count")]
    pub complete_when: CompleteWhen,
    /// How long a group may wait for its parts from the first one, ms; then its parts are
    /// dead-lettered (reason `aggregate_timeout`).
    #[serde(default = "a_minute")]
    pub timeout_ms: u64,
    /// A transform that makes the combined message of `{key, parts}` (each part as a transform
    /// sees a message); without one, the body is the JSON array of the parts' bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub combine: Option<String>,
    /// Where the combined message is published, and with which routing key (default: the
    /// first part's).
    pub exchange: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    #[serde(default = "a_thousand")]
    pub max_groups: usize,
    #[serde(default = "a_hundred")]
    pub max_parts: usize,
}

fn split_id_path() -> String {
    "headers['x-split-id']".into()
}
fn split_count() -> CompleteWhen {
    CompleteWhen::SplitCount
}
fn a_minute() -> u64 {
    60_000
}
fn a_thousand() -> usize {
    1_000
}
fn a_hundred() -> usize {
    100
}

impl AggregatorDef {
    /// Checks the definition's own rules (the queue, exchange and transforms it names are
    /// looked up when it starts); returns the key's path.
    pub fn check(&self) -> Result<Path, String> {
        let path = parse_path(&self.correlate_by).map_err(|e| format!("correlate_by: {e}"))?;
        if !(1..=MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(format!("timeout_ms must be from 1 to {MAX_TIMEOUT_MS}"));
        }
        if !(1..=MAX_GROUPS).contains(&self.max_groups) || !(1..=MAX_PARTS).contains(&self.max_parts) {
            return Err(format!("max_groups must be from 1 to {MAX_GROUPS}, max_parts from 1 to {MAX_PARTS}"));
        }
        if self.max_groups.saturating_mul(self.max_parts) > MAX_PARTS_HELD {
            return Err(format!(
                "max_groups x max_parts is the most parts held in memory at once: at most {MAX_PARTS_HELD}"
            ));
        }
        if let CompleteWhen::Count(n) = self.complete_when {
            if !(1..=self.max_parts).contains(&n) {
                return Err("complete_when.count must be from 1 to max_parts".into());
            }
        }
        if self.queue.is_empty() || self.exchange.len() > 255 || self.queue.len() > 255 {
            return Err("queue (1 to 255 bytes) and exchange (at most 255) are required".into());
        }
        if self.routing_key.as_ref().is_some_and(|k| k.len() > 255) {
            return Err("routing_key is at most 255 bytes".into());
        }
        Ok(path)
    }

    fn completion(&self) -> Completion {
        match &self.complete_when {
            CompleteWhen::SplitCount => Completion::SplitCount,
            CompleteWhen::Count(n) => Completion::Count(*n),
            CompleteWhen::Transform(_) => Completion::Predicate,
        }
    }

    fn limits(&self) -> Limits {
        Limits { max_groups: self.max_groups, max_parts: self.max_parts, timeout_ms: self.timeout_ms }
    }
}

/// An aggregator: its definition and, while it runs, its runner.
pub struct Aggregator {
    pub def: AggregatorDef,
    runner: Mutex<Option<Arc<runner::Runner>>>,
    /// Why it is not running, if it is not.
    idle: Mutex<Option<String>>,
}

impl Aggregator {
    /// Its counters and state now.
    pub fn figures(&self) -> Figures {
        match &*self.runner.lock() {
            Some(runner) => runner.figures(),
            None => {
                Figures { state: self.idle.lock().clone().unwrap_or_else(|| "stopped".into()), ..Figures::default() }
            }
        }
    }
}

/// Every aggregator of a broker, by (vhost, name).
#[derive(Default)]
pub struct AggregatorBook {
    all: Mutex<BTreeMap<(String, String), Arc<Aggregator>>>,
}

impl Broker {
    /// Every aggregator.
    pub fn aggregators(&self) -> Vec<Arc<Aggregator>> {
        self.inner.aggregators.all.lock().values().cloned().collect()
    }

    pub fn aggregator(&self, vhost: &str, name: &str) -> Option<Arc<Aggregator>> {
        self.inner.aggregators.all.lock().get(&(vhost.to_owned(), name.to_owned())).cloned()
    }

    /// Adds or replaces an aggregator, durably, and starts it (a replaced one stops first: its
    /// groups in progress go back to their queue and are gathered again). True if it is new.
    /// Call on the runtime.
    pub fn put_aggregator(&self, def: AggregatorDef) -> Result<bool, AmqpError> {
        def.check().map_err(AmqpError::precondition_failed)?;
        let vhost = self.vhost(&def.vhost).ok_or_else(|| AmqpError::not_found(format!("no vhost '{}'", def.vhost)))?;
        if vhost.queue(&def.queue).is_none() {
            return Err(AmqpError::not_found(format!("no queue '{}' in vhost '{}'", def.queue, def.vhost)));
        }
        if vhost.exchange(&def.exchange).is_none() {
            return Err(AmqpError::not_found(format!("no exchange '{}' in vhost '{}'", def.exchange, def.vhost)));
        }
        let key = (def.vhost.clone(), def.name.clone());
        let old = {
            let _changing = self.inner.policy_changes.lock();
            let mut all = self.inner.aggregators.all.lock();
            if !all.contains_key(&key) && all.len() >= MAX_AGGREGATORS {
                return Err(AmqpError::not_allowed(format!(
                    "the broker holds {MAX_AGGREGATORS} aggregators, its limit"
                )));
            }
            self.submit_defs(vec![(keys::aggregator_key(&def.vhost, &def.name), Some(keys::aggregator_value(&def)))]);
            let aggregator = Arc::new(Aggregator { def, runner: Mutex::new(None), idle: Mutex::new(None) });
            let old = all.insert(key.clone(), aggregator.clone());
            self.start_aggregator(&aggregator);
            old
        };
        let created = old.is_none();
        if let Some(old) = old {
            stop(&old);
        }
        Ok(created)
    }

    /// Deletes an aggregator (its groups in progress go back to their queue); false if there
    /// was none.
    pub fn delete_aggregator(&self, vhost: &str, name: &str) -> bool {
        let removed = {
            let _changing = self.inner.policy_changes.lock();
            let removed = self.inner.aggregators.all.lock().remove(&(vhost.to_owned(), name.to_owned()));
            if removed.is_some() {
                self.submit_defs(vec![(keys::aggregator_key(vhost, name), None)]);
            }
            removed
        };
        removed.map(|a| stop(&a)).is_some()
    }

    /// A deleted vhost's aggregators go with it.
    pub(crate) fn drop_vhost_aggregators(&self, vhost: &str) -> Vec<crate::durable::defs::Change> {
        let gone: Vec<Arc<Aggregator>> = {
            let mut all = self.inner.aggregators.all.lock();
            let keys: Vec<_> = all.keys().filter(|(v, _)| v == vhost).cloned().collect();
            keys.iter().filter_map(|k| all.remove(k)).collect()
        };
        gone.iter().for_each(stop);
        gone.iter().map(|a| (keys::aggregator_key(vhost, &a.def.name), None)).collect()
    }

    /// At start: the stored aggregators (started by [`Broker::start_aggregators`]).
    pub(crate) fn restore_aggregators(&self, stored: Vec<AggregatorDef>) {
        let mut all = self.inner.aggregators.all.lock();
        for def in stored {
            let key = (def.vhost.clone(), def.name.clone());
            all.insert(key, Arc::new(Aggregator { def, runner: Mutex::new(None), idle: Mutex::new(None) }));
        }
    }

    /// Starts every aggregator that is not running (after a restore; on the runtime).
    pub fn start_aggregators(&self) {
        for aggregator in self.aggregators() {
            if aggregator.runner.lock().is_none() {
                self.start_aggregator(&aggregator);
            }
        }
    }

    fn start_aggregator(&self, aggregator: &Arc<Aggregator>) {
        match runner::Runner::start(self, &aggregator.def) {
            Ok(runner) => {
                *aggregator.runner.lock() = Some(runner);
                *aggregator.idle.lock() = None;
            }
            Err(why) => {
                tracing::warn!(vhost = %aggregator.def.vhost, aggregator = %aggregator.def.name, %why, "aggregator not started");
                *aggregator.idle.lock() = Some(why);
            }
        }
    }
}

fn stop(aggregator: &Arc<Aggregator>) {
    if let Some(runner) = aggregator.runner.lock().take() {
        runner.stop();
    }
}
