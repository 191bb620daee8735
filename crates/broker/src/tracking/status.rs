//! What a tracked message's status shows: its events, outcome, reply and callback attempts
//! (the shapes the HTTP API serves and the journal keeps).

use serde::{Deserialize, Serialize};

/// One thing that happened to a tracked message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Accepted {
        at_ms: u64,
    },
    /// A consumer replied (the reply is in the status).
    Replied {
        at_ms: u64,
    },
    Routed {
        at_ms: u64,
        exchange: String,
        queues: Vec<String>,
    },
    Unroutable {
        at_ms: u64,
        exchange: String,
    },
    /// A full queue refused it (`reject-publish`).
    Refused {
        at_ms: u64,
        queue: String,
    },
    /// The disk could not take it (full or failing): it went nowhere, or (with `queue`) its
    /// write failed after it reached that queue, which dropped it.
    NotStored {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        queue: Option<String>,
    },
    Delivered {
        at_ms: u64,
        queue: String,
        attempt: u32,
    },
    Requeued {
        at_ms: u64,
        queue: String,
    },
    Acked {
        at_ms: u64,
        queue: String,
    },
    /// The transform of the exchange it was published to made `outputs` messages of it (each
    /// routed on as this one).
    Transformed {
        at_ms: u64,
        transform: String,
        outputs: usize,
    },
    /// The exchange it was published to split it into `parts` messages, each routed on as
    /// this one (its status succeeds only when all of them do).
    Split {
        at_ms: u64,
        exchange: String,
        parts: usize,
    },
    /// The exchange could not split it (`error`); a `dead_lettered` event follows if the
    /// exchange has a dead-letter exchange.
    SplitFailed {
        at_ms: u64,
        exchange: String,
        error: String,
    },
    /// The transform of the exchange it was published to failed on it; a `dead_lettered` event
    /// follows if the exchange has a dead-letter exchange.
    TransformFailed {
        at_ms: u64,
        exchange: String,
        transform: String,
        error: String,
    },
    /// A deduplication window (`at`: an exchange or a queue) had its key: it was confirmed and
    /// went no further there.
    Deduplicated {
        at_ms: u64,
        at: String,
    },
    /// It broke the contract (`name/version`) of the exchange it was published to, in these
    /// places; a `dead_lettered` event follows if the contract dead-letters.
    BrokeContract {
        at_ms: u64,
        exchange: String,
        contract: String,
        violations: Vec<ViolationSeen>,
    },
    /// Left `queue` for `reason` through the dead-letter exchange, which routed it to `queues`.
    /// (A contract's dead letter left no queue: `queue` is absent.)
    DeadLettered {
        at_ms: u64,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        queue: String,
        reason: String,
        exchange: String,
        queues: Vec<String>,
    },
    /// Left its queue for `reason` with no dead-letter exchange to go to.
    Dropped {
        at_ms: u64,
        queue: String,
        reason: String,
    },
}

/// A place where a message broke its contract: a JSON pointer into the body and what is wrong.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViolationSeen {
    pub pointer: String,
    pub message: String,
}

/// Replies kept larger than this are cut (and marked so).
pub const MAX_REPLY_BYTES: usize = 1 << 20;

/// The address a consumer replies to for a tracked message whose publisher awaits a reply
/// (`<prefix><tracking id>`), on the default exchange.
pub const REPLY_PREFIX: &str = "amq.warren.reply.";

/// A consumer's reply to a tracked message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    pub at_ms: u64,
    pub content_type: Option<String>,
    pub correlation_id: Option<String>,
    /// The body as text (`utf8`) or `base64` when it is not UTF-8.
    pub body: String,
    pub body_encoding: String,
    /// The body was longer than [`MAX_REPLY_BYTES`] and was cut.
    pub truncated: bool,
}

/// Where a tracked message stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Some copy is still in a queue (or it was not routed yet).
    Pending,
    /// Every copy was acknowledged by a consumer.
    Succeeded,
    /// It was unroutable, or some copy was refused, dead-lettered, dropped or expired.
    Failed,
}

/// What a status request sees.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub id: String,
    pub outcome: Outcome,
    pub finished: bool,
    pub created_ms: u64,
    pub events: Vec<Event>,
    /// Events beyond the ones kept.
    pub events_dropped: u64,
    /// Changes with every event (for long polls).
    pub version: u64,
    /// The consumer's reply, when the publisher awaited one and it came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Reply>,
    /// The callback the publisher asked for, and every attempt to make it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackStatus>,
}

/// Where a callback stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Waiting for the message to finish.
    Waiting,
    /// Being sent (or waiting to be retried).
    Sending,
    /// A 2xx answer came.
    Delivered,
    /// Attempts or time ran out.
    Failed,
}

/// One attempt to call back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Attempt {
    pub at_ms: u64,
    /// The HTTP status of the answer, if one came.
    pub status: Option<u16>,
    /// Why no answer came (connection refused, timeout...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A callback as the status shows it (the secret never is).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallbackStatus {
    pub url: String,
    pub state: CallbackState,
    pub attempts: Vec<Attempt>,
}
