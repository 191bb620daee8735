//! Applying a change of policies to a vhost's queues and exchanges at once, as RabbitMQ does:
//! each queue runs with its new effective arguments, each exchange with its new policy.

use super::VHost;

impl VHost {
    /// Re-applies the broker's current policies to every queue and exchange of this vhost.
    pub(crate) fn apply_policies(&self) {
        let policies = self.policies.load_full();
        for exchange in self.exchanges() {
            exchange.set_policy(policies.for_exchange(&self.name, exchange.name()).cloned());
        }
        for name in self.queue_names() {
            let Some(q) = self.queue(&name) else { continue };
            match self.queue_args(&q.name, &q.arguments) {
                Ok((args, policy)) => q.apply_policy(args, policy),
                // Policies are checked on their own when set; together with a queue's own
                // arguments they can still clash (a dead-letter routing key without exchange).
                Err(e) => tracing::warn!(vhost = %self.name, queue = %name, error = %e.text, "policy not applied"),
            }
        }
    }
}
