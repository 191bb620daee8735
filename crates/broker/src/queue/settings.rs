//! A queue's settings: its arguments with what policies add, swapped whole when a policy
//! changes (the hot paths load them without a lock), and the policies' names for listing.

use super::Queue;
use arc_swap::Guard;
use std::sync::Arc;
use warren_core::queue_args::QueueArgs;

/// The names of the policy and operator policy that apply to a queue, and their merged definition.
#[derive(Debug, Clone, Default)]
pub struct AppliedPolicy {
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
    pub definition: Vec<(String, amqp_codec::FieldValue)>,
}

impl Queue {
    /// The settings the queue runs with (its arguments with what policies add).
    pub fn args(&self) -> Guard<Arc<QueueArgs>> {
        self.args.load()
    }

    /// The policies that apply to the queue.
    pub fn applied_policy(&self) -> AppliedPolicy {
        self.policy.lock().clone()
    }

    /// Runs the queue with new settings from a policy change: a new TTL applies to messages
    /// that arrive from now on (those queued keep their deadlines, as in RabbitMQ), new length
    /// limits apply at once, and deadlines are rescheduled.
    pub fn apply_policy(self: &Arc<Self>, args: QueueArgs, policy: AppliedPolicy) {
        *self.policy.lock() = policy;
        let mut st = self.state.lock();
        if st.deleted || **self.args.load() == args {
            return;
        }
        st.messages.set_message_ttl(args.message_ttl_ms);
        self.args.store(Arc::new(args));
        self.drop_over_limit(&mut st);
        self.dispatch_locked(&mut st);
        self.bound_memory(&mut st);
        self.schedule(&mut st);
        self.unlock(st);
    }
}
