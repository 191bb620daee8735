//! Warren's HTTP API, served with axum on the broker's HTTP listener: publish a message and get
//! `202 Accepted` at once with a status URL, then follow the message's outcome (routed,
//! delivered, acked, dead-lettered...) by polling or long-polling that URL. Users and vhost
//! permissions are the AMQP ones (HTTP Basic authentication); every error is a JSON body.

mod auth;
mod error;
mod idempotency;
mod publish;
mod status;

use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use warren_broker::Broker;

pub use error::ApiError;

/// Bounds of the HTTP API.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` maps to its first publish.
    pub idempotency_window: Duration,
    /// Idempotency keys remembered at most.
    pub max_idempotency_keys: usize,
    /// Longest long poll.
    pub max_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_body_bytes: 16 * 1024 * 1024,
            idempotency_window: Duration::from_secs(24 * 60 * 60),
            max_idempotency_keys: 100_000,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// What every request handler shares.
pub(crate) struct Api {
    pub broker: Broker,
    pub settings: Settings,
    pub idempotency: idempotency::Keys,
}

/// The API's routes over `broker`.
pub fn router(broker: Broker, settings: Settings) -> Router {
    let idempotency = idempotency::Keys::new(settings.max_idempotency_keys, settings.idempotency_window);
    let api = Arc::new(Api { broker, settings, idempotency });
    Router::new()
        .route("/api/vhosts/{vhost}/exchanges/{exchange}/messages", post(publish::publish))
        .route("/api/messages/{id}", get(status::status))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    broker: Broker,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(broker, settings).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
