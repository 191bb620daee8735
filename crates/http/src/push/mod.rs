//! HTTP push subscriptions: a queue's messages POSTed one by one to a URL, as the JSON a pull
//! receive returns, signed as Standard Webhooks describe. A 2xx answer acks the message; anything
//! else is retried with exponential backoff and jitter, and after the last attempt the message
//! is rejected, so the queue dead-letters it (reason `rejected`) or, without a dead-letter
//! exchange, drops it. At most `max_in_flight` messages of a subscription are out at once: the
//! subscription is a consumer of the queue with that much credit. Subscriptions are kept in
//! `push-subscriptions.json` in the data directory and come back after a restart. A
//! subscription with a content `filter` gets only the messages it admits (`push/feed.rs`); one
//! with a `transform` pushes what the transform makes of each message (`push/shaping.rs`).

mod deliver;
mod feed;
mod shaping;

use crate::auth::authorize_for;
use crate::callbacks::{backoff, check_target, now_ms, now_s, short_error, signature};
use crate::message_json::MessageJson;
use crate::outgoing::Outgoing;
use crate::{Api, ApiError, Settings};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, watch};
use warren_broker::consumer::{Consumer, ConsumerSink, Offer, Take};
use warren_broker::permissions::{Access, Resource};
use warren_broker::stats::{count, Counted};
use warren_broker::tracking::{id_text, parse_id};
use warren_broker::{Broker, Queue};
use warren_core::{Entry, Message};

/// Subscriptions at once, over all queues.
const MAX_SUBSCRIPTIONS: usize = 1_000;
/// The largest `max_in_flight` of one subscription.
const MAX_IN_FLIGHT: u32 = 1_000;
/// The most attempts a subscription may ask for per message.
const MAX_ATTEMPTS: u32 = 100;
/// Where subscriptions are kept, in the data directory.
pub const FILE_NAME: &str = "push-subscriptions.json";

/// A subscription as it is created and kept.
#[derive(Clone, Serialize, Deserialize)]
struct Definition {
    id: String,
    vhost: String,
    queue: String,
    url: String,
    /// The `whsec_` secret it was given; `None` signs with the vhost's configured one.
    #[serde(default)]
    secret: Option<String>,
    max_in_flight: u32,
    max_attempts: u32,
    created_ms: u64,
    /// A content filter (`docs/filters.md`): only the messages it admits are pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    /// A transform each message goes through before it is pushed (`push/shaping.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transform: Option<String>,
}

/// What a client sends to create one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    url: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default = "sixteen", deserialize_with = "crate::json_numbers::integer")]
    max_in_flight: u32,
    #[serde(default, deserialize_with = "crate::json_numbers::optional_integer")]
    max_attempts: Option<u32>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    transform: Option<String>,
}

fn sixteen() -> u32 {
    16
}

/// What a client sees of one: its definition (never its secret) and its counters.
#[derive(Serialize)]
struct View {
    id: String,
    vhost: String,
    queue: String,
    url: String,
    max_in_flight: u32,
    max_attempts: u32,
    created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transform: Option<String>,
    in_flight: usize,
    /// Requests sent, retries included.
    attempts: u64,
    succeeded: u64,
    /// Messages rejected after their last failed attempt.
    dead_lettered: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_failure: Option<Failure>,
}

#[derive(Clone, Serialize)]
struct Failure {
    at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// The consumer side of a subscription: credit, what is out, and the counters.
struct PushSink {
    max_in_flight: usize,
    /// Sequence numbers of the messages out; whoever removes one settles it.
    in_flight: Mutex<HashSet<u64>>,
    to_push: mpsc::UnboundedSender<Entry>,
    stop: watch::Sender<bool>,
    attempts: AtomicU64,
    succeeded: AtomicU64,
    dead_lettered: AtomicU64,
    last_failure: Mutex<Option<Failure>>,
    /// For the HTTP transport's message counts.
    broker: Broker,
    /// Told when a settled push gives credit back (a filtered subscription waits on it).
    room: tokio::sync::Notify,
}

impl ConsumerSink for PushSink {
    fn offer(&self, _: &Consumer, _: &Arc<Queue>, _now_ms: u64, take: Take<'_>) -> Offer {
        let mut in_flight = self.in_flight.lock();
        if in_flight.len() >= self.max_in_flight || *self.stop.borrow() {
            return Offer::NoCredit;
        }
        let Some(entry) = take() else { return Offer::Empty };
        let counters = self.broker.http_counters();
        counters.add_shared(Counted::Deliver, 1);
        if entry.redelivered {
            counters.add_shared(Counted::Redeliver, 1);
        }
        in_flight.insert(entry.seq);
        let _ = self.to_push.send(entry);
        Offer::Delivered
    }

    fn deliver_reply(&self, _: &Consumer, _: &Arc<Message>) {}

    fn cancelled_by_broker(&self, _: &Consumer) {
        // The queue was deleted: the subscription goes with it (its worker removes it).
        self.stop.send_replace(true);
    }
}

struct Live {
    def: Definition,
    key: Vec<u8>,
    /// Random per attach: the `webhook-id` of an untracked message includes it, so ids are not
    /// reused when sequence numbers start again after a restart.
    epoch: u32,
    queue: Arc<Queue>,
    consumer: Arc<Consumer>,
    sink: Arc<PushSink>,
}

impl Live {
    fn view(&self) -> View {
        let s = &self.sink;
        View {
            id: self.def.id.clone(),
            vhost: self.def.vhost.clone(),
            queue: self.def.queue.clone(),
            url: self.def.url.clone(),
            max_in_flight: self.def.max_in_flight,
            max_attempts: self.def.max_attempts,
            created_ms: self.def.created_ms,
            filter: self.def.filter.clone(),
            transform: self.def.transform.clone(),
            in_flight: s.in_flight.lock().len(),
            attempts: s.attempts.load(Ordering::Relaxed),
            succeeded: s.succeeded.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
            last_failure: s.last_failure.lock().clone(),
        }
    }

    /// Settles message `seq` if it is still out (a deleted subscription returned it already).
    /// Dead-letters a message out for `reason` (its transform failed), giving its credit back.
    fn fail(&self, seq: u64, reason: warren_core::dead_letter::Reason) {
        if !self.sink.in_flight.lock().remove(&seq) {
            return;
        }
        self.queue.dead_letter_delivered([seq], reason);
        self.sink.room.notify_waiters();
        self.queue.dispatch();
    }

    fn settle(&self, seq: u64, ack: bool) {
        if !self.sink.in_flight.lock().remove(&seq) {
            return;
        }
        if ack {
            self.sink.broker.http_counters().add_shared(Counted::Ack, 1);
            self.queue.ack([seq]);
        } else {
            self.queue.reject([seq]);
        }
        self.sink.room.notify_waiters();
        self.queue.dispatch();
    }
}

/// Every subscription, and the file they are kept in.
pub struct Subscriptions {
    broker: Broker,
    settings: Settings,
    client: reqwest::Client,
    /// Outgoing requests in flight at once, shared with callbacks.
    outgoing: Arc<Outgoing>,
    path: Option<PathBuf>,
    live: Mutex<BTreeMap<String, Arc<Live>>>,
    /// Kept subscriptions the configuration no longer allows (URL, secret): still kept, and
    /// started again once a restart finds them allowed.
    dormant: Mutex<Vec<Definition>>,
}

impl Subscriptions {
    /// Loads the kept subscriptions and starts those whose queue still exists. A file that
    /// cannot be read is moved aside (never overwritten); subscriptions the configuration no
    /// longer allows are kept, dormant.
    pub fn open(broker: Broker, settings: Settings, outgoing: Arc<Outgoing>) -> Arc<Subscriptions> {
        let client = reqwest::Client::builder().timeout(settings.callback_timeout).build().expect("an HTTP client");
        let path = settings.data_dir.as_ref().map(|d| d.join(FILE_NAME));
        let kept = path.as_deref().map(read_kept).unwrap_or_default();
        let subs = Arc::new(Subscriptions {
            broker,
            settings,
            client,
            outgoing,
            path,
            live: Mutex::new(BTreeMap::new()),
            dormant: Mutex::new(Vec::new()),
        });
        let mut changed = false;
        for def in kept {
            match subs.attach(def.clone()) {
                Ok(_) => {}
                Err(e) if e.status == StatusCode::NOT_FOUND => {
                    tracing::warn!(id = %def.id, queue = %def.queue, "push subscription dropped: its queue is gone");
                    changed = true;
                }
                Err(e) => {
                    tracing::warn!(id = %def.id, queue = %def.queue, reason = %e.reason, "push subscription dormant");
                    subs.dormant.lock().push(def);
                }
            }
        }
        if changed {
            subs.save(&subs.live.lock());
        }
        subs
    }

    /// Stops every subscription's pushes (the server is stopping); they stay kept.
    pub fn stop(&self) {
        for live in self.live.lock().values() {
            live.sink.stop.send_replace(true);
        }
    }

    /// Starts pushing for `def`: a consumer on its queue and a worker task.
    fn attach(self: &Arc<Self>, def: Definition) -> Result<Arc<Live>, ApiError> {
        let queue = crate::pull::queue_of(&self.broker, &def.vhost, &def.queue)?;
        let filter = match &def.filter {
            Some(text) => {
                Some(warren_core::filter::Filter::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?)
            }
            None => None,
        };
        let (url, key) = check_target(&self.settings, &def.vhost, def.url.clone(), def.secret.clone())?;
        let (to_push, pushes) = mpsc::unbounded_channel();
        let sink = Arc::new(PushSink {
            max_in_flight: def.max_in_flight as usize,
            in_flight: Mutex::new(HashSet::new()),
            to_push,
            stop: watch::channel(false).0,
            attempts: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            broker: self.broker.clone(),
            room: tokio::sync::Notify::new(),
        });
        let owner = parse_id(&def.id).map(|id| (id | 1 << 63, 0)).ok_or_else(|| ApiError::bad_request("bad id"))?;
        let consumer = Arc::new(Consumer {
            tag: format!("warren.push.{}", def.id).as_str().into(),
            no_ack: false,
            exclusive: false,
            priority: 0,
            owner,
            sink: sink.clone(),
        });
        let epoch = rand::random::<u32>();
        let live = Arc::new(Live { def: Definition { url, ..def }, key, epoch, queue, consumer, sink });
        let (client, settings, outgoing) = (self.client.clone(), self.settings.clone(), self.outgoing.clone());
        tokio::spawn(deliver::run(Arc::downgrade(self), live.clone(), pushes, client, settings, outgoing));
        match filter {
            Some(filter) => drop(tokio::spawn(feed::feed(live.clone(), filter))),
            None => {
                if let Err(e) = live.queue.add_consumer(live.consumer.clone(), || {}) {
                    live.sink.stop.send_replace(true);
                    return Err(ApiError::from_amqp(e));
                }
            }
        }
        // Only a subscription whose consumer was accepted is listed (and so saved); one whose
        // queue went meanwhile is not.
        self.live.lock().insert(live.def.id.clone(), live.clone());
        if live.queue.is_deleted() {
            self.live.lock().remove(&live.def.id);
            live.sink.stop.send_replace(true);
            return Err(crate::ApiError::not_found(format!("no queue '{}'", live.def.queue)));
        }
        Ok(live)
    }

    /// Stops a subscription and returns its messages still out to the queue.
    fn detach(&self, live: &Live) {
        live.sink.stop.send_replace(true);
        live.queue.cancel_consumer(live.consumer.owner, &live.consumer.tag);
        let out: Vec<u64> = live.sink.in_flight.lock().drain().collect();
        live.queue.requeue(out);
    }

    /// Writes the definitions to the file: a new file renamed over the old one, so a crash
    /// leaves one or the other.
    fn save(&self, live: &BTreeMap<String, Arc<Live>>) {
        let Some(path) = &self.path else { return };
        let dormant = self.dormant.lock();
        let defs: Vec<&Definition> = live.values().map(|l| &l.def).chain(dormant.iter()).collect();
        let bytes = serde_json::to_vec_pretty(&defs).expect("definitions serialize");
        let tmp = path.with_extension("json.tmp");
        let written = (|| {
            use std::io::Write;
            let mut file = warren_broker::owner_only::create(&tmp)?; // it holds secrets
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            std::fs::File::open(path.parent().unwrap_or(std::path::Path::new(".")))?.sync_all()
        })();
        if let Err(e) = written {
            tracing::error!(error = %e, path = %path.display(), "cannot keep the push subscriptions");
        }
    }
}

/// The kept definitions in `path`; an unreadable file is renamed aside, so a later save does
/// not destroy what it held.
fn read_kept(path: &std::path::Path) -> Vec<Definition> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "cannot read the push subscriptions");
            Vec::new()
        }
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        let aside = path.with_extension(format!("json.unreadable-{}", now_ms()));
        let moved = std::fs::rename(path, &aside);
        tracing::error!(error = %e, aside = %aside.display(), moved = moved.is_ok(),
            "{FILE_NAME} is unreadable; moved aside, its subscriptions were not restored");
        Vec::new()
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no push subscription '{id}' on this queue"))
}

/// A path segment with everything but unreserved characters percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /api/vhosts/{vhost}/queues/{queue}/subscriptions`
pub async fn create(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost, queue)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    authorize_for(&api.broker, &headers, peer, &vhost, Access::Read, Resource::Queue, &queue)?;
    let req: CreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the subscription is not valid JSON of the right shape: {e}")))?;
    if req.max_in_flight == 0 || req.max_in_flight > MAX_IN_FLIGHT {
        return Err(ApiError::bad_request(format!("max_in_flight must be between 1 and {MAX_IN_FLIGHT}")));
    }
    if let Some(name) = &req.transform {
        if api.broker.transform_book().get(&vhost, name).is_none() {
            return Err(ApiError::bad_request(format!("no transform '{name}' in vhost '{vhost}'")));
        }
    }
    let max_attempts = req.max_attempts.unwrap_or(api.settings.callback_max_attempts.min(MAX_ATTEMPTS));
    if max_attempts == 0 || max_attempts > MAX_ATTEMPTS {
        return Err(ApiError::bad_request(format!("max_attempts must be between 1 and {MAX_ATTEMPTS}")));
    }
    let subs = &api.subscriptions;
    if subs.live.lock().len() >= MAX_SUBSCRIPTIONS {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many push subscriptions"));
    }
    let def = Definition {
        id: id_text(rand::random::<u64>() | 1),
        vhost: vhost.clone(),
        queue: queue.clone(),
        url: req.url,
        secret: req.secret,
        max_in_flight: req.max_in_flight,
        max_attempts,
        created_ms: now_ms(),
        filter: req.filter,
        transform: req.transform,
    };
    let live = subs.attach(def)?;
    subs.save(&subs.live.lock());
    let location = format!("/api/vhosts/{}/queues/{}/subscriptions/{}", segment(&vhost), segment(&queue), live.def.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(live.view())).into_response())
}

/// `GET /api/vhosts/{vhost}/queues/{queue}/subscriptions`
pub async fn list(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost, queue)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_for(&api.broker, &headers, peer, &vhost, Access::Read, Resource::Queue, &queue)?;
    crate::pull::queue_of(&api.broker, &vhost, &queue)?;
    let views: Vec<View> = api
        .subscriptions
        .live
        .lock()
        .values()
        .filter(|l| l.def.vhost == vhost && l.def.queue == queue)
        .map(|l| l.view())
        .collect();
    Ok(Json(views).into_response())
}

fn find(api: &Api, vhost: &str, queue: &str, id: &str) -> Result<Arc<Live>, ApiError> {
    let live = api.subscriptions.live.lock().get(id).cloned();
    live.filter(|l| l.def.vhost == vhost && l.def.queue == queue).ok_or_else(|| not_found(id))
}

/// `GET /api/vhosts/{vhost}/queues/{queue}/subscriptions/{id}`
pub async fn show(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost, queue, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize_for(&api.broker, &headers, peer, &vhost, Access::Read, Resource::Queue, &queue)?;
    Ok(Json(find(&api, &vhost, &queue, &id)?.view()).into_response())
}

/// `DELETE /api/vhosts/{vhost}/queues/{queue}/subscriptions/{id}`: stops it; messages it had
/// out go back to the queue.
pub async fn delete(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost, queue, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    authorize_for(&api.broker, &headers, peer, &vhost, Access::Read, Resource::Queue, &queue)?;
    let live = find(&api, &vhost, &queue, &id)?;
    let subs = &api.subscriptions;
    {
        let mut all = subs.live.lock();
        // Of two deletes at once, only the one that removes it answers 204.
        if !all.get(&id).is_some_and(|l| Arc::ptr_eq(l, &live)) {
            return Err(not_found(&id));
        }
        all.remove(&id);
        subs.save(&all);
    }
    subs.detach(&live);
    Ok(StatusCode::NO_CONTENT)
}
