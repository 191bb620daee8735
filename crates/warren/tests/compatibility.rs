//! RabbitMQ behaviours that client libraries rely on in their everyday paths (issue 15): each
//! was seen to break an unmodified client, and each is checked here against the real server.
//! The differential check (`interop/differential/`) compares these and many more with RabbitMQ.

mod common;

use amqp_codec::{Frame, Method};
use bytes::BytesMut;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::ExchangeKind;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn no_args() -> FieldTable {
    FieldTable::default()
}

/// aio-pika's RPC object unbinds its reply queue when it closes, after the queue may be gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbind_is_idempotent_when_queue_exchange_or_binding_is_missing() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("unbind-q");
    let exchange = unique("unbind-x");
    q::declare(&ch, &queue).await;

    // No such binding, no such exchange, no such queue: unbind-ok each time, the channel stays open.
    within(ch.queue_unbind(queue.as_str().into(), "amq.direct".into(), "never".into(), no_args())).await.unwrap();
    within(ch.queue_unbind(queue.as_str().into(), exchange.as_str().into(), "k".into(), no_args())).await.unwrap();
    within(ch.queue_unbind(unique("gone").as_str().into(), "amq.direct".into(), "k".into(), no_args())).await.unwrap();
    within(ch.exchange_unbind(
        unique("gone").as_str().into(),
        "amq.direct".into(),
        "k".into(),
        ExchangeUnbindOptions::default(),
        no_args(),
    ))
    .await
    .unwrap();
    within(ch.exchange_unbind(
        "amq.fanout".into(),
        exchange.as_str().into(),
        "k".into(),
        ExchangeUnbindOptions::default(),
        no_args(),
    ))
    .await
    .unwrap();

    // A real binding is still removed, and twice is as good as once.
    within(ch.queue_bind(
        queue.as_str().into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        no_args(),
    ))
    .await
    .unwrap();
    for _ in 0..2 {
        within(ch.queue_unbind(queue.as_str().into(), "amq.direct".into(), "k".into(), no_args())).await.unwrap();
    }
    q::publish(&ch, "amq.direct", "k", b"unrouted").await;
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbinding_nothing_leaves_an_unbound_auto_delete_exchange_alone() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let exchange = unique("autodel-x");
    let opts = ExchangeDeclareOptions { auto_delete: true, ..Default::default() };
    within(ch.exchange_declare(exchange.as_str().into(), ExchangeKind::Direct, opts, no_args())).await.unwrap();
    within(ch.exchange_unbind(
        "amq.fanout".into(),
        exchange.as_str().into(),
        "k".into(),
        ExchangeUnbindOptions::default(),
        no_args(),
    ))
    .await
    .unwrap();
    let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
    within(ch.exchange_declare(exchange.as_str().into(), ExchangeKind::Direct, passive, no_args()))
        .await
        .expect("the exchange had no binding to lose, so it stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbinding_another_connections_exclusive_queue_is_refused_only_if_bound() {
    let server = TestServer::start().await;
    let (_owner, owner_ch) = server.lapin_channel().await;
    let queue = unique("excl-unbind");
    let excl = QueueDeclareOptions { exclusive: true, ..Default::default() };
    within(owner_ch.queue_declare(queue.as_str().into(), excl, no_args())).await.unwrap();
    let (_other, ch) = server.lapin_channel().await;
    within(ch.queue_unbind(queue.as_str().into(), "amq.direct".into(), "k".into(), no_args())).await.unwrap();

    within(owner_ch.queue_bind(
        queue.as_str().into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        no_args(),
    ))
    .await
    .unwrap();
    assert_code(within(ch.queue_unbind(queue.as_str().into(), "amq.direct".into(), "k".into(), no_args())).await, 405);
}

/// RabbitMQ answers 405 RESOURCE_LOCKED, which clients map to their own exception type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclaring_a_queue_with_another_exclusive_flag_is_resource_locked() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let queue = unique("excl-flag");
    let excl = QueueDeclareOptions { exclusive: true, ..Default::default() };
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.queue_declare(queue.as_str().into(), excl, no_args())).await.unwrap();
    // Durable differs too: the exclusive flag is checked first, as in RabbitMQ.
    let plain = QueueDeclareOptions { durable: true, ..Default::default() };
    assert_code(within(ch.queue_declare(queue.as_str().into(), plain, no_args())).await, 405);

    let other = unique("not-excl");
    let ch = within(conn.create_channel()).await.unwrap();
    q::declare(&ch, &other).await;
    assert_code(within(ch.queue_declare(other.as_str().into(), excl, no_args())).await, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_the_default_exchange_is_access_refused_even_passively() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    for passive in [true, false] {
        let ch = within(conn.create_channel()).await.unwrap();
        let opts = ExchangeDeclareOptions { passive, ..Default::default() };
        assert_code(within(ch.exchange_declare("".into(), ExchangeKind::Direct, opts, no_args())).await, 403);
    }
}

/// channel_max bounds how many channels are open at once, not which numbers they have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_channel_number_opens_while_fewer_than_channel_max_are_open() {
    let server = TestServer::start_with(|c| c.limits.channel_max = 2).await;
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    assert_eq!(tune.channel_max, 2);
    raw.open_channel(65535).await;
    raw.open_channel(3).await;
    raw.send(3, Method::ChannelClose(Default::default())).await;
    assert!(matches!(raw.expect_method(3).await, Method::ChannelCloseOk));
    raw.open_channel(1000).await;
    raw.send(7, Method::ChannelOpen(Default::default())).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 530, "{close:?}");
    assert_eq!((close.class_id, close.method_id), (0, 0), "{close:?}");
    assert!(close.reply_text.as_str().contains("opened (2)"), "{close:?}");
}

/// amqplib writes connection.close while publishes of another channel are still queued behind
/// it; a broker that closes the socket at once makes those writes fail (EPIPE), which crashes a
/// Node process. The broker reads and drops them until the client closes its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_connection_close_do_not_fail() {
    let server = TestServer::start().await;
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    let mut publishes = BytesMut::new();
    for _ in 0..100 {
        RawClient::encode_publish(&mut publishes, 1, "", "nowhere", b"in flight", tune.frame_max);
    }
    let mut close = BytesMut::new();
    amqp_codec::encode_method(&mut close, 0, &Method::ConnectionClose(Default::default()));
    close.extend_from_slice(&publishes);
    raw.write_raw(&close).await;
    loop {
        match raw.read_frame().await {
            Some(Frame::Method { channel: 0, method: Method::ConnectionCloseOk }) => break,
            Some(_) => continue,
            None => panic!("socket closed before close-ok"),
        }
    }
    // The broker has answered and shut its side; writes keep succeeding until we close ours.
    // (With the old behaviour the socket was reset and the second round failed.)
    for _ in 0..20 {
        within(raw.stream.write_all(&publishes)).await.expect("a write after close-ok must not fail");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nor does it half-close: the socket stays open for the client to close, as RabbitMQ
    // leaves it (amqp091-go reports an EOF right after close-ok as an error).
    let mut probe = [0u8; 1];
    let read = raw.stream.try_read(&mut probe);
    assert!(matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock), "{read:?}");
    within(raw.stream.shutdown()).await.unwrap();
    raw.expect_eof(DEADLINE).await;
    eventually(|| server.broker().open_connections() == 0, "the connection to be released").await;
}

/// Connection errors carry RabbitMQ's codes and name the method, so clients raise the same
/// exception types (each was found by the differential check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_have_rabbitmqs_codes_and_method_ids() {
    let server = TestServer::start().await;
    // Arguments that cannot be decoded: 501 naming queue.declare.
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    raw.write_raw(&[1, 0, 1, 0, 0, 0, 5, 0, 50, 0, 10, 0, 0xCE]).await;
    let close = raw.expect_connection_close().await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (501, 50, 10), "{close:?}");

    // A channel method on channel 0: 504 naming it.
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.send(0, Method::QueueDeclare(Default::default())).await;
    let close = raw.expect_connection_close().await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (504, 50, 10), "{close:?}");

    // A heartbeat on a channel other than 0: 505.
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.write_raw(&[8, 0, 1, 0, 0, 0, 0, 0xCE]).await;
    assert_eq!(raw.expect_connection_close().await.reply_code, 505);

    // A method where a publish's content was due: 505 naming basic.publish.
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    let publish = amqp_codec::BasicPublish { routing_key: "k".into(), ..Default::default() };
    raw.send(1, Method::BasicPublish(publish)).await;
    raw.send(1, Method::BasicQos(Default::default())).await;
    let close = raw.expect_connection_close().await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (505, 60, 40), "{close:?}");
}

/// The channel.close the broker sends on `channel` (answered with close-ok).
async fn expect_channel_close(raw: &mut RawClient, channel: u16) -> amqp_codec::ChannelClose {
    loop {
        match raw.expect_method(channel).await {
            Method::ChannelClose(close) => {
                raw.send(channel, Method::ChannelCloseOk).await;
                return close;
            }
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_with_an_unknown_delivery_mode_and_multiple_acks_of_unknown_tags_are_refused() {
    let server = TestServer::start().await;
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    let queue = unique("mode");
    let declare = amqp_codec::QueueDeclare { queue: queue.as_str().into(), ..Default::default() };
    raw.send(1, Method::QueueDeclare(declare)).await;
    assert!(matches!(raw.expect_method(1).await, Method::QueueDeclareOk(_)));

    let mut b = BytesMut::new();
    let publish = amqp_codec::BasicPublish { routing_key: queue.as_str().into(), ..Default::default() };
    amqp_codec::encode_method(&mut b, 1, &Method::BasicPublish(publish));
    let props = amqp_codec::BasicProperties { delivery_mode: Some(3), ..Default::default() }.to_raw();
    amqp_codec::encode_content_header(&mut b, 1, amqp_codec::BASIC_CLASS_ID, 1, &props);
    amqp_codec::encode_body(&mut b, 1, b"x", tune.frame_max);
    raw.write_raw(&b).await;
    let close = expect_channel_close(&mut raw, 1).await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (406, 60, 40), "{close:?}");

    // Tag 5 was never delivered: a multiple ack up to it is refused, as in RabbitMQ, even
    // though tag 1 is unacked.
    raw.open_channel(2).await;
    let mut b = BytesMut::new();
    RawClient::encode_publish(&mut b, 2, "", &queue, b"one", tune.frame_max);
    raw.write_raw(&b).await;
    raw.send(2, Method::BasicGet(amqp_codec::BasicGet { queue: queue.as_str().into(), ..Default::default() })).await;
    assert!(matches!(raw.expect_method(2).await, Method::BasicGetOk(ok) if ok.delivery_tag == 1));
    assert!(matches!(raw.read_frame().await, Some(Frame::Header { .. })));
    assert!(matches!(raw.read_frame().await, Some(Frame::Body { .. })));
    raw.send(2, Method::BasicAck(amqp_codec::BasicAck { delivery_tag: 5, multiple: true })).await;
    let close = expect_channel_close(&mut raw, 2).await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (406, 60, 80), "{close:?}");
}

/// Both sides close a channel at once (amqp091-go's issue 43 test): the broker answers the
/// client's close and still waits for the client's close-ok to its own, and the connection lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closed_by_both_sides_at_once_leaves_the_connection_open() {
    let server = TestServer::start().await;
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    let mut b = BytesMut::new();
    RawClient::encode_publish(&mut b, 1, &unique("missing"), "k", b"x", tune.frame_max);
    let close = amqp_codec::ChannelClose { reply_code: 200, ..Default::default() };
    amqp_codec::encode_method(&mut b, 1, &Method::ChannelClose(close));
    raw.write_raw(&b).await;
    match raw.expect_method(1).await {
        Method::ChannelClose(c) => assert_eq!(c.reply_code, 404, "{c:?}"),
        other => panic!("expected the broker's channel.close, got {other:?}"),
    }
    raw.send(1, Method::ChannelCloseOk).await;
    assert!(matches!(raw.expect_method(1).await, Method::ChannelCloseOk));
    raw.open_channel(2).await;
    raw.open_channel(1).await;
    let declare = amqp_codec::ExchangeDeclare { exchange: "amq.direct".into(), passive: true, ..Default::default() };
    raw.send(2, Method::ExchangeDeclare(declare)).await;
    assert!(matches!(raw.expect_method(2).await, Method::ExchangeDeclareOk));
}
