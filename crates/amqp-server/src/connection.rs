//! One client connection after the handshake: the frame loop that routes frames to channels,
//! connection- and channel-level exceptions, missed-heartbeat detection, graceful close and the
//! cleanup that requeues unacked messages and deletes exclusive queues.

use crate::channel::{Channel, ChannelState, Ctx};
use crate::confirm::ConfirmWake;
use crate::handshake::{close_method, Negotiated};
use crate::io::{FrameReader, ReadError};
use crate::outbound::Outbound;
use crate::pending::Pending;
use amqp_codec::*;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::sync::watch;
use warren_broker::registry::ConnectionEntry;
use warren_broker::{Broker, Queue, VHost};
use warren_core::AmqpError;

mod holds;

/// How long we wait for connection.close-ok after sending connection.close.
const CLOSE_OK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long, after our close-ok, we read and drop what the client still sends before it closes.
const CLIENT_CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Connection {
    pub id: u64,
    pub broker: Broker,
    pub vhost: Arc<VHost>,
    pub out: Arc<Outbound>,
    pub user: String,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat_s: u16,
    pub cancel_notify: bool,
    /// The client announced the `connection.blocked` capability.
    blocked_notify: bool,
    /// The client has published: a resource alarm blocks it (one that only consumes goes on).
    publisher: bool,
    /// By channel number; looked up for every frame, hence Fx.
    channels: FxHashMap<u16, Channel>,
    /// Channels with confirms to flush at the end of the read batch (so the flush is not a scan).
    confirming: Vec<u16>,
    /// Channels whose settlements freed credit in this read batch (see `Channel::redispatch_due`).
    redispatching: Vec<u16>,
    exclusive_queues: Vec<Arc<Queue>>,
    confirm_wake: Arc<ConfirmWake>,
    /// What the last frame left waiting on the disk (see `pending.rs`).
    pending: Option<Pending>,
    /// Queues this read batch fed whose consumers are falling behind (see `frame_loop`).
    behind: Vec<Arc<Queue>>,
    /// This connection in the broker's registry.
    entry: Arc<ConnectionEntry>,
    /// Its places in the vhost's and user's connection limits, given back when it ends.
    _seats: warren_broker::resource_limits::ConnectionSeats,
}

/// How the frame loop ended.
enum End {
    /// The client sent connection.close and we answered close-ok.
    ClientClosed,
    /// The socket ended, failed, or the client stopped sending heartbeats.
    Gone,
    /// Close the connection with this error (we send connection.close).
    Failed(AmqpError, u16, u16),
}

/// What the frame loop does next.
enum Flow {
    Continue,
    /// Close the connection with this error (we send connection.close).
    Close(AmqpError, u16, u16),
    /// The client closed, or acknowledged our close: stop.
    Finished,
}

impl Connection {
    pub fn new(id: u64, broker: Broker, out: Arc<Outbound>, n: Negotiated, entry: Arc<ConnectionEntry>) -> Connection {
        Connection {
            id,
            broker,
            vhost: n.vhost,
            out,
            user: n.user,
            channel_max: n.channel_max,
            frame_max: n.frame_max,
            heartbeat_s: n.heartbeat_s,
            cancel_notify: n.client_capabilities.consumer_cancel_notify,
            blocked_notify: n.client_capabilities.connection_blocked,
            publisher: false,
            channels: FxHashMap::default(),
            confirming: Vec::new(),
            redispatching: Vec::new(),
            exclusive_queues: Vec::new(),
            confirm_wake: Arc::new(ConfirmWake::default()),
            pending: None,
            behind: Vec::new(),
            entry,
            _seats: n.seats,
        }
    }

    /// Run until the connection ends; always cleans up.
    pub async fn run<R: AsyncRead + Unpin>(
        mut self,
        reader: &mut FrameReader<R>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let end = self.frame_loop(reader, shutdown).await;
        // A frame that failed the connection may have left its reply held for the disk: settle
        // it (the close goes out after it either way).
        let _ = self.await_pending().await;
        self.out.release();
        if let End::Failed(error, class_id, method_id) = &end {
            tracing::info!(connection = self.id, code = error.code, text = %error.text, "closing connection");
            self.out.write(|b| encode_method(b, 0, &close_method(error, *class_id, *method_id)));
            self.await_close_ok(reader).await;
        }
        self.cleanup();
        if let End::ClientClosed = end {
            self.out.linger();
        }
        self.out.close();
        if let End::ClientClosed = end {
            // A client may still be writing what it queued behind its connection.close (amqplib
            // does). Closing the socket with that input unread would make the kernel answer with
            // a reset, and the client's next write fail: so read and drop until it closes its end.
            let drain = async { while reader.discard().await {} };
            let _ = tokio::time::timeout(CLIENT_CLOSE_DRAIN_TIMEOUT, drain).await;
        }
    }

    async fn frame_loop<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut FrameReader<R>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> End {
        // Two missed heartbeats (no bytes at all for twice the interval) end the connection.
        let read_timeout = (self.heartbeat_s > 0).then(|| Duration::from_secs(2 * self.heartbeat_s as u64));
        let durability = self.broker.durability().cloned();
        let transforms = self.broker.transform_book().clone();
        let alarms = self.broker.alarms().clone();
        let entry = self.entry.clone();
        let flow_control = self.broker.limits().flow_control;
        loop {
            loop {
                match reader.try_decode(self.frame_max) {
                    Ok(Some(frame)) => match self.handle_frame(frame) {
                        Flow::Continue => {}
                        Flow::Close(e, c, m) => return End::Failed(e, c, m),
                        Flow::Finished => return End::ClientClosed,
                    },
                    Ok(None) => break,
                    Err(e) => {
                        let (class_id, method_id) = e.method_ids();
                        return End::Failed(AmqpError::new(e.reply_code(), &e), class_id, method_id);
                    }
                }
                if let Err(e) = self.await_pending().await {
                    return End::Failed(e, 0, 0);
                }
            }
            self.flush_confirms();
            self.flush_redispatch();
            if !self.behind.is_empty() {
                // The consumers this batch fed were woken onto this worker, behind this task
                // and out of other workers' reach (tokio's next-task slot). Without this turn
                // a publisher that keeps its socket full reads on for tokio's whole budget
                // of 128 reads, about 100,000 small messages, while the backlog grows.
                tokio::task::yield_now().await;
                if flow_control {
                    if let Some(end) = self.held_for_consumers(shutdown).await {
                        return end;
                    }
                }
                self.behind.clear();
            }
            if self.out.over_watermark() {
                // A client that stopped reading must still be closable (by the API, a deleted
                // user or vhost, or shutdown) while we wait for its output to drain.
                tokio::select! {
                    _ = self.out.wait_drained() => {}
                    reason = entry.close_requested() => {
                        return End::Failed(AmqpError::new(reply_code::CONNECTION_FORCED, reason), 0, 0);
                    }
                    _ = shutdown.changed() => return End::Failed(shutdown_error(), 0, 0),
                }
            }
            if *shutdown.borrow() {
                return End::Failed(shutdown_error(), 0, 0);
            }
            if self.publisher && alarms.any() {
                if let Some(end) = self.blocked(shutdown).await {
                    return end;
                }
            }
            // Publishers stop being read while too much is on its way to the disk, or waiting
            // for transforms.
            let read = async {
                if let Some(d) = &durability {
                    d.wait_for_room().await;
                }
                transforms.wait_for_room().await;
                match read_timeout {
                    Some(t) => tokio::time::timeout(t, reader.fill()).await.ok(),
                    None => Some(reader.fill().await),
                }
            };
            tokio::select! {
                r = read => match r {
                    Some(Ok(true)) => {}
                    Some(Ok(false)) | Some(Err(ReadError::Io)) | Some(Err(ReadError::Codec(_))) => return End::Gone,
                    None => {
                        tracing::warn!(connection = self.id, heartbeat_s = self.heartbeat_s, "missed heartbeats from client, closing");
                        return End::Gone;
                    }
                },
                _ = self.confirm_wake.notify.notified() => self.flush_settled_confirms(),
                // A publisher is blocked (and told) as soon as an alarm goes off.
                _ = alarms.wait_raised(), if self.publisher => {}
                _ = shutdown.changed() => return End::Failed(shutdown_error(), 0, 0),
                reason = entry.close_requested() => {
                    return End::Failed(AmqpError::new(reply_code::CONNECTION_FORCED, reason), 0, 0);
                }
            }
        }
    }

    /// Waits for what the last frame left pending on the disk, then lets its reply go: the held
    /// output after definition changes, or `tx.commit-ok` once the transaction's persistent
    /// messages are durable. A failed write ends the connection with 541.
    async fn await_pending(&mut self) -> Result<(), AmqpError> {
        match self.pending.take() {
            None => Ok(()),
            Some(Pending::Definitions(mark)) => {
                let durable = self.broker.wait_defs(mark).await;
                self.out.release();
                durable.map_err(|e| AmqpError::internal_error(format!("cannot write definitions to disk: {e}")))
            }
            Some(Pending::TxCommit { channel, wait }) => {
                if !wait.wait().await {
                    return Err(AmqpError::internal_error(
                        "cannot write the transaction's persistent messages to disk",
                    ));
                }
                if let Some(ch) = self.channels.get(&channel) {
                    ch.send(&self.out, Method::TxCommitOk);
                }
                Ok(())
            }
        }
    }

    async fn await_close_ok<R: AsyncRead + Unpin>(&mut self, reader: &mut FrameReader<R>) {
        let wait = async {
            loop {
                match reader.next_frame(self.frame_max.max(FRAME_MIN_SIZE)).await {
                    Ok(Some(Frame::Method { channel: 0, method: Method::ConnectionCloseOk })) => return,
                    Ok(Some(Frame::Method { channel: 0, method: Method::ConnectionClose(_) })) => {
                        self.out.write(|b| encode_method(b, 0, &Method::ConnectionCloseOk));
                        return;
                    }
                    Ok(Some(_)) => continue,
                    Err(ReadError::Codec(_)) => {
                        while reader.discard().await {}
                        return;
                    }
                    Ok(None) | Err(ReadError::Io) => return,
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_OK_TIMEOUT, wait).await;
    }

    /// Confirms the store settled since the last wake-up.
    fn flush_settled_confirms(&mut self) {
        for number in self.confirm_wake.take_ready() {
            if let Some(ch) = self.channels.get_mut(&number) {
                ch.flush_confirms(&self.out);
            }
        }
    }

    /// One coalesced basic.ack per channel that confirmed publishes in this read batch.
    fn flush_confirms(&mut self) {
        for number in self.confirming.drain(..) {
            if let Some(ch) = self.channels.get_mut(&number) {
                ch.flush_confirms(&self.out);
            }
        }
    }

    /// Deliver to the consumers of the channels whose settlements freed credit in this batch.
    fn flush_redispatch(&mut self) {
        for number in self.redispatching.drain(..) {
            if let Some(ch) = self.channels.get_mut(&number) {
                if std::mem::take(&mut ch.redispatch_due) {
                    ch.redispatch();
                }
            }
        }
    }

    fn handle_frame(&mut self, frame: Frame) -> Flow {
        if let Frame::Method { method: Method::BasicPublish(_), .. } = &frame {
            self.publisher = true;
        }
        let channel = frame.channel();
        if channel == 0 {
            return self.connection_frame(frame);
        }
        let channel_max = self.channel_max;
        let (mut ctx, channels) = self.split();
        let Some(ch) = channels.get_mut(&channel) else {
            return match frame {
                // As RabbitMQ: channel_max bounds how many channels are open, not their numbers.
                Frame::Method { method: Method::ChannelOpen(_), .. } if channels.len() >= usize::from(channel_max) => {
                    let e = AmqpError::not_allowed(format!(
                        "number of channels opened ({}) has reached the negotiated channel_max ({channel_max})",
                        channels.len()
                    ));
                    Flow::Close(e, 0, 0)
                }
                Frame::Method { method: Method::ChannelOpen(_), .. } => {
                    // As RabbitMQ: a user's channel limit closes the connection (530).
                    let seat = match ctx.broker.resource_limits().seat_channel(ctx.user) {
                        Ok(seat) => seat,
                        Err(reason) => return Flow::Close(AmqpError::not_allowed(reason), 0, 0),
                    };
                    let mut ch = Channel::new(channel, ctx.out.clone(), ctx.cancel_notify, ctx.broker);
                    ch.seat = Some(seat);
                    ch.send(ctx.out, Method::ChannelOpenOk(ChannelOpenOk::default()));
                    ctx.entry.add_channel(channel, ch.sink.clone());
                    channels.insert(channel, ch);
                    Flow::Continue
                }
                Frame::Method { method, .. } => Flow::Close(
                    AmqpError::channel_error("expected 'channel.open'"),
                    method.class_id(),
                    method.method_id(),
                ),
                _ => Flow::Close(AmqpError::channel_error(format!("frame on unopened channel {channel}")), 0, 0),
            };
        };
        if ch.state == ChannelState::Closing {
            match frame {
                Frame::Method { method: Method::ChannelCloseOk, .. } => {
                    channels.remove(&channel);
                    ctx.entry.remove_channel(channel);
                }
                // Both sides closed at once: answer theirs, and keep waiting for the close-ok
                // to ours (removing the channel now would make that close-ok a frame on an
                // unopened channel, a connection error).
                Frame::Method { method: Method::ChannelClose(_), .. } => ch.send(ctx.out, Method::ChannelCloseOk),
                _ => {} // dropped while the close handshake completes, as the spec asks
            }
            return Flow::Continue;
        }
        let (result, class_id, method_id) = match frame {
            Frame::Method { method: Method::ChannelClose(_), .. } => {
                close_channel(&mut ctx, ch);
                ch.send(ctx.out, Method::ChannelCloseOk);
                channels.remove(&channel);
                ctx.entry.remove_channel(channel);
                return Flow::Continue;
            }
            Frame::Method { method: Method::ChannelOpen(_), .. } => {
                return Flow::Close(AmqpError::channel_error("second 'channel.open' seen"), 20, 10)
            }
            // Framing errors name the publish whose content was expected, as RabbitMQ does.
            Frame::Method { method, .. } if ch.content.is_some() => {
                let expected = match ch.content.as_ref().is_some_and(|c| c.properties.is_some()) {
                    true => "content body",
                    false => "content header for class 60",
                };
                let e = AmqpError::unexpected_frame(format!(
                    "expected {expected}, got non content frame instead ({})",
                    method.name()
                ));
                return Flow::Close(e, 60, 40);
            }
            Frame::Header { .. } | Frame::Body { .. } if ch.content.is_none() => {
                let e = AmqpError::unexpected_frame("expected method frame, got non method frame instead");
                return Flow::Close(e, 0, 0);
            }
            Frame::Method { method, .. } => {
                let ids = (method.class_id(), method.method_id());
                // Exchange and queue methods may change durable definitions: their reply is
                // held until the change is on disk.
                let changes_defs = ctx.broker.durability().is_some() && matches!(ids.0, 40 | 50);
                let before = changes_defs.then(|| {
                    ctx.out.hold();
                    ctx.broker.defs_mark()
                });
                let result = ch.handle_method(&mut ctx, method);
                if let Some(before) = before {
                    let now = ctx.broker.defs_mark();
                    if now > before && !ctx.broker.defs_durable(now) {
                        *ctx.pending = Some(Pending::Definitions(now));
                    } else {
                        ctx.out.release();
                    }
                }
                (result, ids.0, ids.1)
            }
            Frame::Header { class_id, body_size, properties, .. } => {
                (ch.content_header(&mut ctx, class_id, body_size, properties), 60, 40)
            }
            Frame::Body { payload, .. } => (ch.content_body(&mut ctx, payload), 60, 40),
            Frame::Heartbeat { .. } => (Ok(()), 0, 0),
        };
        match result {
            Ok(()) => {
                let (confirms, redispatch) = (ch.has_pending_confirms(), ch.redispatch_due);
                if confirms && !self.confirming.contains(&channel) {
                    self.confirming.push(channel);
                }
                if redispatch && !self.redispatching.contains(&channel) {
                    self.redispatching.push(channel);
                }
                Flow::Continue
            }
            Err(e) if e.is_connection_error() => Flow::Close(e, class_id, method_id),
            Err(e) => {
                tracing::debug!(connection = ctx.connection_id, channel, code = e.code, text = %e.text, "channel exception");
                close_channel(&mut ctx, ch);
                ch.content = None;
                ch.state = ChannelState::Closing;
                let close = Method::ChannelClose(ChannelClose {
                    reply_code: e.code,
                    reply_text: ShortStr::truncated(&e.text),
                    class_id,
                    method_id,
                });
                ch.send(ctx.out, close);
                Flow::Continue
            }
        }
    }

    fn connection_frame(&mut self, frame: Frame) -> Flow {
        match frame {
            Frame::Heartbeat { .. } => Flow::Continue,
            Frame::Method { method: Method::ConnectionClose(_), .. } => {
                self.out.write(|b| encode_method(b, 0, &Method::ConnectionCloseOk));
                Flow::Finished
            }
            Frame::Method { method: Method::ConnectionCloseOk, .. } => Flow::Finished,
            Frame::Method { method: Method::ConnectionUpdateSecret(_), .. } => {
                self.out.write(|b| encode_method(b, 0, &Method::ConnectionUpdateSecretOk));
                Flow::Continue
            }
            Frame::Method { method: Method::ConnectionBlocked(_) | Method::ConnectionUnblocked, .. } => Flow::Continue,
            // RabbitMQ's words and code (504) for any other method on channel 0.
            Frame::Method { method, .. } => Flow::Close(
                AmqpError::channel_error(format!(
                    "unexpected method in connection state running ({} on channel 0)",
                    method.name()
                )),
                method.class_id(),
                method.method_id(),
            ),
            Frame::Header { .. } | Frame::Body { .. } => {
                Flow::Close(AmqpError::unexpected_frame("content frame on channel 0"), 0, 0)
            }
        }
    }

    /// The context channel methods run in, and the channels, borrowed together.
    fn split(&mut self) -> (Ctx<'_>, &mut FxHashMap<u16, Channel>) {
        let Connection {
            broker,
            vhost,
            id,
            out,
            user,
            exclusive_queues,
            cancel_notify,
            channels,
            confirm_wake,
            pending,
            behind,
            entry,
            ..
        } = self;
        let ctx = Ctx {
            broker,
            vhost,
            connection_id: *id,
            out,
            user,
            exclusive_queues,
            cancel_notify: *cancel_notify,
            confirm_wake,
            pending,
            behind,
            entry,
        };
        (ctx, channels)
    }

    /// Release everything the connection holds: requeue unacked, cancel consumers, delete
    /// exclusive queues.
    fn cleanup(&mut self) {
        let (mut ctx, channels) = self.split();
        for (_, mut ch) in channels.drain() {
            close_channel(&mut ctx, &mut ch);
        }
        for q in std::mem::take(ctx.exclusive_queues) {
            ctx.vhost.remove_queue(&q);
        }
    }
}

/// Release a channel's consumers and requeue its unacked messages (redelivered=true).
fn close_channel(ctx: &mut Ctx<'_>, ch: &mut Channel) {
    let tags: Vec<ShortStr> = {
        let mut st = ch.sink.state.lock();
        st.closed = true;
        st.consumers.keys().cloned().collect()
    };
    for tag in tags {
        ch.cancel(ctx, &tag);
    }
    let unacked = ch.sink.state.lock().take_all_unacked();
    crate::basic::apply_settlement(unacked, crate::basic::Settlement::Requeue);
}

fn shutdown_error() -> AmqpError {
    AmqpError::new(reply_code::CONNECTION_FORCED, "broker forced connection closure with reason 'shutdown'")
}
