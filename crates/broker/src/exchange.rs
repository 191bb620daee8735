//! An exchange at run time: its definition and its bindings, whose destinations are queues or
//! other exchanges held directly (no name lookup on the publish path).

use crate::dedup::Deduplicator;
use crate::delayed::Delayed;
use crate::Queue;
use arc_swap::ArcSwapOption;
use parking_lot::RwLock;
use std::sync::Arc;
use warren_core::policy::Policy;
use warren_core::routing::Bindings;
use warren_core::ExchangeDef;

/// An exchange's transform: its name (looked up at each publish, so a new version applies at
/// once) and the vhost the outputs are routed in (the transform runs on another task).
pub struct TransformAt {
    pub name: String,
    pub vhost: std::sync::Weak<crate::VHost>,
}

/// Messages an exchange split, the parts it made, and those it could not split.
#[derive(Debug, Default)]
pub struct SplitCounts {
    pub messages: std::sync::atomic::AtomicU64,
    pub parts: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

impl SplitCounts {
    pub(crate) fn split(&self, parts: usize) {
        self.messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.parts.fetch_add(parts as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

pub struct Exchange {
    pub def: ExchangeDef,
    pub bindings: RwLock<Bindings<Dest>>,
    /// The messages a delayed exchange holds until their time.
    pub delayed: Option<Delayed>,
    /// Argument `x-warren-track`: every message published to it is tracked.
    pub track: bool,
    /// Argument `x-message-deduplication`: duplicates are confirmed but not routed.
    pub dedup: Option<Arc<Deduplicator>>,
    /// Argument `x-transform`: messages go through this transform before routing.
    pub transform: Option<TransformAt>,
    /// Argument `x-split`: messages are split into parts before routing.
    pub split: Option<warren_core::split::Split>,
    /// What its splitting did (counted only when it splits).
    pub split_counts: SplitCounts,
    /// The policy that applies to it (set when declared and whenever policies change).
    policy: ArcSwapOption<Policy>,
}

impl Exchange {
    pub fn new(def: ExchangeDef) -> Exchange {
        Exchange::with_delayed(def, None)
    }

    pub fn with_delayed(def: ExchangeDef, delayed: Option<Delayed>) -> Exchange {
        let bindings = RwLock::new(Bindings::new(def.kind));
        let track = def.arguments.get(crate::tracking::TRACK_HEADER).is_some_and(crate::tracking::truthy);
        Exchange {
            def,
            bindings,
            delayed,
            track,
            dedup: None,
            transform: None,
            split: None,
            split_counts: SplitCounts::default(),
            policy: ArcSwapOption::empty(),
        }
    }

    /// The exchange transforming its messages with the transform named `at`.
    pub fn with_transform(mut self, at: Option<TransformAt>) -> Exchange {
        self.transform = at;
        self
    }

    /// The exchange splitting its messages as `split` says.
    pub fn with_split(mut self, split: Option<warren_core::split::Split>) -> Exchange {
        self.split = split;
        self
    }

    /// The exchange deduplicating with `dedup`.
    pub fn with_dedup(mut self, dedup: Option<Arc<Deduplicator>>) -> Exchange {
        self.dedup = dedup;
        self
    }

    /// The policy that applies to the exchange, if any.
    pub fn policy(&self) -> Option<Arc<Policy>> {
        self.policy.load_full()
    }

    pub fn set_policy(&self, policy: Option<Arc<Policy>>) {
        self.policy.store(policy);
    }

    /// Where messages nothing else takes go: the exchange's own `alternate-exchange` argument,
    /// else its policy's (RabbitMQ's order), looked up in `vhost`. Nothing is copied: this runs
    /// for every unroutable message.
    pub fn alternate_in(&self, vhost: &crate::VHost) -> Option<Arc<Exchange>> {
        if let Some(own) = self.def.alternate_exchange() {
            return vhost.exchange(own);
        }
        let policy = self.policy.load();
        policy.as_ref()?.alternate_exchange.as_deref().and_then(|name| vhost.exchange(name))
    }

    pub fn name(&self) -> &str {
        self.def.name.as_str()
    }

    /// The nameless default exchange routes by queue name and takes no bindings.
    pub fn is_default(&self) -> bool {
        self.def.name.is_empty()
    }
}

/// Where a binding leads. Equality is identity: two queues with the same name in one vhost cannot
/// coexist, and a deleted-then-redeclared queue is a different destination.
#[derive(Clone)]
pub enum Dest {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
    /// A queue bound with `x-transform`: it gets what that transform makes of each message.
    /// Transports bind and unbind a [`Dest::Queue`]; the vhost makes it this one from the
    /// binding's arguments.
    Transformed(Arc<Queue>, Arc<str>),
}

impl Dest {
    /// The destination a binding with `arguments` has: a queue bound with `x-transform` gets
    /// that transform's outputs. `Err` for a transform on a binding to an exchange, or a
    /// transform name that is not a string.
    pub fn with_binding_arguments(self, arguments: &amqp_codec::FieldTable) -> Result<Dest, warren_core::AmqpError> {
        let Some(value) = arguments.get(crate::transforms::TRANSFORM_ARG) else { return Ok(self) };
        let Some(name) = value.as_str().filter(|n| !n.is_empty()) else {
            return Err(warren_core::AmqpError::precondition_failed("x-transform must name a transform"));
        };
        match self {
            Dest::Queue(q) | Dest::Transformed(q, _) => Ok(Dest::Transformed(q, name.into())),
            Dest::Exchange(_) => Err(warren_core::AmqpError::precondition_failed(
                "x-transform on a binding needs a queue as its destination",
            )),
        }
    }

    /// The queue it delivers to, if it is one (transformed or not).
    pub fn queue(&self) -> Option<&Arc<Queue>> {
        match self {
            Dest::Queue(q) | Dest::Transformed(q, _) => Some(q),
            Dest::Exchange(_) => None,
        }
    }

    /// Whether it leads to the same queue or exchange as `other`, whatever the transform (a
    /// deleted queue loses all its bindings).
    pub fn same_target(&self, other: &Dest) -> bool {
        match (self.queue(), other.queue()) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => self == other,
        }
    }
}

impl PartialEq for Dest {
    fn eq(&self, other: &Dest) -> bool {
        match (self, other) {
            (Dest::Queue(a), Dest::Queue(b)) => Arc::ptr_eq(a, b),
            (Dest::Exchange(a), Dest::Exchange(b)) => Arc::ptr_eq(a, b),
            (Dest::Transformed(a, t), Dest::Transformed(b, u)) => Arc::ptr_eq(a, b) && t == u,
            _ => false,
        }
    }
}

impl Eq for Dest {}

/// Hashes the identity that equality compares.
impl std::hash::Hash for Dest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Dest::Queue(q) => (0u8, Arc::as_ptr(q) as usize).hash(state),
            Dest::Exchange(e) => (1u8, Arc::as_ptr(e) as usize).hash(state),
            Dest::Transformed(q, t) => (2u8, Arc::as_ptr(q) as usize, &**t).hash(state),
        }
    }
}

impl std::fmt::Debug for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Queue(q) => write!(f, "queue {}", q.name),
            Dest::Exchange(e) => write!(f, "exchange {}", e.name()),
            Dest::Transformed(q, t) => write!(f, "queue {} through transform {t}", q.name),
        }
    }
}
