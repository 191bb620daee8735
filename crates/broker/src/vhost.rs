//! A virtual host: its exchanges and queues, and the AMQP operations on them (declare, bind,
//! delete, publish) with RabbitMQ's rules and error codes.

use crate::durable::defs::{self, Change, DestKind, StoredBinding, StoredQueue};
use crate::durable::{Durability, Landing, LandingQueues, OnDurable};
use crate::exchange::{Dest, Exchange};
use crate::queue::{Enqueued, Persist};
use crate::route::{self, LazyHeaders};
use crate::timers::Timers;
use crate::tracking::Tracker;
use crate::{Consumer, Queue};
use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use warren_core::names;
use warren_core::policy::Policies;
use warren_core::queue_args::{self, QueueArgs};
use warren_core::routing::Binding;
use warren_core::{AmqpError, ExchangeDef, ExchangeKind, Message};

pub struct VHost {
    pub name: String,
    // Fx, not SipHash: looked up by name on every publish, and names are not attacker-chosen
    // keys of a map an attacker can grow unboundedly (declarations need permissions and are
    // bounded).
    exchanges: RwLock<FxHashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<FxHashMap<ShortStr, Arc<Queue>>>,
    durability: Option<Arc<Durability>>,
    timers: Arc<Timers>,
    policies: Arc<Policies>,
    tracker: Arc<Tracker>,
}

/// What every vhost of a broker shares.
#[derive(Clone)]
pub struct Shared {
    pub timers: Arc<Timers>,
    pub policies: Arc<Policies>,
    pub tracker: Arc<Tracker>,
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
    pub confirm: Confirm,
    /// Some queue refused the message (full, with a reject overflow): a publisher in confirm
    /// mode gets a nack.
    pub rejected: bool,
    /// Some queue that took the message has consumers that are falling behind.
    pub consumers_behind: bool,
}

/// When a publisher confirm for the message may be sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Now: the message is transient, or reached no durable queue.
    #[default]
    Now,
    /// Once the store has it on disk; the `OnDurable` callback says when.
    WhenDurable,
    /// Never: the store refused it (disk full) and no queue took it: nack.
    Refused,
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
    /// A vhost whose durable entities and persistent messages go to `durability` (if any), and
    /// whose queues keep time and schedule their deadlines with `timers`.
    pub fn new(name: &str, durability: Option<Arc<Durability>>, shared: Shared) -> VHost {
        let Shared { timers, policies, tracker } = shared;
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
                    delayed: false,
                };
                (def.name.clone(), Arc::new(Exchange::new(def)))
            })
            .collect();
        VHost {
            name: name.to_string(),
            exchanges: RwLock::new(exchanges),
            queues: RwLock::new(FxHashMap::default()),
            durability,
            timers,
            policies,
            tracker,
        }
    }

    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    pub fn timers(&self) -> &Arc<Timers> {
        &self.timers
    }

    pub fn durability(&self) -> Option<&Arc<Durability>> {
        self.durability.as_ref()
    }

    /// Queue definition changes for the writer; call under the lock ordering the change.
    fn submit(&self, changes: Vec<Change>) {
        if let Some(d) = &self.durability {
            if !changes.is_empty() {
                d.defs.submit(changes);
            }
        }
    }

    /// The stored form of a binding, if it is durable (both ends durable, as in RabbitMQ).
    fn binding_key(
        &self,
        source: &Exchange,
        dest: &Dest,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Option<Bytes> {
        self.durability.as_ref()?;
        if !source.def.durable || source.is_default() {
            return None;
        }
        let (dest_kind, dest) = match dest {
            Dest::Queue(q) if q.persists() => (DestKind::Queue, q.name.clone()),
            Dest::Exchange(e) if e.def.durable => (DestKind::Exchange, e.def.name.clone()),
            _ => return None,
        };
        let b = StoredBinding {
            source: source.def.name.clone(),
            dest_kind,
            dest,
            routing_key: routing_key.clone(),
            arguments: arguments.clone(),
        };
        Some(defs::binding_key(&self.name, &b))
    }

    /// Deletions of every stored binding of `exchange` (as source) whose destination `matches`.
    fn binding_deletions(&self, exchange: &Exchange, matches: impl Fn(&Dest) -> bool) -> Vec<Change> {
        if self.durability.is_none() || !exchange.def.durable {
            return Vec::new();
        }
        let bindings = exchange.bindings.read();
        bindings
            .list()
            .iter()
            .filter(|b| matches(&b.destination))
            .filter_map(|b| self.binding_key(exchange, &b.destination, &b.routing_key, &b.arguments))
            .map(|k| (k, None))
            .collect()
    }

    pub fn exchange(&self, name: &str) -> Option<Arc<Exchange>> {
        self.exchanges.read().get(name).cloned()
    }

    /// The names of the vhost's queues.
    pub fn queue_names(&self) -> Vec<String> {
        self.queues.read().keys().map(|k| k.to_string()).collect()
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

    pub fn declare_exchange(
        self: &Arc<Self>,
        def: ExchangeDef,
        passive: bool,
        max_exchanges: usize,
    ) -> Result<(), AmqpError> {
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
        let mut changes = Vec::new();
        let mut delay_store = None;
        if let (true, Some(d)) = (def.durable, &self.durability) {
            if def.delayed {
                let (id, counter) = d.allocate_queue_id();
                changes.push(counter);
                delay_store = Some((id, d.clone()));
            }
            let id = delay_store.as_ref().map(|(id, _)| *id);
            changes.push((defs::exchange_key(&self.name, &def.name), Some(defs::exchange_value(&def, id))));
        }
        self.submit(changes);
        let exchange = self.new_exchange(def, delay_store);
        exchanges.insert(exchange.def.name.clone(), exchange);
        Ok(())
    }

    /// An exchange of this vhost; a delayed one holds its waiting messages (stored under the
    /// store id given, if any).
    fn new_exchange(self: &Arc<Self>, def: ExchangeDef, delay_store: Option<(u64, Arc<Durability>)>) -> Arc<Exchange> {
        let delayed =
            def.delayed.then(|| crate::delayed::Delayed::new(delay_store, self.timers.clone(), Arc::downgrade(self)));
        Arc::new(Exchange::with_delayed(def, delayed))
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), AmqpError> {
        if name.is_empty() {
            return Err(AmqpError::access_refused("operation not permitted on the default exchange"));
        }
        if names::is_reserved(name) {
            return Err(AmqpError::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.name
            )));
        }
        let Some(exchange) = self.exchange(name) else {
            return Ok(()); // deleting a missing exchange succeeds, as in RabbitMQ
        };
        if if_unused && !exchange.bindings.read().is_empty() {
            return Err(AmqpError::precondition_failed(format!("exchange '{name}' in vhost '{}' in use", self.name)));
        }
        self.remove_exchange(&exchange);
        Ok(())
    }

    /// Removes `exchange` if it is still the one by its name, with its bindings both ways.
    fn remove_exchange(&self, exchange: &Arc<Exchange>) {
        {
            let mut exchanges = self.exchanges.write();
            if !exchanges.get(exchange.name()).is_some_and(|e| Arc::ptr_eq(e, exchange)) {
                return;
            }
            let mut changes = self.binding_deletions(exchange, |_| true);
            if exchange.def.durable {
                changes.push((defs::exchange_key(&self.name, exchange.name()), None));
            }
            self.submit(changes);
            exchanges.remove(exchange.name());
        }
        if let Some(delayed) = &exchange.delayed {
            delayed.discard();
        }
        self.remove_destination_everywhere(&Dest::Exchange(exchange.clone()));
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
        check_not_default_destination(&dest)?;
        let key = self.binding_key(&exchange, &dest, &routing_key, &arguments);
        let mut bindings = exchange.bindings.write();
        let added = bindings.add(Binding { destination: dest, routing_key, arguments })?;
        if let (true, Some(key)) = (added, key) {
            self.submit(vec![(key, Some(defs::binding_value()))]);
        }
        Ok(())
    }

    /// Removes a binding. Idempotent, as in RabbitMQ: a missing source or binding is no error.
    /// Only an existing binding to a queue exclusive to another connection is refused (405).
    pub fn unbind(
        &self,
        source: &str,
        dest: Dest,
        routing_key: ShortStr,
        arguments: FieldTable,
        connection: u64,
    ) -> Result<(), AmqpError> {
        check_not_default_destination(&dest)?;
        let Some(exchange) = self.exchange(source) else { return Ok(()) };
        self.check_bindable_source(&exchange)?;
        let key = self.binding_key(&exchange, &dest, &routing_key, &arguments);
        let binding = Binding { destination: dest, routing_key, arguments };
        let now_empty = {
            let mut bindings = exchange.bindings.write();
            if !bindings.contains(&binding) {
                return Ok(());
            }
            if let Dest::Queue(q) = &binding.destination {
                q.check_access(connection)?;
            }
            bindings.remove(&binding);
            if let Some(key) = key {
                self.submit(vec![(key, None)]);
            }
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
        self.remove_exchange(exchange);
    }

    /// Remove every binding to `dest`; auto-delete exchanges left without bindings go too.
    fn remove_destination_everywhere(&self, dest: &Dest) {
        let mut emptied = Vec::new();
        for exchange in self.exchanges() {
            let changes = self.binding_deletions(&exchange, |d| d == dest);
            let mut bindings = exchange.bindings.write();
            self.submit(changes);
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
        let args = self.queue_args(&req.name, &req.arguments)?;
        args.check_queue_type_flags(req.durable, req.exclusive, req.auto_delete, &req.name, &self.name)?;
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
        let q = Queue::new(self, req, owner, args, persist);
        queues.insert(name, q.clone());
        Ok((q, 0, 0))
    }

    /// The settings queue `name` runs with: its own arguments and what policies apply.
    fn queue_args(&self, name: &str, own: &FieldTable) -> Result<QueueArgs, AmqpError> {
        QueueArgs::parse(&self.policies.effective(&self.name, name, own), name, &self.name)
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
                        self.submit(vec![(defs::queue_key(&self.name, &q.name), None)]);
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

    // ---- restore at start (nothing is written back) -----------------------------------------

    pub(crate) fn restore_exchange(
        self: &Arc<Self>,
        def: ExchangeDef,
        delay_store: Option<(u64, Arc<Durability>)>,
    ) -> Arc<Exchange> {
        let exchange = self.new_exchange(def, delay_store);
        self.exchanges.write().insert(exchange.def.name.clone(), exchange.clone());
        exchange
    }

    pub(crate) fn restore_queue(
        self: &Arc<Self>,
        name: ShortStr,
        stored: &StoredQueue,
        durability: Arc<Durability>,
    ) -> Result<Arc<Queue>, AmqpError> {
        let args = self.queue_args(&name, &stored.arguments)?;
        let persist = Some(Persist { id: stored.id, durability, durable: true });
        let req = QueueDeclare {
            name: name.clone(),
            server_named: false,
            passive: false,
            durable: true,
            exclusive: false,
            auto_delete: stored.auto_delete,
            arguments: stored.arguments.clone(),
        };
        let q = Queue::new(self, req, None, args, persist);
        self.queues.write().insert(name, q.clone());
        Ok(q)
    }

    pub(crate) fn restore_binding(&self, source: &Exchange, dest: Dest, routing_key: ShortStr, arguments: FieldTable) {
        let _ = source.bindings.write().add(Binding { destination: dest, routing_key, arguments });
    }

    // ---- publish ---------------------------------------------------------------------------

    /// Route a message through `exchange` and enqueue it on every queue reached. A persistent
    /// message reaching durable queues is appended to the store first; `on_durable` is called
    /// once it is on disk (then `Routed::confirm` is `WhenDurable`).
    pub fn publish(
        &self,
        exchange: &str,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Result<Routed, AmqpError> {
        let ex = self.existing_exchange(exchange)?;
        if ex.def.internal {
            return Err(AmqpError::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.name
            )));
        }
        let message = if message.track == 0 { self.tracking_headers(&ex, message) } else { message };
        if let Some(delayed) = &ex.delayed {
            if let Some(delay_ms) = crate::delayed::Delayed::delay_of(&message) {
                return Ok(delayed.hold(&ex, message, delay_ms, on_durable));
            }
        }
        Ok(self.route_and_deliver(&ex, message, on_durable))
    }

    /// The `x-warren-*` headers of an untracked (AMQP) publish: one that opted in (header
    /// `x-warren-track`, or an exchange with that argument) starts being tracked, its id in
    /// `x-warren-id` and its `message_id` a way to find it; a publisher's own `x-warren-id` is
    /// removed, as only the broker sets it. A message that names neither is not decoded.
    fn tracking_headers(&self, ex: &Exchange, message: Arc<Message>) -> Arc<Message> {
        if !ex.track && !crate::tracking::mentions_warren_headers(&message.properties) {
            return message;
        }
        let Some(mut props) = message.decode_properties() else { return message };
        let headers = props.headers.get_or_insert_with(Default::default);
        let forged = headers.remove(crate::tracking::ID_HEADER).is_some();
        let opts_in = ex.track || headers.get(crate::tracking::TRACK_HEADER).is_some_and(crate::tracking::truthy);
        if !opts_in {
            return if forged { Arc::new(message.with_properties(&props)) } else { message };
        }
        let lookup = props.message_id.as_ref().map(|id| (self.name.as_str(), id.as_str()));
        let track =
            self.tracker.start(message.timestamp_ms.max(self.timers.now_ms()), lookup, crate::tracking::Origin::Amqp);
        props.headers.get_or_insert_with(Default::default).insert(
            ShortStr::from_static(crate::tracking::ID_HEADER),
            amqp_codec::FieldValue::LongStr(crate::tracking::id_text(track).into_bytes().into()),
        );
        Arc::new(message.with_properties(&props).tracked(track))
    }

    /// Routes `message` from `ex` (with its `CC`/`BCC` keys) and enqueues it where it lands.
    pub(crate) fn route_and_deliver(
        &self,
        ex: &Arc<Exchange>,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let mut targets: Vec<Arc<Queue>> = Vec::new();
        let mut headers = LazyHeaders::new(&message);
        route::route(self, ex, &message.routing_key, &mut headers, &mut targets);
        let extra_keys = headers.get().map(route::sender_selected_keys).unwrap_or_default();
        for key in &extra_keys {
            route::route(self, ex, key, &mut headers, &mut targets);
        }
        drop(headers);
        let message = if extra_keys.is_empty() { message } else { strip_bcc(message) };
        self.deliver(targets, message, on_durable)
    }

    /// Enqueues a routed message on each of `targets`, appending it to the store first if it
    /// is persistent and some of them are durable (see [`VHost::publish`]).
    pub(crate) fn deliver(
        &self,
        targets: Vec<Arc<Queue>>,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let mut routed = Routed::default();
        let landing = match &self.durability {
            Some(d) if amqp_codec::raw_properties::delivery_mode(&message.properties) == Some(2) => {
                match persist(d, &targets, &message, on_durable) {
                    Persisted::Nowhere => None,
                    // All or nothing: a refused message is enqueued nowhere.
                    Persisted::Refused => {
                        self.tracker.not_stored(message.track, self.timers.now_ms());
                        return Routed { queues: 0, confirm: Confirm::Refused, ..Routed::default() };
                    }
                    Persisted::Appended(id, landing) => {
                        routed.confirm = Confirm::WhenDurable;
                        Some((id, landing))
                    }
                }
            }
            _ => None,
        };
        let stored = landing.as_ref().map(|(id, _)| *id);
        if message.track != 0 {
            // Before enqueueing: a consumer may ack a copy before this function returns.
            let names = targets.iter().map(|q| q.name.to_string()).collect();
            self.tracker.routed(message.track, self.timers.now_ms(), &message.exchange, names);
        }
        for q in targets {
            let stored = if q.persists() { stored } else { None };
            match q.enqueue(message.clone(), stored) {
                Enqueued::Accepted => routed.queues += 1,
                Enqueued::AcceptedBehind => {
                    routed.queues += 1;
                    routed.consumers_behind = true;
                }
                Enqueued::Rejected => {
                    routed.rejected = true;
                    self.tracker.refused(message.track, self.timers.now_ms(), &q.name);
                }
                Enqueued::Gone => self.tracker.gone(message.track, &q.name),
            }
        }
        if let Some((_, landing)) = landing {
            landing.enqueued();
        }
        routed
    }
}

/// BCC routing keys must not reach consumers: re-encode the properties without the header.
fn strip_bcc(message: Arc<Message>) -> Arc<Message> {
    let Some(mut props) = message.decode_properties() else { return message };
    let Some(headers) = props.headers.as_mut() else { return message };
    if headers.remove("BCC").is_none() {
        return message;
    }
    Arc::new(message.with_properties(&props))
}

/// What happened to a persistent message on its way to the store.
enum Persisted {
    /// No durable queue among the targets: nothing to write.
    Nowhere,
    /// The store refused it (disk full or failed).
    Refused,
    /// Appended under this id; the landing settles a failed write.
    Appended(u64, Arc<Landing>),
}

/// Appends a persistent message for the durable queues among `targets`.
fn persist(d: &Durability, targets: &[Arc<Queue>], message: &Message, on_durable: Option<OnDurable>) -> Persisted {
    let durable: LandingQueues = targets.iter().filter(|q| q.persists()).cloned().collect();
    if durable.is_empty() {
        return Persisted::Nowhere;
    }
    let ids: smallvec::SmallVec<[u64; 4]> = durable.iter().filter_map(|q| q.durable_store_id()).collect();
    let landing = Landing::new(durable);
    let for_callback = landing.clone();
    let appended = d.append(&ids, message, move |id| {
        for_callback.set_id(id);
        move |ok| {
            if !ok {
                for_callback.failed();
            }
            if let Some(f) = on_durable {
                f(ok);
            }
        }
    });
    match appended {
        Some(id) => Persisted::Appended(id, landing),
        None => Persisted::Refused,
    }
}

fn check_not_default_destination(dest: &Dest) -> Result<(), AmqpError> {
    match dest {
        Dest::Exchange(d) if d.is_default() => {
            Err(AmqpError::access_refused("operation not permitted on the default exchange"))
        }
        _ => Ok(()),
    }
}
