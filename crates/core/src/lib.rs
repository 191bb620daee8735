//! Warren's broker domain: exchanges, bindings and routing, queue message state, and the argument
//! rules RabbitMQ clients rely on. Pure logic: no IO, no tasks, and time is always passed in.

pub mod aggregate;
pub mod contract;
pub mod dead_letter;
pub mod dedup;
pub mod error;
pub mod exchange;
pub mod filter;
pub mod json;
pub mod message;
pub mod names;
pub mod policy;
pub mod priority;
pub mod queue;
pub mod queue_args;
pub mod routing;
pub mod split;
pub mod text;

pub use error::AmqpError;
pub use exchange::{ExchangeDef, ExchangeKind};
pub use message::Message;
pub use priority::Prioritized;
pub use queue::{Dropped, Entry, Load, QueueMessages};
