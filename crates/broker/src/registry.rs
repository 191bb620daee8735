//! What is connected: every transport registers its connections here, with a view of their
//! channels, so that the management API can list them and close one with a reason.

use crate::stats::Totals;
use amqp_codec::FieldTable;
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// What a connection told us when it opened; fixed for its life.
#[derive(Debug, Clone)]
pub struct ConnectionMeta {
    pub id: u64,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    /// `AMQP 0-9-1`, or another transport's name.
    pub protocol: &'static str,
    /// Over TLS.
    pub tls: bool,
    pub auth_mechanism: String,
    pub client_properties: FieldTable,
    pub connected_at_ms: u64,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat_s: u16,
}

impl ConnectionMeta {
    /// RabbitMQ's name for a connection: `peer -> local`.
    pub fn name(&self) -> String {
        format!("{} -> {}", self.peer, self.local)
    }
}

/// One channel as the management API shows it.
#[derive(Debug, Clone, Default)]
pub struct ChannelInfo {
    pub number: u16,
    pub confirm: bool,
    pub transactional: bool,
    pub prefetch_count: u16,
    pub global_prefetch_count: u16,
    pub consumer_count: usize,
    pub messages_unacknowledged: usize,
}

/// Implemented by a transport's channel so its state can be read without its task.
pub trait ChannelView: Send + Sync {
    fn info(&self) -> ChannelInfo;
    /// The channel's message counters now.
    fn counters(&self) -> Totals;
}

/// Counters a connection keeps as it reads and writes; read by the management API.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub recv_oct: AtomicU64,
    pub recv_cnt: AtomicU64,
    pub send_oct: AtomicU64,
    pub send_cnt: AtomicU64,
}

/// A registered connection.
pub struct ConnectionEntry {
    pub meta: ConnectionMeta,
    /// Shared with the transport's reader and writer, which count what they move.
    pub stats: Arc<ConnectionStats>,
    channels: Mutex<BTreeMap<u16, Arc<dyn ChannelView>>>,
    close_reason: Mutex<Option<String>>,
    close: Notify,
    /// The registry's counts of closed channels (see [`Registry::totals`]).
    departed: Arc<RwLock<Totals>>,
    /// A resource alarm blocks it (it published): it is not read.
    pub blocked: std::sync::atomic::AtomicBool,
    /// Flow control holds it: it published into a queue whose consumers are behind.
    pub flow: std::sync::atomic::AtomicBool,
}

impl ConnectionEntry {
    pub fn add_channel(&self, number: u16, view: Arc<dyn ChannelView>) {
        self.channels.lock().insert(number, view);
    }

    /// A channel closed: its counts move to the registry's totals in the same step, so that
    /// a total never goes back.
    pub fn remove_channel(&self, number: u16) {
        let mut departed = self.departed.write();
        if let Some(view) = self.channels.lock().remove(&number) {
            departed.add(&view.counters());
        }
    }

    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.channels.lock().values().map(|c| c.info()).collect()
    }

    /// Each channel's state and counters.
    pub fn channels_with_counters(&self) -> Vec<(ChannelInfo, Totals)> {
        self.channels.lock().values().map(|c| (c.info(), c.counters())).collect()
    }

    pub fn channel_count(&self) -> usize {
        self.channels.lock().len()
    }

    /// Asks the connection to close with `reason` (it answers at its next turn).
    pub fn request_close(&self, reason: String) {
        *self.close_reason.lock() = Some(reason);
        self.close.notify_one();
    }

    /// Resolves when someone asked this connection to close; returns the reason.
    pub async fn close_requested(&self) -> String {
        loop {
            if let Some(reason) = self.close_reason.lock().clone() {
                return reason;
            }
            self.close.notified().await;
        }
    }
}

/// Every open connection, by id, and how many opened and closed since the start (for
/// Prometheus' `_total` counters).
#[derive(Default)]
pub struct Registry {
    connections: Mutex<BTreeMap<u64, Arc<ConnectionEntry>>>,
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    /// The counts of channels that closed. Written while a channel leaves, read while totals
    /// are summed: lock order `departed`, then `connections`, then a connection's channels.
    departed: Arc<RwLock<Totals>>,
}

impl Registry {
    pub(crate) fn register(&self, meta: ConnectionMeta) -> Arc<ConnectionEntry> {
        let entry = Arc::new(ConnectionEntry {
            meta,
            stats: Arc::default(),
            channels: Mutex::new(BTreeMap::new()),
            close_reason: Mutex::new(None),
            close: Notify::new(),
            departed: self.departed.clone(),
            blocked: Default::default(),
            flow: Default::default(),
        });
        self.connections.lock().insert(entry.meta.id, entry.clone());
        count(&self.opened, 1);
        entry
    }

    pub(crate) fn unregister(&self, id: u64) {
        let mut departed = self.departed.write();
        if let Some(entry) = self.connections.lock().remove(&id) {
            for (_, view) in std::mem::take(&mut *entry.channels.lock()) {
                departed.add(&view.counters());
            }
            count(&self.closed, 1);
        }
    }

    /// Every message count of every channel since the start, open or closed: monotonic.
    pub fn totals(&self) -> Totals {
        let departed = self.departed.read();
        let mut totals = *departed;
        for c in self.connections.lock().values() {
            for view in c.channels.lock().values() {
                totals.add(&view.counters());
            }
        }
        totals
    }

    /// The open connections, oldest first.
    pub fn connections(&self) -> Vec<Arc<ConnectionEntry>> {
        self.connections.lock().values().cloned().collect()
    }

    pub fn connection(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        self.connections.lock().get(&id).cloned()
    }

    /// The connection RabbitMQ would call `name` (`peer -> local`).
    pub fn by_name(&self, name: &str) -> Option<Arc<ConnectionEntry>> {
        self.connections.lock().values().find(|c| c.meta.name() == name).cloned()
    }
}

/// Adds `n` to a counter (relaxed: the counters are statistics).
pub fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
