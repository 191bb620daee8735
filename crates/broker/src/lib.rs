//! Warren's runtime: vhosts holding exchanges and queues, consumers and dispatch, users, and the
//! cheap-to-clone [`Broker`] handle that every transport (AMQP today, HTTP later) calls.

pub mod admission;
pub mod aggregators;
pub mod alarms;
pub mod auth;
pub mod config;
pub mod consumer;
pub mod contracts;
pub mod dedup;
pub mod definitions;
pub mod delayed;
pub mod durable;
pub mod exchange;
pub mod login_failures;
pub mod message_view;
pub mod moving;
pub mod owner_only;
pub mod permissions;
mod policies;
pub mod queue;
pub mod registry;
pub mod reply_to;
mod republish;
pub mod resource_limits;
pub mod route;
pub mod sessions;
pub mod stats;
pub mod timers;
pub mod tracking;
mod tracking_journal;
pub mod transforms;
pub mod vhost;

pub use auth::{User, Users};
pub use config::{
    compile_policies, configured_permissions, BrokerConfig, Limits, PermissionConfig, PolicyConfig, UserConfig,
};
pub use consumer::{Consumer, ConsumerSink, Offer, Take};
pub use durable::{Durability, OnDurable};
pub use exchange::{Dest, Exchange};
pub use queue::{Enqueued, Queue};
pub use timers::{ClockKind, Tick, Timers};
pub use vhost::{Behind, Confirm, QueueDeclare, Routed, VHost};
use warren_core::{AmqpError, Message};

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The broker: shared state behind one `Arc`, cloned into every connection.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<BrokerInner>,
}

struct BrokerInner {
    config: BrokerConfig,
    users: Users,
    sessions: sessions::Sessions,
    permissions: permissions::Permissions,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    reply_to: reply_to::ReplyToRegistry,
    next_connection_id: AtomicU64,
    open_connections: AtomicUsize,
    durability: Option<Arc<Durability>>,
    timers: Arc<Timers>,
    tracker: Arc<tracking::Tracker>,
    registry: registry::Registry,
    /// Held while policies change, so that concurrent changes neither lose one another nor
    /// reach the definitions log in another order than they were applied.
    policy_changes: parking_lot::Mutex<()>,
    /// Message counts of the HTTP transport (publishes, pulls, pushes), which has no channels.
    http_counters: stats::MessageCounters,
    http_stats: stats::HttpStats,
    /// Shared with every vhost, whose publishes check them (see `contracts.rs`).
    contracts: Arc<contracts::ContractBook>,
    /// Transforms and their worker pool, shared with every vhost.
    transforms: Arc<transforms::TransformBook>,
    aggregators: aggregators::AggregatorBook,
    /// Resource alarms (memory, disk): raised, publishers are blocked.
    alarms: Arc<alarms::Alarms>,
    /// Vhost and user limits, and the connections and channels counted against them.
    resource_limits: Arc<resource_limits::LimitBook>,
    /// Connection rates by address and handshakes in progress.
    admission: admission::Admission,
    started_at_ms: u64,
    /// What every vhost shares (vhosts are also created at run time).
    shared: vhost::Shared,
}

impl Broker {
    /// A broker that keeps everything in memory.
    pub fn new(config: BrokerConfig) -> Broker {
        Broker::with_durability(config, None)
    }

    /// A broker whose durable entities and persistent messages go to `durability` (restore
    /// what it recovered with [`durable::restore`] before serving).
    pub fn with_durability(config: BrokerConfig, durability: Option<Arc<Durability>>) -> Broker {
        let users = Users::from_config(&config.users);
        let permissions = permissions::Permissions::default();
        // Config::validate refuses bad patterns before a broker is built.
        for (vhost, user, permission) in configured_permissions(&config.users, &config.vhosts).unwrap_or_default() {
            permissions.set(&vhost, &user, permission);
        }
        let timers = Timers::new(config.clock);
        let policies =
            Arc::new(arc_swap::ArcSwap::from_pointee(compile_policies(&config.policies).unwrap_or_else(|e| {
                // Config::validate refuses these before a broker is built; never half-apply them.
                tracing::error!(error = %e, "invalid policies; none applied");
                Default::default()
            })));
        let tracker = match &config.tracking_journal {
            Some(path) => tracking::Tracker::open(config.tracking, path.clone(), timers.now_ms()).unwrap_or_else(|e| {
                tracing::error!(error = %e, path = %path.display(), "cannot open the tracking journal; tracking in memory");
                tracking::Tracker::new(config.tracking)
            }),
            None => tracking::Tracker::new(config.tracking),
        };
        let contracts = Arc::new(contracts::ContractBook::default());
        let pool = config.transform_worker.as_ref().map(|(command, args)| {
            warren_transform::Pool::new(warren_transform::PoolOptions {
                command: command.clone(),
                args: args.clone(),
                workers: config.transforms.workers,
                max_waiting: config.transforms.max_waiting,
                memory_limit_bytes: Some(config.transforms.worker_memory_bytes),
            })
        });
        let transforms = Arc::new(transforms::TransformBook::new(config.transforms, pool));
        let resource_limits = Arc::new(resource_limits::LimitBook::default());
        let shared = vhost::Shared {
            resource_limits: resource_limits.clone(),
            timers: timers.clone(),
            policies: policies.clone(),
            tracker: tracker.clone(),
            contracts: contracts.clone(),
            transforms: transforms.clone(),
        };
        let alarms = Arc::new(alarms::Alarms::new(&config.alarms, config.data_dir.clone()));
        let mut vhosts = HashMap::new();
        for name in config.vhosts.iter() {
            vhosts.insert(name.clone(), Arc::new(VHost::new(name, durability.clone(), shared.clone())));
        }
        let admission = admission::Admission::new(
            config.limits.connection_rate_per_address,
            config.limits.max_unauthenticated_connections,
        );
        Broker {
            inner: Arc::new(BrokerInner {
                users,
                sessions: sessions::Sessions::default(),
                permissions,
                vhosts: RwLock::new(vhosts),
                reply_to: reply_to::ReplyToRegistry::default(),
                next_connection_id: AtomicU64::new(1),
                open_connections: AtomicUsize::new(0),
                durability,
                started_at_ms: timers.now_ms(),
                timers,
                tracker,
                config,
                registry: registry::Registry::default(),
                policy_changes: parking_lot::Mutex::new(()),
                http_counters: stats::MessageCounters::default(),
                http_stats: stats::HttpStats::default(),
                contracts,
                transforms,
                aggregators: Default::default(),
                alarms,
                resource_limits,
                admission,
                shared,
            }),
        }
    }

    /// Connection rates by source address and handshakes in progress (AMQP and HTTP).
    pub fn admission(&self) -> &admission::Admission {
        &self.inner.admission
    }

    /// Vhost and user limits, and what is counted against them.
    pub fn resource_limits(&self) -> &resource_limits::LimitBook {
        &self.inner.resource_limits
    }

    /// The resource alarms; run [`alarms::Alarms::monitor`] on the runtime for them to be sampled.
    pub fn alarms(&self) -> &Arc<alarms::Alarms> {
        &self.inner.alarms
    }

    /// The broker's clock and timers; run [`Timers::run`] on the runtime for deadlines to fire.
    pub fn timers(&self) -> &Arc<Timers> {
        &self.inner.timers
    }

    /// The outcomes of tracked messages.
    pub fn tracker(&self) -> &Arc<tracking::Tracker> {
        &self.inner.tracker
    }

    /// Now, by the broker's clock (ms since the Unix epoch).
    pub fn now_ms(&self) -> u64 {
        self.inner.timers.now_ms()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    pub fn users(&self) -> &Users {
        &self.inner.users
    }

    /// Logged-in browser sessions (the web console).
    pub fn sessions(&self) -> &sessions::Sessions {
        &self.inner.sessions
    }

    /// The user of the open browser session a request's `Cookie` header names, if `csrf` (the
    /// request's anti-forgery header) is the session's token and the user has not changed since
    /// the login.
    pub fn session_user(&self, cookie_header: Option<&str>, csrf: Option<&str>) -> Option<Arc<auth::User>> {
        let users = &self.inner.users;
        sessions::tokens_in_cookies(cookie_header?)
            .find_map(|token| self.inner.sessions.user(token, csrf, |name| users.get(name)))
    }

    /// Who may configure, write and read what, per vhost.
    pub fn permissions(&self) -> &permissions::Permissions {
        &self.inner.permissions
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.inner.vhosts.read().get(name).cloned()
    }

    /// Every vhost, by name.
    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        let mut all: Vec<_> = self.inner.vhosts.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The connections every transport registered.
    pub fn registry(&self) -> &registry::Registry {
        &self.inner.registry
    }

    /// Message counts of the HTTP transport (several writers: count with `add_shared`).
    pub fn http_counters(&self) -> &stats::MessageCounters {
        &self.inner.http_counters
    }

    /// The HTTP transport's push and callback counts.
    pub fn http_stats(&self) -> &stats::HttpStats {
        &self.inner.http_stats
    }

    /// When this broker started (ms since the Unix epoch, by its clock).
    pub fn started_at_ms(&self) -> u64 {
        self.inner.started_at_ms
    }

    pub fn durability(&self) -> Option<&Arc<Durability>> {
        self.inner.durability.as_ref()
    }

    pub fn reply_to(&self) -> &reply_to::ReplyToRegistry {
        &self.inner.reply_to
    }

    /// Admit a new connection if under the connection limit; the guard releases the slot on drop.
    pub fn admit_connection(&self) -> Option<ConnectionSlot> {
        let max = self.inner.config.limits.max_connections;
        let previous = self.inner.open_connections.fetch_add(1, Ordering::AcqRel);
        if previous >= max {
            self.inner.open_connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let id = self.inner.next_connection_id.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot { broker: self.clone(), id })
    }

    /// Publish through `exchange` of `vhost`; the default exchange also serves direct reply-to
    /// addresses. Returns how many queues (or reply consumers) took the message.
    pub fn publish(
        &self,
        vhost: &VHost,
        exchange: &str,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Result<Routed, AmqpError> {
        if exchange.is_empty() {
            if let Some(delivered) = self.inner.reply_to.deliver(&message.routing_key, &message) {
                return Ok(Routed { queues: delivered as usize, ..Routed::default() });
            }
            if let Some(id) = message.routing_key.strip_prefix(tracking::REPLY_PREFIX) {
                // A reply to a tracked message whose publisher (over HTTP) awaits it.
                let taken =
                    tracking::parse_id(id).is_some_and(|id| self.inner.tracker.replied(id, self.now_ms(), &message));
                return Ok(Routed { queues: taken as usize, ..Routed::default() });
            }
        }
        vhost.publish(exchange, message, on_durable)
    }

    pub fn open_connections(&self) -> usize {
        self.inner.open_connections.load(Ordering::Acquire)
    }
}

/// One admitted connection; holds its id, and frees its slot in the connection limit (and its
/// entry in the registry) when dropped.
pub struct ConnectionSlot {
    broker: Broker,
    pub id: u64,
}

impl ConnectionSlot {
    /// Lists the connection (once its handshake told who it is) until the slot is dropped.
    pub fn register(&self, meta: registry::ConnectionMeta) -> Arc<registry::ConnectionEntry> {
        debug_assert_eq!(meta.id, self.id);
        self.broker.inner.registry.register(meta)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.broker.inner.registry.unregister(self.id);
        self.broker.inner.open_connections.fetch_sub(1, Ordering::AcqRel);
    }
}
