//! Warren's AMQP 0-9-1 transport: accepts sockets, runs the handshake, and drives one connection
//! task (reader) plus one writer task per client. Routing and queue rules live in the broker.

mod ack_timeout;
mod basic;
mod channel;
mod confirm;
mod connection;
mod handshake;
mod io;
mod outbound;
mod pending;
mod sink;
mod unacked;

use handshake::HandshakeError;
use outbound::Outbound;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use warren_broker::registry::ConnectionMeta;
use warren_broker::{Broker, ConnectionSlot};
use warren_tls::TlsSource;

/// How long shutdown waits for connections to finish their close handshakes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accept AMQP connections on `listener` until `shutdown` resolves; then close every connection
/// with 320 CONNECTION_FORCED and wait (bounded) for them to finish.
pub async fn serve(listener: TcpListener, broker: Broker, shutdown: impl Future<Output = ()>) {
    serve_with(listener, broker, None, shutdown).await
}

/// [`serve`] for AMQP over TLS (`amqps`): each connection's TLS handshake (bounded in time)
/// comes first, with the certificate `tls` has at that moment; a client certificate verified
/// by it lets the client log in with `EXTERNAL`.
pub async fn serve_tls(listener: TcpListener, broker: Broker, tls: Arc<TlsSource>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, broker, Some(tls), shutdown).await
}

async fn serve_with(
    listener: TcpListener,
    broker: Broker,
    tls: Option<Arc<TlsSource>>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let admitted = broker.admission().check_rate(peer.ip()).and_then(|()| broker.admission().start_handshake());
                    let handshaking = match admitted {
                        Ok(handshaking) => handshaking,
                        Err(refusal) => {
                            tracing::debug!(%peer, %refusal, "refusing connection");
                            continue;
                        }
                    };
                    let Some(slot) = broker.admit_connection() else {
                        tracing::warn!(%peer, "connection limit reached, refusing connection");
                        continue;
                    };
                    let stop = stop_rx.clone();
                    connections.spawn(handle_socket(socket, peer, broker.clone(), (slot, handshaking), stop, tls.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

/// A connection admitted, and its place among those in their handshake (given back once the
/// handshake is done).
type Admitted = (ConnectionSlot, warren_broker::admission::Handshaking);

async fn handle_socket(
    socket: TcpStream,
    peer: SocketAddr,
    broker: Broker,
    admitted: Admitted,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<TlsSource>>,
) {
    let _ = socket.set_nodelay(true);
    let Ok(local) = socket.local_addr() else { return };
    let Some(tls) = tls else {
        return run_connection(socket, (peer, local), broker, admitted, stop, None).await;
    };
    let accepted = tokio::time::timeout(tls.handshake_timeout(), tls.acceptor().accept(socket)).await;
    let stream = match accepted {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let identity = warren_tls::peer_identity(stream.get_ref().1.peer_certificates(), tls.config().cert_login_from);
    run_connection(stream, (peer, local), broker, admitted, stop, Some(handshake::Secured { identity })).await
}

/// A connection's stream, split into halves its reader and writer own.
trait Halves: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    type Read: AsyncRead + Unpin + Send + 'static;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn halves(self) -> (Self::Read, Self::Write);
}

impl Halves for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    /// A socket's own halves: no lock between reader and writer.
    fn halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Halves for warren_tls::TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    /// One TLS session for both directions, behind tokio's lock.
    fn halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

async fn run_connection<S: Halves>(
    mut socket: S,
    (peer, local): (SocketAddr, SocketAddr),
    broker: Broker,
    (slot, handshaking): Admitted,
    mut stop: watch::Receiver<bool>,
    secured: Option<handshake::Secured>,
) {
    let limits = broker.limits().clone();
    let handshake_timeout = Duration::from_millis(limits.handshake_timeout_ms);
    if tokio::time::timeout(handshake_timeout, handshake::read_protocol_header(&mut socket))
        .await
        .map_or(true, |r| r.is_err())
    {
        return;
    }
    let (read_half, write_half) = socket.halves();
    let out = Outbound::new(limits.outbound_high_watermark_bytes, limits.frame_max);
    let writer = tokio::spawn(outbound::run_writer(out.clone(), write_half));
    let mut reader = io::FrameReader::new(read_half);
    let negotiated =
        tokio::time::timeout(handshake_timeout, handshake::negotiate(&mut reader, &out, &broker, peer.ip(), &secured))
            .await;
    drop(handshaking);
    match negotiated {
        Ok(Ok(n)) => {
            out.set_heartbeat_s(n.heartbeat_s);
            tracing::debug!(connection = slot.id, %peer, user = %n.user, vhost = %n.vhost.name, "connection opened");
            let entry = slot.register(ConnectionMeta {
                id: slot.id,
                peer,
                local,
                user: n.user.clone(),
                vhost: n.vhost.name.clone(),
                protocol: "AMQP 0-9-1",
                tls: secured.is_some(),
                auth_mechanism: n.mechanism.clone(),
                client_properties: n.client_properties.clone(),
                connected_at_ms: broker.now_ms(),
                channel_max: n.channel_max,
                frame_max: n.frame_max,
                heartbeat_s: n.heartbeat_s,
            });
            reader.count_into(entry.stats.clone());
            out.count_into(entry.stats.clone());
            let conn = connection::Connection::new(slot.id, broker, out.clone(), n, entry);
            conn.run(&mut reader, &mut stop).await;
        }
        Ok(Err(HandshakeError::Refused(e, class_id, method_id))) => {
            tracing::info!(%peer, code = e.code, text = %e.text, "handshake refused");
            out.write(|b| amqp_codec::encode_method(b, 0, &handshake::close_method(&e, class_id, method_id)));
            out.close();
            // Give the client a moment to read the close before the socket goes.
            let _ = tokio::time::timeout(Duration::from_secs(1), reader.next_frame(amqp_codec::FRAME_MIN_SIZE)).await;
        }
        Ok(Err(_)) | Err(_) => {}
    }
    out.close();
    // The write half comes back from the writer; the socket closes when both halves go, here.
    let _socket = tokio::time::timeout(Duration::from_secs(5), writer).await;
    drop(slot);
}
