//! Warren's HTTP API, served with axum on the broker's HTTP listener: publish a message and get
//! `202 Accepted` at once with a status URL, then follow the message's outcome (routed,
//! delivered, acked, dead-lettered...) by polling or long-polling that URL. Users and vhost
//! permissions are the AMQP ones (HTTP Basic authentication); every error is a JSON body.

mod auth;
mod batch;
mod callbacks;
mod error;
mod idempotency;
mod json_numbers;
mod message_json;
mod outgoing;
mod publish;
mod pull;
mod push;
mod serving;
mod status;
mod tls_listener;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use warren_broker::Broker;

pub use callbacks::{secret_key, signature};
pub use error::ApiError;

/// Bounds of the HTTP API.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` maps to its first publish.
    pub idempotency_window: Duration,
    /// Message ids remembered for `Idempotency-Key`s at most (a batch's key counts its messages).
    pub max_idempotency_keys: usize,
    /// Longest long poll.
    pub max_wait: Duration,
    /// URL prefixes callbacks may go to (empty: any).
    pub callback_allow: Vec<String>,
    /// Callback secrets (`whsec_...`) per vhost, for publishes that bring none.
    pub callback_secrets: std::collections::HashMap<String, String>,
    /// Timeout of one callback request.
    pub callback_timeout: Duration,
    /// Outgoing requests (callbacks and pushes) in flight at once.
    pub callback_concurrency: usize,
    /// Attempts per callback.
    pub callback_max_attempts: u32,
    /// Time after which a failing callback is given up.
    pub callback_max_time: Duration,
    /// The first retry's wait; each next one doubles it.
    pub callback_backoff_base: Duration,
    pub callback_max_backoff: Duration,
    /// Where push subscriptions are kept (`None`: they last as long as the process).
    pub data_dir: Option<std::path::PathBuf>,
    /// Connections open at once, plain and TLS together.
    pub max_connections: usize,
    /// How long a request's head may take to arrive.
    pub header_read_timeout: Duration,
    /// Largest request head, bytes (at least 8192).
    pub max_header_bytes: usize,
    /// How long a request's body may take to arrive.
    pub body_read_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_body_bytes: 16 * 1024 * 1024,
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            max_idempotency_keys: 100_000,
            max_wait: Duration::from_secs(60),
            callback_allow: Vec::new(),
            callback_secrets: Default::default(),
            callback_timeout: Duration::from_secs(10),
            callback_concurrency: 32,
            callback_max_attempts: 8,
            callback_max_time: Duration::from_secs(24 * 60 * 60),
            callback_backoff_base: Duration::from_secs(1),
            callback_max_backoff: Duration::from_secs(5 * 60),
            data_dir: None,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            body_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The longest `wait` a request may ask for, seconds (the configuration may cap it lower).
pub const MAX_WAIT_PARAM_S: u64 = 3600;

/// A `wait` parameter as a duration: at most [`MAX_WAIT_PARAM_S`] (else 400), capped by `max`.
pub(crate) fn wait_of(wait_s: u64, max: Duration) -> Result<Duration, ApiError> {
    if wait_s > MAX_WAIT_PARAM_S {
        return Err(ApiError::bad_request(format!("wait is at most {MAX_WAIT_PARAM_S} seconds")));
    }
    Ok(Duration::from_secs(wait_s).min(max))
}

/// The OpenAPI 3 document of this API (checked in as `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// What every request handler shares.
pub(crate) struct Api {
    pub broker: Broker,
    pub settings: Settings,
    pub idempotency: idempotency::Keys,
    pub leases: Arc<pull::Leases>,
    pub subscriptions: Arc<push::Subscriptions>,
}

/// The API's routes over `broker`.
fn router(broker: Broker, settings: Settings, subscriptions: Arc<push::Subscriptions>) -> Router {
    let idempotency = idempotency::Keys::new(settings.max_idempotency_keys, settings.idempotency_window);
    let leases = Arc::new(pull::Leases::default());
    leases.start_expiry();
    let api = Arc::new(Api { broker, settings, idempotency, leases, subscriptions });
    Router::new()
        .route("/api/vhosts/{vhost}/exchanges/{exchange}/messages", post(publish::publish))
        .route("/api/vhosts/{vhost}/exchanges/{exchange}/messages/batch", post(batch::publish_batch))
        .route("/api/vhosts/{vhost}/queues/{queue}/receive", post(pull::receive))
        .route("/api/vhosts/{vhost}/queues/{queue}/messages/{receipt}/{action}", post(pull::settle))
        .route("/api/vhosts/{vhost}/queues/{queue}/subscriptions", post(push::create).get(push::list))
        .route("/api/vhosts/{vhost}/queues/{queue}/subscriptions/{id}", get(push::show).delete(push::delete))
        .route("/api/vhosts/{vhost}/messages", get(status::find))
        .route("/api/messages/{id}", get(status::status))
        .route("/api/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(api)
}

/// A refused login (401) is answered after the wait its address's failed logins call for
/// (`warren_broker::login_failures`), on the HTTP API as on AMQP.
async fn delay_refused_logins(
    axum::extract::State(broker): axum::extract::State<Broker>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        tokio::time::sleep(broker.users().login_delay(peer.ip())).await;
    }
    response
}

/// Every answer is to be read as the type it declares (a JSON error is never run as a script
/// or a page), as the console's own files are.
async fn no_sniffing(mut response: Response) -> Response {
    let nosniff = header::HeaderValue::from_static("nosniff");
    response.headers_mut().entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(nosniff);
    response
}

/// Gives the errors axum answers by itself (a query that does not parse, a method a path does
/// not have, a body over the limit) the same JSON body as the API's own errors.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
    let reason = match String::from_utf8_lossy(&text).trim() {
        "" => status.canonical_reason().unwrap_or("error").to_owned(),
        text => text.to_owned(),
    };
    let mut json = ApiError::new(status, reason).into_response();
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
}

/// The HTTP API's listeners: plain, over TLS, or both.
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<(TcpListener, Arc<warren_tls::TlsSource>)>,
}

/// Serves the API on `listeners` until `shutdown` resolves, with the `extra` routes (the
/// management API) beside it.
pub async fn serve(
    listeners: Listeners,
    broker: Broker,
    settings: Settings,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Callbacks and pushes share one limit on outgoing requests.
    let outgoing = Arc::new(outgoing::Outgoing::new(settings.callback_concurrency));
    callbacks::start(broker.clone(), settings.clone(), outgoing.clone());
    let subscriptions = push::Subscriptions::open(broker.clone(), settings.clone(), outgoing.clone());
    let drain_timeout = settings.callback_timeout;
    let body_limit = settings.max_body_bytes;
    let bounds = Arc::new(serving::Bounds {
        connections: Arc::new(tokio::sync::Semaphore::new(settings.max_connections)),
        header_read_timeout: settings.header_read_timeout,
        max_header_bytes: settings.max_header_bytes,
    });
    let body_read_timeout = settings.body_read_timeout;
    // Every route's errors are JSON, the extra routes' too; refused logins wait as AMQP's do;
    // a body is bounded in size and in the time it may take to arrive.
    let routes = router(broker.clone(), settings, subscriptions.clone())
        .merge(extra)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_read_timeout))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::map_response(no_sniffing))
        .layer(axum::middleware::from_fn_with_state(broker.clone(), delay_refused_logins));
    // `/api/connections/` is `/api/connections`, as RabbitMQ's API (and its clients) have it.
    let app = tower::Layer::layer(&tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash(), routes);
    // One shutdown for both listeners.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let secure = match listeners.tls {
        Some((l, tls)) => {
            let l = tls_listener::TlsListener::new(l, tls)?;
            let serving = serving::serve(l, app.clone(), broker.clone(), bounds.clone(), stopped.clone(), true);
            Some(tokio::spawn(serving))
        }
        None => None,
    };
    let plain = listeners.plain.map(|l| tokio::spawn(serving::serve(l, app, broker, bounds, stopped, false)));
    for task in [plain, secure].into_iter().flatten() {
        let _ = task.await;
    }
    subscriptions.stop();
    // Calls already sent finish and are recorded (a push settles its message while the store is
    // still open, so it is not pushed again after the restart), within one call's timeout.
    outgoing.drain(drain_timeout).await;
    Ok(())
}
