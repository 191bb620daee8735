//! A virtual host: its exchanges and queues, and the AMQP operations on them (declare, bind,
//! delete, publish) with RabbitMQ's rules and error codes.

use crate::durable::defs::{self, Change, StoredQueue};
use crate::durable::{Durability, OnDurable};
use crate::exchange::{Dest, Exchange};
use crate::message_view::MessageView;
use crate::queue::Persist;
use crate::route::{self, LazyHeaders};
use crate::timers::Timers;
use crate::tracking::Tracker;
use crate::Queue;
use amqp_codec::{FieldTable, ShortStr};
use arc_swap::ArcSwap;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use warren_core::names;
use warren_core::policy::Policies;
use warren_core::routing::Binding;
use warren_core::{AmqpError, ExchangeDef, ExchangeKind, Message};

mod binding_transforms;
mod bindings;
mod contract_violations;
mod deduplicating;
mod delivering;
mod grouped;
mod policies;
mod queues;
mod settling;
mod splitting;
mod transforming;

pub struct VHost {
    pub name: String,
    // Fx, not SipHash: looked up by name on every publish, and names are not attacker-chosen
    // keys of a map an attacker can grow unboundedly (declarations need permissions and are
    // bounded).
    exchanges: RwLock<FxHashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<FxHashMap<ShortStr, Arc<Queue>>>,
    durability: Option<Arc<Durability>>,
    timers: Arc<Timers>,
    policies: Arc<ArcSwap<Policies>>,
    tracker: Arc<Tracker>,
    contracts: Arc<crate::contracts::ContractBook>,
    transforms: Arc<crate::transforms::TransformBook>,
    resource_limits: Arc<crate::resource_limits::LimitBook>,
    /// Set (under both maps' write locks) when the vhost is deleted: a declare that comes
    /// later, through a handle taken before, is refused instead of leaving an object behind.
    deleted: std::sync::atomic::AtomicBool,
}

/// What every vhost of a broker shares.
#[derive(Clone)]
pub struct Shared {
    pub timers: Arc<Timers>,
    /// Replaced whole when a policy changes (see `Broker::put_policy`).
    pub policies: Arc<ArcSwap<Policies>>,
    pub tracker: Arc<Tracker>,
    /// The broker's contracts, checked on every publish.
    pub contracts: Arc<crate::contracts::ContractBook>,
    /// The broker's transforms and their workers.
    pub transforms: Arc<crate::transforms::TransformBook>,
    /// Vhost limits (`max-queues` is checked here).
    pub resource_limits: Arc<crate::resource_limits::LimitBook>,
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
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Routed {
    pub queues: usize,
    pub confirm: Confirm,
    /// Some queue refused the message (full, with a reject overflow): a publisher in confirm
    /// mode gets a nack.
    pub rejected: bool,
    /// A queue that took the message and whose consumers are falling behind (the first, if
    /// several): its publisher may wait for them (see [`Queue::wait_for_consumers`]).
    pub consumers_behind: Option<Behind>,
    /// The exchange, or some target queue, had the message's deduplication key already: it
    /// is confirmed without being routed there (not unroutable, so never returned).
    pub deduplicated: bool,
    /// The message broke a contract: refused (`rejected` is set too, and it went nowhere) or
    /// dead-lettered (`queues` counts the dead-letter queues that took it).
    pub refusal: Option<Arc<crate::contracts::ContractRefusal>>,
}

/// A queue whose consumers are falling behind; equal by identity.
#[derive(Clone)]
pub struct Behind(pub Arc<Queue>);

impl PartialEq for Behind {
    fn eq(&self, other: &Behind) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Behind {}

impl std::fmt::Debug for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Behind({})", self.0.name)
    }
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
        let Shared { timers, policies, tracker, contracts, transforms, resource_limits } = shared;
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
            contracts,
            transforms,
            resource_limits,
            deleted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The broker's contracts, which this vhost's publishes are checked against.
    pub(crate) fn contracts(&self) -> &crate::contracts::ContractBook {
        &self.contracts
    }

    /// Marks the vhost deleted: from now on nothing can be declared in it.
    pub(crate) fn mark_deleted(&self) {
        let _exchanges = self.exchanges.write();
        let _queues = self.queues.write();
        self.deleted.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// 404 if the vhost was deleted (checked under the write lock of the map being changed).
    pub(crate) fn check_not_deleted(&self) -> Result<(), AmqpError> {
        if self.deleted.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(AmqpError::not_found(format!("vhost '{}' is deleted", self.name)));
        }
        Ok(())
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
        self.check_not_deleted()?;
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
        let dedup = warren_core::dedup::DedupSettings::from_arguments(&def.arguments).ok().flatten().map(|settings| {
            let home = (def.durable && self.durability.is_some())
                .then(|| crate::dedup::Home::Exchange { vhost: self.name.clone(), name: def.name.to_string() });
            crate::dedup::Deduplicator::new(settings, home)
        });
        let transform = def
            .arguments
            .get(crate::transforms::TRANSFORM_ARG)
            .and_then(amqp_codec::FieldValue::as_str)
            .map(|name| crate::exchange::TransformAt { name: name.to_owned(), vhost: Arc::downgrade(self) });
        let split = warren_core::split::Split::from_arguments(&def.arguments).ok().flatten();
        let exchange =
            Exchange::with_delayed(def, delayed).with_dedup(dedup).with_transform(transform).with_split(split);
        exchange.set_policy(self.policies.load().for_exchange(&self.name, exchange.name()).cloned());
        Arc::new(exchange)
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
                changes.extend(exchange.dedup.iter().flat_map(|d| d.drop_all()));
            }
            self.submit(changes);
            exchanges.remove(exchange.name());
        }
        if let Some(delayed) = &exchange.delayed {
            delayed.discard();
        }
        self.remove_destination_everywhere(&Dest::Exchange(exchange.clone()));
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
        let (args, policy) = self.queue_args(&name, &stored.arguments)?;
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
        let q = Queue::new(self, req, None, args, policy, persist);
        self.queues.write().insert(name, q.clone());
        Ok(q)
    }

    pub(crate) fn restore_binding(&self, source: &Exchange, dest: Dest, routing_key: ShortStr, arguments: FieldTable) {
        let Ok(dest) = dest.with_binding_arguments(&arguments) else { return };
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
        let message = match self.contracts.check(&self.name, exchange, message) {
            Ok(message) => message,
            Err(broken) => return Ok(self.contract_broken(&ex, *broken, on_durable)),
        };
        let taken = match self.exchange_dedup(&ex, &message) {
            Ok(taken) => taken,
            Err(duplicate) => return Ok(duplicate),
        };
        if ex.transform.is_some() || ex.split.is_some() {
            self.keys_taken_now(taken);
            return Ok(self.shape_then_route(&ex, message, on_durable));
        }
        if let Some(delayed) = &ex.delayed {
            if let Some(delay_ms) = crate::delayed::Delayed::delay_of(&message) {
                self.keys_taken_now(taken);
                return Ok(delayed.hold(&ex, message, delay_ms, on_durable));
            }
        }
        Ok(self.route_and_deliver_taking(&ex, message, on_durable, taken))
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
        self.route_and_deliver_taking(ex, message, on_durable, Vec::new())
    }

    /// [`VHost::route_and_deliver`] for a message whose exchange took its deduplication key.
    fn route_and_deliver_taking(
        &self,
        ex: &Arc<Exchange>,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
        taken: Vec<crate::dedup::Taken>,
    ) -> Routed {
        let item = self.targets_of(ex, message);
        if !item.transformed.is_empty() {
            self.keys_taken_now(taken);
            return self.deliver_through_transforms(ex, vec![item], on_durable);
        }
        self.deliver_taking(item.targets, item.message, on_durable, taken, Vec::new())
    }

    /// The queues `message` is routed to from `ex` (with its `CC`/`BCC` keys; `BCC` is
    /// removed from the message that goes there).
    pub(super) fn targets_of(&self, ex: &Arc<Exchange>, message: Arc<Message>) -> grouped::GroupItem {
        let mut reached = route::Reached::default();
        let mut headers = LazyHeaders::new(&message);
        let view = MessageView::new(&message);
        route::route(self, ex, &message.routing_key, &mut headers, &view, &mut reached);
        let extra_keys = headers.get().map(route::sender_selected_keys).unwrap_or_default();
        for key in &extra_keys {
            route::route(self, ex, key, &mut headers, &view, &mut reached);
        }
        drop((headers, view));
        let message = if extra_keys.is_empty() { message } else { strip_bcc(message) };
        grouped::GroupItem { message, targets: reached.queues, transformed: reached.transformed }
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
