//! Queues of a vhost: declare (with RabbitMQ's equivalence rules and argument checks),
//! delete, purge, and removal with their bindings and consumers.

use super::{QueueDeclare, VHost};
use crate::durable::defs::{self, StoredQueue};
use crate::exchange::Dest;
use crate::queue::{AppliedPolicy, Persist};
use crate::{Consumer, Queue};
use amqp_codec::FieldTable;
use std::sync::Arc;
use warren_core::names;
use warren_core::queue_args::{self, QueueArgs};
use warren_core::AmqpError;

impl VHost {
    /// queue.declare: returns the queue with its ready-message and consumer counts.
    pub fn declare_queue(
        self: &Arc<Self>,
        req: QueueDeclare,
        connection: u64,
        max_queues: usize,
    ) -> Result<(Arc<Queue>, u32, u32), AmqpError> {
        if req.passive {
            let q = self.queue_for(&req.name, connection)?;
            let (messages, consumers) = q.counts();
            return Ok((q, messages, consumers));
        }
        let mut queues = self.queues.write();
        self.check_not_deleted()?;
        if let Some(q) = queues.get(&req.name).cloned() {
            drop(queues);
            q.check_access(connection)?;
            self.check_queue_equivalent(&q, &req)?;
            q.touch();
            let (messages, consumers) = q.counts();
            return Ok((q, messages, consumers));
        }
        if !req.server_named {
            names::check_queue_declare_name(&req.name)?;
        }
        let (args, policy) = self.queue_args(&req.name, &req.arguments)?;
        args.check_queue_type_flags(req.durable, req.exclusive, req.auto_delete, &req.name, &self.name)?;
        if let Some(limit) = self.resource_limits.max_queues(&self.name).filter(|l| queues.len() >= *l) {
            return Err(AmqpError::precondition_failed(format!(
                "cannot declare queue '{}': queue limit in vhost '{}' ({limit}) is reached",
                req.name, self.name
            )));
        }
        if queues.len() >= max_queues {
            return Err(AmqpError::not_allowed(format!(
                "cannot declare queue '{}' in vhost '{}': queue limit of {max_queues} is reached",
                req.name, self.name
            )));
        }
        let owner = req.exclusive.then_some(connection);
        // Exclusive queues end with their connection, so they are never stored.
        let persist = match &self.durability {
            Some(d) if req.durable && !req.exclusive => {
                let (id, counter) = d.allocate_queue_id();
                let stored = StoredQueue { id, auto_delete: req.auto_delete, arguments: req.arguments.clone() };
                self.submit(vec![counter, (defs::queue_key(&self.name, &req.name), Some(defs::queue_value(&stored)))]);
                Some(Persist { id, durability: d.clone(), durable: true })
            }
            // Others get an id for paging only: nothing of theirs survives a restart.
            Some(d) => Some(Persist { id: d.allocate_paging_queue_id(), durability: d.clone(), durable: false }),
            None => None,
        };
        let name = req.name.clone();
        let q = Queue::new(self, req, owner, args, policy, persist);
        queues.insert(name, q.clone());
        Ok((q, 0, 0))
    }

    /// The settings queue `name` runs with: its own arguments and what policies apply.
    pub(super) fn queue_args(&self, name: &str, own: &FieldTable) -> Result<(QueueArgs, AppliedPolicy), AmqpError> {
        let effective = self.policies.load().effective_queue(&self.name, name, own);
        let args = QueueArgs::parse(&effective.arguments, name, &self.name)?;
        let policy = AppliedPolicy {
            policy: effective.policy,
            operator_policy: effective.operator_policy,
            definition: effective.definition,
        };
        Ok((args, policy))
    }

    fn check_queue_equivalent(&self, q: &Queue, req: &QueueDeclare) -> Result<(), AmqpError> {
        let flag = |arg: &str, received: bool, current: bool| {
            if received == current {
                return Ok(());
            }
            Err(AmqpError::precondition_failed(format!(
                "inequivalent arg '{arg}' for queue '{}' in vhost '{}': received '{received}' but current is '{current}'",
                q.name, self.name
            )))
        };
        if req.exclusive != q.exclusive_owner.is_some() {
            // RabbitMQ checks this before the other flags, and with its own code.
            return Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally \
                 declared on another connection or the exclusive property value does not match that of \
                 the original declaration.",
                q.name, self.name
            )));
        }
        flag("durable", req.durable, q.durable)?;
        flag("auto_delete", req.auto_delete, q.auto_delete)?;
        queue_args::check_equivalent(&q.arguments, &req.arguments, &q.name, &self.name)
    }

    /// queue.delete: returns the number of ready messages deleted. A missing queue is not an error.
    pub fn delete_queue(&self, name: &str, if_unused: bool, if_empty: bool, connection: u64) -> Result<u32, AmqpError> {
        let Some(q) = self.queue(name) else { return Ok(0) };
        q.check_access(connection)?;
        let (has_consumers, has_messages) = q.in_use();
        if if_unused && has_consumers {
            return Err(AmqpError::precondition_failed(format!("queue '{name}' in vhost '{}' in use", self.name)));
        }
        if if_empty && has_messages {
            return Err(AmqpError::precondition_failed(format!(
                "queue '{name}' in vhost '{}' is not empty",
                self.name
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Removes every queue and exchange (the vhost is being deleted), with their durable records.
    pub fn remove_all(&self) {
        for name in self.queue_names() {
            if let Some(q) = self.queue(&name) {
                self.remove_queue(&q);
            }
        }
        for exchange in self.exchanges() {
            if !exchange.is_default() {
                self.remove_exchange(&exchange);
            }
        }
    }

    /// Remove a queue: unbind it everywhere and cancel its consumers (broker-initiated basic.cancel).
    pub fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        {
            let mut queues = self.queues.write();
            match queues.get(&q.name) {
                Some(current) if Arc::ptr_eq(current, q) => {
                    if q.persists() {
                        let mut changes = vec![(defs::queue_key(&self.name, &q.name), None)];
                        changes.extend(q.dedup.iter().flat_map(|d| d.drop_all()));
                        self.submit(changes);
                    }
                    queues.remove(&q.name);
                }
                _ => return 0,
            }
        }
        let (consumers, dropped) = q.mark_deleted();
        self.remove_destination_everywhere(&Dest::Queue(q.clone()));
        for c in consumers {
            c.sink.cancelled_by_broker(&c);
        }
        dropped
    }

    pub fn purge_queue(&self, name: &str, connection: u64) -> Result<u32, AmqpError> {
        Ok(self.queue_for(name, connection)?.purge() as u32)
    }

    /// Cancel a consumer; an auto-delete queue that loses its last consumer is deleted.
    pub fn remove_consumer(&self, q: &Arc<Queue>, consumer: &Consumer) {
        if q.remove_consumer(consumer.owner, &consumer.tag).auto_delete_now {
            self.remove_queue(q);
        }
    }
}
