//! Shared setup for the integration tests: a real Warren server on 127.0.0.1:0, client helpers for
//! lapin and amqprs, and a raw AMQP client (amqp-codec over a TcpStream) for what no client
//! library can express.
#![allow(dead_code)]

pub mod child;
pub mod headers;

use amqp_codec::{decode_frame, encode_method, FieldTable as RawTable, FieldValue, Frame, Method};
use bytes::BytesMut;
use futures_lite::StreamExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single expected event may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// A running broker with its own data directory.
pub struct TestServer {
    running: Option<warren::Running>,
    pub addr: SocketAddr,
    config: warren::Config,
    fs: Arc<dyn warren_store::FileSystem>,
    dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// A server whose clock moves only by [`TestServer::advance_ms`], so timers (TTL, expiry,
    /// timeouts) fire exactly when a test says.
    pub async fn start_manual_clock(configure: impl FnOnce(&mut warren::Config)) -> TestServer {
        Self::start_with(|c| {
            c.clock = warren_broker::ClockKind::Manual;
            configure(c)
        })
        .await
    }

    /// Moves a manual clock forward and runs, before returning, what became due.
    pub fn advance_ms(&self, ms: u64) {
        self.broker().timers().advance(ms);
    }

    pub async fn start_with(configure: impl FnOnce(&mut warren::Config)) -> TestServer {
        Self::start_on(warren_store::StdFs::shared(), configure).await
    }

    /// A server whose store runs on `fs` (a `FaultyFs` to inject faults).
    pub async fn start_on(
        fs: Arc<dyn warren_store::FileSystem>,
        configure: impl FnOnce(&mut warren::Config),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = warren::Config {
            bind: "127.0.0.1".parse().unwrap(),
            amqp_port: 0,
            http_port: 0,
            data_dir: dir.path().join("data"),
            // The tests run the broker in their own process: its transforms run in the real binary.
            transform_worker: Some(env!("CARGO_BIN_EXE_warren").into()),
            ..Default::default()
        };
        configure(&mut config);
        Self::run(config, fs, dir).await
    }

    async fn run(config: warren::Config, fs: Arc<dyn warren_store::FileSystem>, dir: tempfile::TempDir) -> TestServer {
        let running = warren::start_with_fs(config.clone(), fs.clone()).await.expect("server starts");
        let addr = running.amqp_addr;
        TestServer { running: Some(running), addr, config, fs, dir }
    }

    /// Stops the server (as `shutdown`) and starts a new one on the same data directory and
    /// configuration (on a new port).
    pub async fn restart(self) -> TestServer {
        let fs = self.fs.clone();
        self.restart_on(fs).await
    }

    /// Stops the server and starts a new one on the same configuration with its store on `fs`
    /// (the view of a `FaultyFs` after a simulated crash).
    pub async fn restart_on(mut self, fs: Arc<dyn warren_store::FileSystem>) -> TestServer {
        if let Some(running) = self.running.take() {
            within(running.shutdown()).await;
        }
        let TestServer { config, dir, .. } = self;
        Self::run(config, fs, dir).await
    }

    /// The URL of `path` on the HTTP API.
    pub fn http_url(&self, path: &str) -> String {
        let addr = self.running.as_ref().expect("running").http_addr;
        format!("http://127.0.0.1:{}{path}", addr.port())
    }

    /// The running server (its listeners' addresses).
    pub fn running(&self) -> &warren::Running {
        self.running.as_ref().expect("server running")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    /// What the server restored at start.
    pub fn restored(&self) -> &warren_broker::durable::RestoreReport {
        &self.running.as_ref().expect("server running").restored
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// URI for guest/guest on vhost "/".
    pub fn uri(&self) -> String {
        self.uri_for("guest", "guest", "%2f")
    }

    /// URI for a user and an already percent-encoded vhost.
    pub fn uri_for(&self, user: &str, password: &str, vhost: &str) -> String {
        format!("amqp://{user}:{password}@127.0.0.1:{}/{vhost}", self.port())
    }

    /// A lapin connection as guest to "/".
    pub async fn lapin(&self) -> lapin::Connection {
        within(lapin::Connection::connect(&self.uri(), lapin::ConnectionProperties::default()))
            .await
            .expect("lapin connects")
    }

    /// A lapin connection and one open channel.
    pub async fn lapin_channel(&self) -> (lapin::Connection, lapin::Channel) {
        let conn = self.lapin().await;
        let ch = within(conn.create_channel()).await.expect("channel opens");
        (conn, ch)
    }

    pub fn amqprs_args(&self) -> amqprs::connection::OpenConnectionArguments {
        amqprs::connection::OpenConnectionArguments::new("127.0.0.1", self.port(), "guest", "guest")
    }

    /// An amqprs connection as guest to "/".
    pub async fn amqprs(&self) -> amqprs::connection::Connection {
        within(amqprs::connection::Connection::open(&self.amqprs_args())).await.expect("amqprs connects")
    }

    /// Close every connection with 320 and stop the server.
    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            within(running.shutdown()).await;
        }
    }

    pub fn broker(&self) -> &warren_broker::Broker {
        &self.running.as_ref().expect("server running").broker
    }
}

/// Await `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(DEADLINE, fut).await.expect("timed out waiting")
}

/// Poll `cond` until it holds, failing the test after [`DEADLINE`]. For state the broker changes
/// after it has answered the client (cleanup after close), where no client event marks the moment.
pub async fn eventually(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The AMQP reply code carried by a lapin error, if it is a protocol error.
pub fn code_of(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// Assert that `result` failed with the AMQP reply `code`.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, lapin::Error>, code: u16) {
    match result {
        Ok(v) => panic!("expected AMQP error {code}, got Ok({v:?})"),
        Err(e) => assert_eq!(code_of(&e), Some(code), "expected AMQP error {code}, got {e:?}"),
    }
}

/// A configured user with every permission in `/`, accepted from any address.
pub fn user_on_root(name: &str, password: &str, tags: &[&str]) -> warren_broker::UserConfig {
    warren_broker::UserConfig {
        name: name.into(),
        password: password.into(),
        vhosts: Some(vec!["/".into()]),
        permissions: Default::default(),
        loopback_only: false,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// Unique names per test (and per call) so tests never share broker objects.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The next delivery of a lapin consumer, within the deadline.
/// A channel of `conn` in confirm mode.
pub async fn confirmed_channel(conn: &lapin::Connection) -> lapin::Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(lapin::options::ConfirmSelectOptions::default())).await.unwrap();
    ch
}

/// The next `n` deliveries of `consumer`.
pub async fn receive_n(consumer: &mut lapin::Consumer, n: usize) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next_delivery(consumer).await);
    }
    out
}

pub async fn next_delivery(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    within(consumer.next()).await.expect("consumer stream ended").expect("delivery error")
}

/// Wait for the connection-level error event (e.g. a connection.close from the server) and return
/// its reply code. The listener must have been created before the error happened.
pub async fn next_connection_error(
    events: &mut (impl futures_lite::Stream<Item = lapin::Event> + Unpin),
) -> Option<u16> {
    within(async {
        while let Some(event) = events.next().await {
            if let lapin::Event::Error(e) = event {
                return code_of(&e);
            }
        }
        None
    })
    .await
}

pub mod http;

pub mod q {
    //! Short-hands for lapin queue and exchange operations.
    use super::within;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Channel};

    pub async fn declare(ch: &Channel, name: &str) -> lapin::Queue {
        within(ch.queue_declare(name.into(), QueueDeclareOptions::default(), FieldTable::default()))
            .await
            .expect("queue.declare")
    }

    /// Declares `dlq`, and `queue` dead-lettering into it through the default exchange.
    pub async fn declare_dead_lettering(ch: &Channel, queue: &str, dlq: &str) {
        use lapin::types::{AMQPValue, LongString};
        declare(ch, dlq).await;
        let mut args = FieldTable::default();
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
        args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(dlq)));
        within(ch.queue_declare(queue.into(), QueueDeclareOptions::default(), args)).await.expect("queue.declare");
    }

    /// Passive declare: (message_count, consumer_count), or the error.
    pub async fn counts(ch: &Channel, name: &str) -> Result<(u32, u32), lapin::Error> {
        let opts = QueueDeclareOptions { passive: true, ..Default::default() };
        let q = within(ch.queue_declare(name.into(), opts, FieldTable::default())).await?;
        Ok((q.message_count(), q.consumer_count()))
    }

    pub async fn publish(ch: &Channel, exchange: &str, rk: &str, body: &[u8]) {
        publish_props(ch, exchange, rk, body, BasicProperties::default()).await
    }

    pub async fn publish_props(ch: &Channel, exchange: &str, rk: &str, body: &[u8], props: BasicProperties) {
        let confirm = within(ch.basic_publish(exchange.into(), rk.into(), BasicPublishOptions::default(), body, props))
            .await
            .expect("basic.publish");
        within(confirm).await.expect("publish confirm");
    }

    /// basic.get (no_ack) until the queue is empty: the bodies in order.
    pub async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await.unwrap() {
            bodies.push(m.delivery.data);
        }
        bodies
    }

    /// basic.get no_ack: the body, or None on get-empty.
    pub async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
        within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("basic.get")
            .map(|m| m.delivery.data)
    }

    pub async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> lapin::Consumer {
        let opts = BasicConsumeOptions { no_ack, ..Default::default() };
        within(ch.basic_consume(queue.into(), "".into(), opts, FieldTable::default())).await.expect("basic.consume")
    }

    pub async fn bind(ch: &Channel, queue: &str, exchange: &str, rk: &str) {
        bind_args(ch, queue, exchange, rk, FieldTable::default()).await
    }

    pub async fn bind_args(ch: &Channel, queue: &str, exchange: &str, rk: &str, args: FieldTable) {
        within(ch.queue_bind(queue.into(), exchange.into(), rk.into(), QueueBindOptions::default(), args))
            .await
            .expect("queue.bind")
    }
}

// ---- raw client ---------------------------------------------------------------------------------

/// A hand-driven AMQP client: writes frames with amqp-codec and reads the server's frames.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    /// The largest frame we accept from the server.
    pub frame_max: u32,
}

/// What the server's connection.start offered.
pub struct RawStart {
    pub server_properties: RawTable,
    pub mechanisms: String,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = within(TcpStream::connect(addr)).await.expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        RawClient { stream, buf: BytesMut::with_capacity(64 * 1024), frame_max: 0 }
    }

    /// Connect and complete the handshake as guest/guest on "/", answering tune with `heartbeat`.
    /// Returns the connection.tune the server offered.
    pub async fn open(addr: SocketAddr, heartbeat: u16) -> (RawClient, amqp_codec::ConnectionTune) {
        let mut c = RawClient::connect(addr).await;
        let start = c.start().await;
        assert!(start.mechanisms.split(' ').any(|m| m == "PLAIN"));
        c.send(0, Method::ConnectionStartOk(start_ok_plain("guest", "guest"))).await;
        let tune = match c.expect_method(0).await {
            Method::ConnectionTune(t) => t,
            other => panic!("expected connection.tune, got {other:?}"),
        };
        c.frame_max = tune.frame_max;
        let tune_ok =
            amqp_codec::ConnectionTuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat };
        c.send(0, Method::ConnectionTuneOk(tune_ok)).await;
        c.send(
            0,
            Method::ConnectionOpen(amqp_codec::ConnectionOpen { virtual_host: "/".into(), ..Default::default() }),
        )
        .await;
        match c.expect_method(0).await {
            Method::ConnectionOpenOk(_) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
        (c, tune)
    }

    /// Send the protocol header and read connection.start.
    pub async fn start(&mut self) -> RawStart {
        self.write_raw(amqp_codec::PROTOCOL_HEADER).await;
        match self.expect_method(0).await {
            Method::ConnectionStart(s) => RawStart {
                server_properties: s.server_properties,
                mechanisms: String::from_utf8_lossy(&s.mechanisms).into_owned(),
            },
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        within(self.stream.write_all(bytes)).await.expect("write");
    }

    pub async fn send(&mut self, channel: u16, method: Method) {
        let mut b = BytesMut::new();
        encode_method(&mut b, channel, &method);
        self.write_raw(&b).await;
    }

    /// Publish a message with default properties on `channel`.
    pub fn encode_publish(buf: &mut BytesMut, channel: u16, exchange: &str, rk: &str, body: &[u8], frame_max: u32) {
        let publish =
            amqp_codec::BasicPublish { exchange: exchange.into(), routing_key: rk.into(), ..Default::default() };
        encode_method(buf, channel, &Method::BasicPublish(publish));
        let props = amqp_codec::BasicProperties::default().to_raw();
        amqp_codec::encode_content_header(buf, channel, amqp_codec::BASIC_CLASS_ID, body.len() as u64, &props);
        amqp_codec::encode_body(buf, channel, body, frame_max);
    }

    /// The next frame, or None at end of stream; fails the test after the deadline.
    pub async fn read_frame(&mut self) -> Option<Frame> {
        within(self.read_frame_no_deadline()).await
    }

    /// The next frame (no deadline; wrap it in your own timeout), None at end of stream or on a
    /// socket error.
    pub async fn read_frame_no_deadline(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = decode_frame(&mut self.buf, self.frame_max).expect("server sent a valid frame") {
                return Some(frame);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next method frame on `channel`, skipping heartbeats.
    pub async fn expect_method(&mut self, channel: u16) -> Method {
        loop {
            match self.read_frame().await {
                Some(Frame::Heartbeat { .. }) => continue,
                Some(Frame::Method { channel: c, method }) if c == channel => return method,
                Some(other) => panic!("expected a method on channel {channel}, got {other:?}"),
                None => panic!("connection closed while waiting for a method on channel {channel}"),
            }
        }
    }

    /// Read until the server's connection.close; answers it with close-ok and returns it.
    pub async fn expect_connection_close(&mut self) -> amqp_codec::ConnectionClose {
        loop {
            match self.read_frame().await {
                Some(Frame::Method { channel: 0, method: Method::ConnectionClose(close) }) => {
                    self.send(0, Method::ConnectionCloseOk).await;
                    return close;
                }
                Some(_) => continue,
                None => panic!("connection ended without connection.close"),
            }
        }
    }

    /// Wait (bounded) until the server closes the socket.
    pub async fn expect_eof(&mut self, deadline: Duration) {
        let r = tokio::time::timeout(deadline, async { while self.read_frame_no_deadline().await.is_some() {} }).await;
        assert!(r.is_ok(), "server did not close the socket within {deadline:?}");
    }

    pub async fn open_channel(&mut self, channel: u16) {
        self.send(channel, Method::ChannelOpen(Default::default())).await;
        match self.expect_method(channel).await {
            Method::ChannelOpenOk(_) => {}
            other => panic!("expected channel.open-ok, got {other:?}"),
        }
    }
}

pub fn start_ok_plain(user: &str, password: &str) -> amqp_codec::ConnectionStartOk {
    amqp_codec::ConnectionStartOk {
        client_properties: RawTable::new(),
        mechanism: "PLAIN".into(),
        response: bytes::Bytes::from(format!("\0{user}\0{password}").into_bytes()),
        locale: "en_US".into(),
    }
}

/// A boolean from a field table, if present.
pub fn table_bool(table: &RawTable, key: &str) -> Option<bool> {
    table.get(key).and_then(FieldValue::as_bool)
}

// ---- amqprs -------------------------------------------------------------------------------------

/// What the broker told an amqprs channel asynchronously.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelEvent {
    /// channel.close from the server, with its reply code.
    Close(u16),
    /// Broker-initiated basic.cancel for this consumer tag.
    Cancel(String),
    /// basic.ack in confirm mode: (delivery tag, multiple).
    Ack(u64, bool),
    /// basic.nack in confirm mode: (delivery tag, multiple).
    Nack(u64, bool),
    /// basic.return: reply code.
    Return(u16),
}

/// An amqprs channel callback that forwards every event to a channel the test reads.
pub struct EventCallback(pub tokio::sync::mpsc::UnboundedSender<ChannelEvent>);

impl EventCallback {
    pub fn new() -> (EventCallback, tokio::sync::mpsc::UnboundedReceiver<ChannelEvent>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (EventCallback(tx), rx)
    }
}

#[async_trait::async_trait]
impl amqprs::callbacks::ChannelCallback for EventCallback {
    async fn close(
        &mut self,
        _: &amqprs::channel::Channel,
        close: amqprs::CloseChannel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(ChannelEvent::Close(close.reply_code()));
        Ok(())
    }
    async fn cancel(
        &mut self,
        _: &amqprs::channel::Channel,
        cancel: amqprs::Cancel,
    ) -> Result<(), amqprs::error::Error> {
        let _ = self.0.send(ChannelEvent::Cancel(cancel.consumer_tag().clone()));
        Ok(())
    }
    async fn flow(&mut self, _: &amqprs::channel::Channel, active: bool) -> Result<bool, amqprs::error::Error> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &amqprs::channel::Channel, ack: amqprs::Ack) {
        let _ = self.0.send(ChannelEvent::Ack(ack.delivery_tag(), ack.mutiple()));
    }
    async fn publish_nack(&mut self, _: &amqprs::channel::Channel, nack: amqprs::Nack) {
        let _ = self.0.send(ChannelEvent::Nack(nack.delivery_tag(), nack.multiple()));
    }
    async fn publish_return(
        &mut self,
        _: &amqprs::channel::Channel,
        ret: amqprs::Return,
        _: amqprs::BasicProperties,
        _: Vec<u8>,
    ) {
        let _ = self.0.send(ChannelEvent::Return(ret.reply_code()));
    }
}

/// An amqprs channel with an [`EventCallback`] registered.
pub async fn amqprs_channel(
    conn: &amqprs::connection::Connection,
) -> (amqprs::channel::Channel, tokio::sync::mpsc::UnboundedReceiver<ChannelEvent>) {
    let ch = within(conn.open_channel(None)).await.expect("amqprs channel opens");
    let (cb, rx) = EventCallback::new();
    within(ch.register_callback(cb)).await.expect("register callback");
    (ch, rx)
}

/// The next event of an amqprs channel, within the deadline.
pub async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<ChannelEvent>) -> ChannelEvent {
    within(rx.recv()).await.expect("event channel closed")
}
