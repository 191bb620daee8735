//! `POST /api/vhosts/{vhost}/exchanges/{exchange}/messages`: publish one message and answer
//! `202 Accepted` with its id and status URL (`Location`). The body is the message as is (its
//! `Content-Type` becomes the content type; `routing_key` is a query parameter; properties and
//! AMQP headers come from `X-` request headers), or a JSON envelope when the content type is
//! `application/vnd.warren.envelope+json`. Messages are persistent unless asked otherwise.

use crate::auth::authorize_for;
use crate::{Api, ApiError};
use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortStr};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_broker::permissions::{Access, Resource};
use warren_broker::stats::Counted;
use warren_broker::tracking::id_text;
use warren_core::Message;

/// The content type of a JSON envelope.
pub const ENVELOPE_TYPE: &str = "application/vnd.warren.envelope+json";

/// The name that stands for the default (nameless) exchange in paths, as in RabbitMQ's API.
pub(crate) const DEFAULT_EXCHANGE: &str = "amq.default";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishQuery {
    #[serde(default)]
    routing_key: String,
}

/// A message as a JSON envelope.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope {
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    body: String,
    /// `utf8` (the default) or `base64`.
    #[serde(default)]
    body_encoding: Option<String>,
    #[serde(default)]
    properties: EnvelopeProperties,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    /// Ask the consumer for a reply, which becomes part of the status.
    #[serde(default)]
    await_reply: bool,
    /// Where to POST the status once the message is finished.
    #[serde(default)]
    callback_url: Option<String>,
    /// The callback's `whsec_` secret (else the vhost's).
    #[serde(default)]
    callback_secret: Option<String>,
}

/// What a publish asks beyond the message itself.
pub(crate) struct Options {
    await_reply: bool,
    callback_url: Option<String>,
    callback_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnvelopeProperties {
    content_type: Option<String>,
    content_encoding: Option<String>,
    correlation_id: Option<String>,
    reply_to: Option<String>,
    message_id: Option<String>,
    expiration: Option<String>,
    #[serde(default, deserialize_with = "crate::json_numbers::optional_integer")]
    priority: Option<u8>,
    #[serde(default, deserialize_with = "crate::json_numbers::optional_integer")]
    delivery_mode: Option<u8>,
    #[serde(rename = "type")]
    kind: Option<String>,
    app_id: Option<String>,
    #[serde(default, deserialize_with = "crate::json_numbers::optional_integer")]
    timestamp: Option<u64>,
}

fn short(field: &str, value: Option<String>) -> Result<Option<ShortStr>, ApiError> {
    value
        .map(|v| {
            ShortStr::try_from_string(v).map_err(|_| ApiError::bad_request(format!("{field} is longer than 255 bytes")))
        })
        .transpose()
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_owned()))
            .map_err(|_| ApiError::bad_request(format!("header {name} is not visible ASCII"))),
    }
}

fn header_number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Result<Option<T>, ApiError> {
    header_text(headers, name)?
        .map(|v| v.parse::<T>().map_err(|_| ApiError::bad_request(format!("header {name} is not a valid number"))))
        .transpose()
}

fn json_field(value: &Value) -> Result<FieldValue, ApiError> {
    Ok(match value {
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) if n.is_i64() => FieldValue::I64(n.as_i64().expect("checked")),
        Value::Number(n) => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes())),
        Value::Array(items) => FieldValue::Array(items.iter().map(json_field).collect::<Result<_, _>>()?),
        Value::Object(map) => {
            let mut t = FieldTable::new();
            for (k, v) in map {
                t.insert(
                    ShortStr::try_from_string(k.clone()).map_err(|_| ApiError::bad_request("header name too long"))?,
                    json_field(v)?,
                );
            }
            FieldValue::Table(t)
        }
        Value::Null => FieldValue::Void,
    })
}

/// 1 (transient) or 2 (persistent, the default).
fn delivery_mode(asked: Option<u8>) -> Result<u8, ApiError> {
    match asked.unwrap_or(2) {
        mode @ (1 | 2) => Ok(mode),
        other => {
            Err(ApiError::bad_request(format!("delivery mode {other} is neither 1 (transient) nor 2 (persistent)")))
        }
    }
}

/// Properties and body from the raw form (`X-` headers).
fn from_raw(headers: &HeaderMap, body: Bytes) -> Result<(BasicProperties, Bytes), ApiError> {
    let mut table = FieldTable::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix("x-header-") {
            let value =
                value.to_str().map_err(|_| ApiError::bad_request(format!("header {name} is not visible ASCII")))?;
            table.insert(ShortStr::from(key), FieldValue::LongStr(Bytes::copy_from_slice(value.as_bytes())));
        }
    }
    let props = BasicProperties {
        content_type: short("Content-Type", header_text(headers, "content-type")?)?,
        content_encoding: short("Content-Encoding", header_text(headers, "content-encoding")?)?,
        correlation_id: short("X-Correlation-Id", header_text(headers, "x-correlation-id")?)?,
        reply_to: short("X-Reply-To", header_text(headers, "x-reply-to")?)?,
        message_id: short("X-Message-Id", header_text(headers, "x-message-id")?)?,
        expiration: short("X-Expiration", header_text(headers, "x-expiration")?)?,
        priority: header_number(headers, "x-priority")?,
        delivery_mode: Some(delivery_mode(header_number(headers, "x-delivery-mode")?)?),
        kind: short("X-Type", header_text(headers, "x-type")?)?,
        app_id: short("X-App-Id", header_text(headers, "x-app-id")?)?,
        headers: (!table.is_empty()).then_some(table),
        ..BasicProperties::default()
    };
    Ok((props, body))
}

/// Properties, body and routing key from a JSON envelope.
fn from_envelope(body: &[u8]) -> Result<(BasicProperties, Bytes, String, Options), ApiError> {
    let e: Envelope =
        serde_json::from_slice(body).map_err(|err| ApiError::bad_request(format!("invalid envelope: {err}")))?;
    envelope_parts(e)
}

/// An envelope's properties, body, routing key and options.
pub(crate) fn envelope_parts(e: Envelope) -> Result<(BasicProperties, Bytes, String, Options), ApiError> {
    let body = match e.body_encoding.as_deref() {
        None | Some("utf8") => Bytes::from(e.body.into_bytes()),
        Some("base64") => {
            use base64::Engine;
            Bytes::from(
                base64::engine::general_purpose::STANDARD
                    .decode(e.body.as_bytes())
                    .map_err(|_| ApiError::bad_request("body is not valid base64"))?,
            )
        }
        Some(other) => return Err(ApiError::bad_request(format!("unknown body_encoding '{other}' (utf8 or base64)"))),
    };
    let mut table = FieldTable::new();
    for (k, v) in &e.headers {
        let key = ShortStr::try_from_string(k.clone()).map_err(|_| ApiError::bad_request("header name too long"))?;
        table.insert(key, json_field(v)?);
    }
    let p = e.properties;
    let props = BasicProperties {
        content_type: short("content_type", p.content_type)?,
        content_encoding: short("content_encoding", p.content_encoding)?,
        correlation_id: short("correlation_id", p.correlation_id)?,
        reply_to: short("reply_to", p.reply_to)?,
        message_id: short("message_id", p.message_id)?,
        expiration: short("expiration", p.expiration)?,
        priority: p.priority,
        delivery_mode: Some(delivery_mode(p.delivery_mode)?),
        kind: short("type", p.kind)?,
        app_id: short("app_id", p.app_id)?,
        timestamp: p.timestamp,
        headers: (!table.is_empty()).then_some(table),
        ..BasicProperties::default()
    };
    let options =
        Options { await_reply: e.await_reply, callback_url: e.callback_url, callback_secret: e.callback_secret };
    Ok((props, body, e.routing_key, options))
}

/// 202 with the message's id and status URL; `routed` adds what routing did (the queues it
/// reached, and whether a contract dead-lettered it or a deduplication window had its key).
fn accepted(id: &str, routed: Option<&warren_broker::Routed>) -> Response {
    let url = format!("/api/messages/{id}");
    (StatusCode::ACCEPTED, [(header::LOCATION, url)], Json(accepted_json(id, routed))).into_response()
}

/// The body of a 202: the id, the status URL, and what routing did (if it is known).
pub(crate) fn accepted_json(id: &str, routed: Option<&warren_broker::Routed>) -> Value {
    let mut body = json!({ "id": id, "status_url": format!("/api/messages/{id}") });
    if let Some(routed) = routed {
        body["routed_queues"] = json!(routed.queues);
        if let Some(refusal) = routed.refusal.as_deref() {
            body["dead_lettered"] = serde_json::Value::Object(contract_details(refusal));
        }
        if routed.deduplicated {
            body["deduplicated"] = json!(true);
        }
    }
    body
}

pub async fn publish(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost_name, exchange)): Path<(String, String)>,
    Query(query): Query<PublishQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (user, exchange) = authorize_publish(&api, &headers, peer, &vhost_name, exchange)?;
    let max = api
        .settings
        .max_body_bytes
        .min(usize::try_from(api.broker.limits().max_message_size_bytes).unwrap_or(usize::MAX));
    let body = request_body(body, max, "the message body")?;
    let vhost = api.broker.vhost(&vhost_name).ok_or_else(|| ApiError::not_found(format!("no vhost '{vhost_name}'")))?;
    let raw_idempotency_key = header_text(&headers, "idempotency-key")?;
    let idempotency_key = raw_idempotency_key.as_ref().map(|k| format!("{user}\0{vhost_name}\0{k}"));
    if let Some(id) = idempotency_key.as_deref().and_then(|k| api.idempotency.get(k)) {
        return Ok(accepted(&id, None));
    }
    let is_envelope = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(ENVELOPE_TYPE)));
    let (props, body, routing_key, options) = if is_envelope {
        from_envelope(&body)?
    } else {
        // A copy: the request's bytes are a slice of the connection's read buffer, which a
        // queued message would otherwise keep alive whole.
        let (props, body) = from_raw(&headers, Bytes::copy_from_slice(&body))?;
        let await_reply = match header_text(&headers, "x-await-reply")?.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!("X-Await-Reply must be true or false, not '{other}'")))
            }
        };
        let callback_url = header_text(&headers, "x-callback-url")?;
        let callback_secret = header_text(&headers, "x-callback-secret")?;
        (props, body, query.routing_key, Options { await_reply, callback_url, callback_secret })
    };
    let checked = check(&api, &vhost_name, &exchange, props, body, routing_key, options)?;
    // As AMQP publishers stop being read, an HTTP publish waits while transforms are behind.
    api.broker.transform_book().wait_for_room().await;
    refuse_while_alarmed(&api)?;
    let (message, track) = start(&api, checked, raw_idempotency_key);
    let routed = route(&api, &vhost, &exchange, message)?;
    let id = id_text(track);
    if let Some(key) = idempotency_key {
        api.idempotency.remember(key, id.clone());
    }
    Ok(accepted(&id, Some(&routed)))
}

/// The user allowed to publish to the exchange a path names, and that exchange's own name
/// (`amq.default` in paths is the nameless default exchange).
pub(crate) fn authorize_publish(
    api: &Api,
    headers: &HeaderMap,
    peer: SocketAddr,
    vhost_name: &str,
    path_exchange: String,
) -> Result<(String, String), ApiError> {
    let exchange = if path_exchange == DEFAULT_EXCHANGE { String::new() } else { path_exchange };
    let user = authorize_for(&api.broker, headers, peer, vhost_name, Access::Write, Resource::Exchange, &exchange)?;
    Ok((user, exchange))
}

/// A request's body, or the error that refused it: axum's rejection, or 413 past `max` bytes.
pub(crate) fn request_body(body: Result<Bytes, BytesRejection>, max: usize, what: &str) -> Result<Bytes, ApiError> {
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    if body.len() > max {
        return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("{what} is larger than allowed")));
    }
    Ok(body)
}

/// A publish whose every part was checked: nothing about it can be refused before routing.
pub(crate) struct Checked {
    props: BasicProperties,
    body: Bytes,
    exchange: ShortStr,
    routing_key: ShortStr,
    lookup_vhost: String,
    /// The callback URL and the key its requests are signed with.
    callback: Option<(String, Vec<u8>)>,
    await_reply: bool,
}

/// Checks what a publish asks (its callback target, reply, expiration and names) before
/// anything is tracked or routed.
pub(crate) fn check(
    api: &Api,
    vhost_name: &str,
    exchange: &str,
    props: BasicProperties,
    body: Bytes,
    routing_key: String,
    options: Options,
) -> Result<Checked, ApiError> {
    let callback = match options.callback_url {
        Some(url) => Some(crate::callbacks::check_target(&api.settings, vhost_name, url, options.callback_secret)?),
        None => None,
    };
    let await_reply = options.await_reply;
    if await_reply && props.reply_to.is_some() {
        return Err(ApiError::bad_request("a message awaiting a reply cannot name its own reply-to"));
    }
    if let Some(expiration) = props.expiration.as_ref() {
        warren_core::message::parse_expiration(expiration)
            .map_err(|why| ApiError::bad_request(format!("invalid expiration '{expiration}': {why}")))?;
    }
    let exchange =
        ShortStr::try_from_string(exchange.to_owned()).map_err(|_| ApiError::bad_request("exchange name too long"))?;
    let routing_key = ShortStr::try_from_string(routing_key)
        .map_err(|_| ApiError::bad_request("routing_key is longer than 255 bytes"))?;
    Ok(Checked { props, body, exchange, routing_key, lookup_vhost: vhost_name.to_owned(), callback, await_reply })
}

/// A resource alarm blocks publishers: over HTTP, 503 with when to try again.
pub(crate) fn refuse_while_alarmed(api: &Api) -> Result<(), ApiError> {
    match api.broker.alarms().raised().first() {
        None => Ok(()),
        Some(alarm) => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("publishing is blocked: the broker is {} (a resource alarm)", alarm.reason()),
            );
            e.retry_after_s = Some(5);
            Err(e)
        }
    }
}

/// Starts tracking a checked publish and makes its message: the tracking id in its headers,
/// the Idempotency-Key as its deduplication key, and Warren's reply address if it awaits one.
pub(crate) fn start(api: &Api, checked: Checked, idempotency_key: Option<String>) -> (Arc<Message>, u64) {
    let Checked { mut props, body, exchange, routing_key, lookup_vhost, callback, await_reply } = checked;
    let now = api.broker.now_ms();
    let lookup = props.message_id.as_ref().map(|id| (lookup_vhost.as_str(), id.as_str()));
    let track = api.broker.tracker().start(now, lookup, warren_broker::tracking::Origin::Http);
    if let Some((url, key)) = callback {
        api.broker.tracker().call_back(track, url, key);
    }
    // The Idempotency-Key is the message's deduplication key too (unless it names its own):
    // a deduplicating exchange or queue keeps a retry out even after the HTTP window (memory
    // only) is gone, e.g. across a restart, when its window is durable.
    if let Some(key) = idempotency_key {
        let headers = props.headers.get_or_insert_with(FieldTable::new);
        if headers.get(warren_core::dedup::KEY_HEADER).is_none() {
            headers.insert(warren_core::dedup::KEY_HEADER, FieldValue::LongStr(Bytes::from(key.into_bytes())));
        }
    }
    // Consumers see the tracking id, as for a tracked AMQP publish.
    props.headers.get_or_insert_with(FieldTable::new).insert(
        ShortStr::from_static(warren_broker::tracking::ID_HEADER),
        FieldValue::LongStr(Bytes::from(id_text(track).into_bytes())),
    );
    if await_reply {
        // The consumer replies to this address (on the default exchange), with this correlation
        // id unless the publisher chose one.
        props.reply_to = Some(ShortStr::from(format!("{}{}", warren_broker::tracking::REPLY_PREFIX, id_text(track))));
        props.correlation_id.get_or_insert_with(|| ShortStr::from(id_text(track)));
    }
    let message = Arc::new(Message::new(exchange, routing_key, props.to_raw(), body).at(now).tracked(track));
    (message, track)
}

/// Routes a started publish and counts it; a contract's refusal is a 422 with its details
/// (nothing was published; the tracked record says which contract it broke).
pub(crate) fn route(
    api: &Api,
    vhost: &warren_broker::VHost,
    exchange: &str,
    message: Arc<Message>,
) -> Result<warren_broker::Routed, ApiError> {
    let routed = api.broker.publish(vhost, exchange, message, None).map_err(ApiError::from_amqp)?;
    if let Some(refusal) = routed.refusal.as_ref().filter(|_| routed.rejected) {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, refusal.reply_text())
            .with_details(contract_details(refusal)));
    }
    let counters = api.broker.http_counters();
    counters.add_shared(Counted::Publish, 1);
    if routed.queues > 0 {
        counters.add_shared(Counted::Routed, 1);
    } else if !routed.deduplicated {
        counters.add_shared(Counted::DropUnroutable, 1);
    }
    Ok(routed)
}

/// The contract a message broke and its violations, as a JSON object.
fn contract_details(refusal: &warren_broker::contracts::ContractRefusal) -> serde_json::Map<String, serde_json::Value> {
    let violations: Vec<serde_json::Value> = refusal.violations.iter().map(|v| v.to_json()).collect();
    let mut details = serde_json::Map::new();
    details.insert("reason".into(), "contract".into());
    details.insert("contract".into(), refusal.contract.clone().into());
    details.insert("version".into(), refusal.version.into());
    details.insert("violations".into(), violations.into());
    details
}
