//! The HTTP listeners' connections: each accepted under the broker's rate of new connections
//! per source address and the API's bound on open connections (a 503 beyond either), then
//! served by hyper with bounds on the request head (its size, and the time it may take to
//! arrive: a client that trickles its headers is closed), until shutdown.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::Service;
use warren_broker::sessions::Listener;
use warren_broker::Broker;

/// How long shutdown waits for requests in progress before it cuts their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the 503 to a refused connection may take to write.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// What a connection over a bound is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
connection: close\r\ncontent-length: 76\r\n\r\n{\"error\":\"service_unavailable\",\"reason\":\"too many connections; retry later\"}";

/// The bounds every connection of the API's listeners is served under.
pub(crate) struct Bounds {
    /// One permit per open connection, plain and TLS together.
    pub connections: Arc<Semaphore>,
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Serves `app` on the connections `listener` accepts until `stopped`; then lets requests in
/// progress finish (bounded) and closes idle connections.
pub(crate) async fn serve<L, S>(
    mut listener: L,
    app: S,
    broker: Broker,
    bounds: Arc<Bounds>,
    stopped: watch::Receiver<bool>,
    tls: bool,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    S: Service<axum::extract::Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let mut connections = JoinSet::new();
    // Which listener requests came in by (the console's session cookie is named after it).
    let by = Listener { port: listener.local_addr().map_or(0, |a| a.port()), tls };
    let stop = until_stopped(stopped.clone());
    tokio::pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = &mut stop => break,
        };
        let admitted = match broker.admission().check_rate(peer.ip()) {
            Ok(()) => bounds.connections.clone().try_acquire_owned().ok(),
            Err(_) => None,
        };
        match admitted {
            Some(permit) => {
                connections.spawn(serve_connection(io, peer, app.clone(), bounds.clone(), stopped.clone(), permit, by))
            }
            None => {
                tracing::debug!(%peer, "HTTP connection refused: rate of its address or connection limit reached");
                connections.spawn(refuse(io))
            }
        };
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

async fn refuse<I: AsyncWrite + Unpin>(mut io: I) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        io.write_all(REFUSAL).await?;
        io.shutdown().await
    })
    .await;
}

async fn serve_connection<I, S>(
    io: I,
    peer: SocketAddr,
    app: S,
    bounds: Arc<Bounds>,
    stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    by: Listener,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<axum::extract::Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    // Handlers read the peer's address as axum's `ConnectInfo`.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(by);
        tower::ServiceExt::oneshot(app.clone(), request.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header_read_timeout)
        .max_buf_size(bounds.max_header_bytes.max(8192));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let stop = until_stopped(stopped);
    tokio::pin!(stop);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = &mut stop => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}
