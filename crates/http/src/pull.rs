//! HTTP pull consumers: receive up to N messages of a queue under a lease (a visibility
//! timeout), long-polling while it is empty (woken by the queue), then ack, nack (requeue or dead-letter) or extend
//! the lease of each by its receipt. A lease that runs out returns its message to the queue,
//! marked redelivered. Leases are bounded in number and length.

use crate::auth::authorize_for;
use crate::message_json::MessageJson;
use crate::{Api, ApiError};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use warren_broker::permissions::{Access, Resource};
use warren_broker::stats::Counted;
use warren_broker::tracking::id_text;
use warren_broker::{Broker, Queue};
use warren_core::filter::Filter;

/// Messages one receive may return.
const MAX_BATCH: usize = 100;
/// The longest lease.
const MAX_LEASE_MS: u64 = 12 * 60 * 60 * 1000;
/// Leases open at once, over all queues.
const MAX_LEASES: usize = 100_000;

struct Lease {
    queue: Arc<Queue>,
    seq: u64,
    vhost: String,
    until: Instant,
}

/// Open leases by receipt, and the task that returns expired ones.
#[derive(Default)]
pub struct Leases {
    by_receipt: Mutex<HashMap<u64, Lease>>,
}

impl Leases {
    /// Returns the messages of leases that ran out to their queues (called by a timer task).
    pub fn expire(&self) {
        let now = Instant::now();
        let expired: Vec<Lease> = {
            let mut leases = self.by_receipt.lock();
            let gone: Vec<u64> = leases.iter().filter(|(_, l)| l.until <= now).map(|(r, _)| *r).collect();
            gone.into_iter().filter_map(|r| leases.remove(&r)).collect()
        };
        for lease in expired {
            lease.queue.requeue([lease.seq]);
        }
    }

    /// Starts the task that expires leases.
    pub fn start_expiry(self: &Arc<Self>) {
        let leases = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                match leases.upgrade() {
                    Some(l) => l.expire(),
                    None => return,
                }
            }
        });
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiveQuery {
    #[serde(default = "one")]
    max: usize,
    #[serde(default = "thirty_seconds")]
    lease_ms: u64,
    #[serde(default)]
    wait: u64,
    /// Only messages this content filter admits (`docs/filters.md`); the others stay queued.
    filter: Option<String>,
}

/// Most messages a filtered receive looks at per try.
const MAX_FILTER_SCAN: usize = 10_000;

fn one() -> usize {
    1
}

fn thirty_seconds() -> u64 {
    30_000
}

/// One received message and the receipt that settles it.
#[derive(Serialize)]
pub struct Received {
    receipt: String,
    #[serde(flatten)]
    message: MessageJson,
}

pub(crate) fn queue_of(broker: &Broker, vhost: &str, name: &str) -> Result<Arc<Queue>, ApiError> {
    let v = broker.vhost(vhost).ok_or_else(|| ApiError::not_found(format!("no vhost '{vhost}'")))?;
    let q = v.queue(name).ok_or_else(|| ApiError::not_found(format!("no queue '{name}' in vhost '{vhost}'")))?;
    if q.exclusive_owner.is_some() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("queue '{name}' is exclusive to an AMQP connection")));
    }
    Ok(q)
}

/// `POST /api/vhosts/{vhost}/queues/{queue}/receive?max=N&lease_ms=L&wait=S`
pub async fn receive(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost, queue)): Path<(String, String)>,
    Query(query): Query<ReceiveQuery>,
    headers: HeaderMap,
) -> Result<Json<Vec<Received>>, ApiError> {
    authorize_for(&api.broker, &headers, peer, &vhost, Access::Read, Resource::Queue, &queue)?;
    if query.max == 0 || query.max > MAX_BATCH {
        return Err(ApiError::bad_request(format!("max must be between 1 and {MAX_BATCH}")));
    }
    if query.lease_ms == 0 || query.lease_ms > MAX_LEASE_MS {
        return Err(ApiError::bad_request(format!("lease_ms must be between 1 and {MAX_LEASE_MS}")));
    }
    let filter = match &query.filter {
        Some(text) => Some(Filter::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?),
        None => None,
    };
    let q = queue_of(&api.broker, &vhost, &queue)?;
    let deadline = Instant::now() + crate::wait_of(query.wait, api.settings.max_wait)?;
    let poll = q.long_poll();
    loop {
        let ready = poll.ready();
        let mut got = Vec::new();
        while got.len() < query.max {
            if api.leases.by_receipt.lock().len() >= MAX_LEASES {
                if got.is_empty() {
                    return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many open leases"));
                }
                break;
            }
            let entry = match &filter {
                None => q.get(false).map(|(entry, _)| entry),
                Some(f) => q.get_matching(1, MAX_FILTER_SCAN, f).pop(),
            };
            let Some(entry) = entry else { break };
            api.broker.http_counters().add_shared(Counted::Get, 1);
            if entry.redelivered {
                api.broker.http_counters().add_shared(Counted::Redeliver, 1);
            }
            let receipt = loop {
                let r = rand_receipt();
                if !api.leases.by_receipt.lock().contains_key(&r) {
                    break r;
                }
            };
            let until = Instant::now() + Duration::from_millis(query.lease_ms);
            let lease = Lease { queue: q.clone(), seq: entry.seq, vhost: vhost.clone(), until };
            api.leases.by_receipt.lock().insert(receipt, lease);
            got.push(Received { receipt: id_text(receipt), message: MessageJson::of(&entry) });
        }
        if !got.is_empty() || Instant::now() >= deadline {
            return Ok(Json(got));
        }
        tokio::select! {
            _ = ready => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn rand_receipt() -> u64 {
    loop {
        let r = rand::random::<u64>();
        if r != 0 {
            return r;
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleQuery {
    #[serde(default)]
    requeue: bool,
    lease_ms: Option<u64>,
}

/// `POST /api/vhosts/{vhost}/queues/{queue}/messages/{receipt}/{ack|nack|extend}`
pub async fn settle(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost, queue, receipt, action)): Path<(String, String, String, String)>,
    Query(query): Query<SettleQuery>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    authorize_for(&api.broker, &headers, peer, &vhost, Access::Read, Resource::Queue, &queue)?;
    let unknown = || ApiError::not_found(format!("no open lease '{receipt}' (settled, or its lease ran out)"));
    let key = warren_broker::tracking::parse_id(&receipt).ok_or_else(unknown)?;
    let mut leases = api.leases.by_receipt.lock();
    let lease =
        leases.get_mut(&key).filter(|l| l.vhost == vhost && l.queue.name.as_str() == queue).ok_or_else(unknown)?;
    match action.as_str() {
        "extend" => {
            let ms = query.lease_ms.unwrap_or(30_000);
            if ms == 0 || ms > MAX_LEASE_MS {
                return Err(ApiError::bad_request(format!("lease_ms must be between 1 and {MAX_LEASE_MS}")));
            }
            lease.until = Instant::now() + Duration::from_millis(ms);
            Ok(StatusCode::NO_CONTENT)
        }
        "ack" | "nack" => {
            let lease = leases.remove(&key).expect("found above");
            drop(leases);
            match (action.as_str(), query.requeue) {
                ("ack", _) => {
                    api.broker.http_counters().add_shared(Counted::Ack, 1);
                    lease.queue.ack([lease.seq])
                }
                (_, true) => lease.queue.requeue([lease.seq]),
                (_, false) => lease.queue.reject([lease.seq]),
            }
            Ok(StatusCode::NO_CONTENT)
        }
        other => Err(ApiError::not_found(format!("no action '{other}' (ack, nack or extend)"))),
    }
}
