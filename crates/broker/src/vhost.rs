//! A virtual host: its exchanges and queues, and the AMQP operations on them (declare, bind,
//! delete, publish) with RabbitMQ's rules and error codes.

use crate::exchange::{Dest, Exchange};
use crate::route::{self, LazyHeaders};
use crate::{Consumer, Queue};
use amqp_codec::{FieldTable, ShortStr};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use warren_core::names;
use warren_core::queue_args::{self, QueueArgs};
use warren_core::routing::Binding;
use warren_core::{AmqpError, ExchangeDef, ExchangeKind, Message};

pub struct VHost {
    pub name: String,
    exchanges: RwLock<HashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<HashMap<ShortStr, Arc<Queue>>>,
}

/// What a client asked for in queue.declare (the name already resolved if server-named).
#[derive(Debug, Clone)]
pub struct QueueDeclare {
    pub name: ShortStr,
    /// The broker generated the name (`amq.gen-...`), so the reserved-prefix rule does not apply.
    pub server_named: bool,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// The result of routing one publish.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    pub queues: usize,
}

const DEFAULT_EXCHANGES: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

impl VHost {
    pub fn new(name: &str) -> VHost {
        let exchanges = DEFAULT_EXCHANGES
            .iter()
            .map(|(n, kind)| {
                let def = ExchangeDef {
                    name: ShortStr::from(*n),
                    kind: *kind,
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    arguments: FieldTable::new(),
                };
                (def.name.clone(), Arc::new(Exchange::new(def)))
            })
            .collect();
        VHost { name: name.to_string(), exchanges: RwLock::new(exchanges), queues: RwLock::new(HashMap::new()) }
    }

    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges.read().get(name).cloned()
    }

    pub fn queue(&self, name: &str) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    fn no_exchange(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    fn no_queue(&self, name: &str) -> AmqpError {
        AmqpError::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    fn existing_exchange(&self, name: &str) -> Result<Arc<Exchange>, AmqpError> {
        self.exchange(name).ok_or_else(|| self.no_exchange(name))
    }

    /// A queue the connection may use: 404 if missing, 405 if exclusive to another connection.
    pub fn queue_for(&self, name: &str, connection: u64) -> Result<Arc<Queue>, AmqpError> {
        let q = self.queue(name).ok_or_else(|| self.no_queue(name))?;
        q.check_access(connection)?;
        Ok(q)
    }

    // ---- exchanges -------------------------------------------------------------------------

    pub fn declare_exchange(&self, def: ExchangeDef, passive: bool, max_exchanges: usize) -> Result<(), AmqpError> {
        if passive {
            return self.existing_exchange(&def.name).map(|_| ());
        }
        let mut exchanges = self.exchanges.write();
        if let Some(existing) = exchanges.get(&def.name) {
            return existing.def.check_equivalent(&def, &self.name);
        }
        names::check_exchange_declare_name(&def.name)?;
        if exchanges.len() >= max_exchanges {
            return Err(AmqpError::not_allowed(format!(
                "cannot declare exchange '{}' in vhost '{}': exchange limit of {max_exchanges} is reached",
                def.name, self.name
            )));
        }
        exchanges.insert(def.name.clone(), Arc::new(Exchange::new(def)));
        Ok(())
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() || names::is_reserved(name) {
            return Err(AmqpError::access_refused(format!(
                "operation not permitted on the default exchange '{name}' in vhost '{}'",
                self.name
            )));
        }
        let Some(exchange) = self.exchange(name) else {
            return Ok(()); // deleting a missing exchange succeeds, as in RabbitMQ
        };
        if if_unused && !exchange.bindings.read().is_empty() {
            return Err(AmqpError::precondition_failed(format!("exchange '{name}' in vhost '{}' in use", self.name)));
        }
        self.exchanges.write().remove(name);
        self.remove_destination_everywhere(&Dest::Exchange(exchange));
        Ok(())
    }

    fn check_bindable_source(&self, exchange: &Exchange) -> Result<(), AmqpError> {
        if exchange.is_default() {
            return Err(AmqpError::access_refused(format!(
                "operation not permitted on the default exchange in vhost '{}'",
                self.name
            )));
        }
        Ok(())
    }

    pub fn bind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let exchange = self.existing_exchange(source)?;
        self.check_bindable_source(&exchange)?;
        if let Dest::Exchange(d) = &dest {
            if d.is_default() {
                return Err(AmqpError::access_refused("operation not permitted on the default exchange"));
            }
        }
        exchange.bindings.write().add(Binding { destination: dest, routing_key, arguments })?;
        Ok(())
    }

    pub fn unbind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<(), AmqpError> {
        let exchange = self.existing_exchange(source)?;
        self.check_bindable_source(&exchange)?;
        let now_empty = {
            let mut bindings = exchange.bindings.write();
            bindings.remove(&Binding { destination: dest, routing_key, arguments });
            bindings.is_empty()
        };
        if now_empty && exchange.def.auto_delete {
            self.auto_delete_exchange(&exchange);
        }
        Ok(())
    }

    /// The destination exchange for exchange.bind: 404 if missing.
    pub fn exchange_dest(&self, name: &str) -> Result<Dest, AmqpError> {
        self.existing_exchange(name).map(Dest::Exchange)
    }

    fn auto_delete_exchange(&self, exchange: &Arc<Exchange>) {
        let mut exchanges = self.exchanges.write();
        if exchanges.get(exchange.name()).is_some_and(|e| Arc::ptr_eq(e, exchange)) {
            exchanges.remove(exchange.name());
        }
        drop(exchanges);
        self.remove_destination_everywhere(&Dest::Exchange(exchange.clone()));
    }

    /// Remove every binding to `dest`; auto-delete exchanges left without bindings go too.
    fn remove_destination_everywhere(&self, dest: &Dest) {
        let mut emptied = Vec::new();
        for exchange in self.exchanges() {
            let mut bindings = exchange.bindings.write();
            if bindings.remove_destination(dest) > 0 && bindings.is_empty() && exchange.def.auto_delete {
                emptied.push(exchange.clone());
            }
        }
        for exchange in emptied {
            self.auto_delete_exchange(&exchange);
        }
    }

    // ---- queues ----------------------------------------------------------------------------

    /// queue.declare: returns the queue with its ready-message and consumer counts.
    pub fn declare_queue(
        &self,
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
        if let Some(q) = queues.get(&req.name).cloned() {
            drop(queues);
            q.check_access(connection)?;
            self.check_queue_equivalent(&q, &req)?;
            let (messages, consumers) = q.counts();
            return Ok((q, messages, consumers));
        }
        if !req.server_named {
            names::check_queue_declare_name(&req.name)?;
        }
        let args = QueueArgs::parse(&req.arguments, &req.name, &self.name)?;
        args.check_queue_type_flags(req.durable, req.exclusive, req.auto_delete, &req.name, &self.name)?;
        if queues.len() >= max_queues {
            return Err(AmqpError::not_allowed(format!(
                "cannot declare queue '{}' in vhost '{}': queue limit of {max_queues} is reached",
                req.name, self.name
            )));
        }
        let owner = req.exclusive.then_some(connection);
        let q = Arc::new(Queue::new(
            req.name.clone(),
            &self.name,
            req.durable,
            owner,
            req.auto_delete,
            req.arguments,
            args,
        ));
        queues.insert(req.name, q.clone());
        Ok((q, 0, 0))
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
        flag("durable", req.durable, q.durable)?;
        flag("exclusive", req.exclusive, q.exclusive_owner.is_some())?;
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

    /// Remove a queue: unbind it everywhere and cancel its consumers (broker-initiated basic.cancel).
    pub fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        {
            let mut queues = self.queues.write();
            match queues.get(&q.name) {
                Some(current) if Arc::ptr_eq(current, q) => {
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

    // ---- publish ---------------------------------------------------------------------------

    /// Route a message through `exchange` and enqueue it on every queue reached.
    pub fn publish(&self, exchange: &str, message: Arc<Message>) -> Result<Routed, AmqpError> {
        let ex = self.existing_exchange(exchange)?;
        if ex.def.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.name
            )));
        }
        let mut targets: Vec<Arc<Queue>> = Vec::new();
        let mut headers = LazyHeaders::new(&message);
        route::route(self, &ex, &message.routing_key, &mut headers, &mut targets);
        let extra_keys = headers.get().map(route::sender_selected_keys).unwrap_or_default();
        for key in &extra_keys {
            route::route(self, &ex, key, &mut headers, &mut targets);
        }
        drop(headers);
        let message = if extra_keys.is_empty() { message } else { strip_bcc(message) };
        let mut routed = Routed::default();
        for q in targets {
            if q.enqueue(message.clone()) {
                routed.queues += 1;
            }
        }
        Ok(routed)
    }
}

/// BCC routing keys must not reach consumers: re-encode the properties without the header.
fn strip_bcc(message: Arc<Message>) -> Arc<Message> {
    let Some(mut props) = message.decode_properties() else { return message };
    let Some(headers) = props.headers.as_mut() else { return message };
    if headers.remove("BCC").is_none() {
        return message;
    }
    let mut m = (*message).clone();
    m.properties = props.to_raw();
    Arc::new(m)
}
