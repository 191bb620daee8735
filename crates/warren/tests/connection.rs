//! Connection-level behaviour: handshake, server properties, authentication (PLAIN, AMQPLAIN),
//! vhost access, tune (frame_max, channel_max, heartbeats), close and shutdown, and the connection
//! exceptions only a raw client can provoke (bad header, oversized frame, unopened channel,
//! unknown method).

mod common;

use amqp_codec::{FieldValue, Frame, Method};
use bytes::BytesMut;
use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CAPABILITIES: [&str; 8] = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_start_advertises_capabilities_and_mechanisms() {
    let server = TestServer::start().await;
    let mut raw = RawClient::connect(server.addr).await;
    let start = raw.start().await;
    let mechanisms: Vec<&str> = start.mechanisms.split(' ').collect();
    assert!(mechanisms.contains(&"PLAIN"), "mechanisms: {mechanisms:?}");
    assert!(mechanisms.contains(&"AMQPLAIN"), "mechanisms: {mechanisms:?}");
    let caps = start.server_properties.get("capabilities").and_then(FieldValue::as_table).expect("capabilities table");
    for cap in CAPABILITIES {
        assert_eq!(table_bool(caps, cap), Some(true), "capability {cap}");
    }
    let product = start.server_properties.get("product").and_then(FieldValue::as_str);
    assert_eq!(product, Some("Warren"));

    // The same, as a real client library sees it.
    let conn = server.amqprs().await;
    let props = conn.server_properties();
    let c = props.capabilities();
    assert!(c.publisher_confirms());
    assert!(c.exchange_exchange_bindings());
    assert!(c.basic_nack());
    assert!(c.consumer_cancel_notify());
    assert!(c.connection_blocked());
    assert!(c.authentication_failure_close());
    assert!(c.per_consumer_qos());
    assert!(c.direct_reply_to());
    assert_eq!(props.product(), "Warren");
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapin_handshake_negotiates_server_limits() {
    let server = TestServer::start_with(|c| {
        c.limits.heartbeat_s = 30;
        c.limits.frame_max = 65536;
        c.limits.channel_max = 100;
    })
    .await;
    let conn = server.lapin().await;
    assert!(conn.status().connected());
    let cfg = conn.configuration();
    assert_eq!(cfg.frame_max(), 65536);
    assert_eq!(cfg.channel_max(), 100);
    assert_eq!(cfg.heartbeat(), 30);
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("hs");
    let q = within(ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()))
        .await
        .unwrap();
    assert_eq!(q.name().as_str(), name);
    within(conn.close(200, "bye".into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_protocol_header_gets_ours_back_and_socket_closed() {
    let server = TestServer::start().await;
    for header in [&b"AMQP\x00\x00\x09\x00"[..], b"AMQP\x01\x01\x00\x0a", b"GET / HT"] {
        let mut raw = RawClient::connect(server.addr).await;
        raw.write_raw(header).await;
        let mut reply = Vec::new();
        within(raw.stream.read_to_end(&mut reply)).await.expect("read until EOF");
        assert_eq!(reply, b"AMQP\x00\x00\x09\x01", "reply to header {header:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_is_refused_with_403() {
    let server = TestServer::start().await;
    let uri = server.uri_for("guest", "wrong", "%2f");
    let err = within(Connection::connect(&uri, ConnectionProperties::default())).await.unwrap_err();
    assert_eq!(code_of(&err), Some(403), "{err:?}");

    let unknown_user = server.uri_for("nobody", "guest", "%2f");
    let err = within(Connection::connect(&unknown_user, ConnectionProperties::default())).await.unwrap_err();
    assert_eq!(code_of(&err), Some(403), "{err:?}");

    // On the wire: connection.close 403 ACCESS_REFUSED referring to connection.start-ok.
    let mut raw = RawClient::connect(server.addr).await;
    raw.start().await;
    raw.send(0, Method::ConnectionStartOk(start_ok_plain("guest", "nope"))).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 403);
    assert!(close.reply_text.as_str().starts_with("ACCESS_REFUSED"), "{:?}", close.reply_text);
    assert_eq!((close.class_id, close.method_id), (10, 11));
    raw.expect_eof(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqplain_login_works() {
    let server = TestServer::start().await;
    let uri = format!("{}?auth_mechanism=amqplain", server.uri());
    let conn = within(Connection::connect(&uri, ConnectionProperties::default())).await.expect("AMQPLAIN login");
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("amqplain");
    q::declare(&ch, &name).await;
    within(conn.close(200, "bye".into())).await.unwrap();

    let bad = format!("{}?auth_mechanism=amqplain", server.uri_for("guest", "bad", "%2f"));
    let err = within(Connection::connect(&bad, ConnectionProperties::default())).await.unwrap_err();
    assert_eq!(code_of(&err), Some(403), "{err:?}");

    // amqprs builds its AMQPLAIN response differently (typed field values); it must work too.
    let mut args = server.amqprs_args();
    args.credentials(amqprs::security::SecurityCredentials::new_amqplain("guest", "guest"));
    let conn = within(amqprs::connection::Connection::open(&args)).await.expect("amqprs AMQPLAIN login");
    assert!(conn.is_open());
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_vhost_is_refused_with_530() {
    let server = TestServer::start().await;
    let uri = server.uri_for("guest", "guest", "no-such-vhost");
    let err = within(Connection::connect(&uri, ConnectionProperties::default())).await.unwrap_err();
    assert_eq!(code_of(&err), Some(530), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_user_opens_only_listed_vhosts() {
    let server = TestServer::start_with(|c| {
        c.vhosts = vec!["/".into(), "staging".into()];
        c.users.push(user_on_root("app", "s3cret", &[]));
    })
    .await;
    let conn = within(Connection::connect(&server.uri_for("app", "s3cret", "%2f"), ConnectionProperties::default()))
        .await
        .expect("app may open /");
    let ch = within(conn.create_channel()).await.unwrap();
    q::declare(&ch, &unique("app")).await;
    within(conn.close(200, "bye".into())).await.unwrap();

    let err = within(Connection::connect(&server.uri_for("app", "s3cret", "staging"), ConnectionProperties::default()))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some(530), "{err:?}");

    let err = within(Connection::connect(&server.uri_for("app", "wrong", "%2f"), ConnectionProperties::default()))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), Some(403), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_frame_max_splits_large_bodies() {
    let server = TestServer::start_with(|c| c.limits.frame_max = 8192).await;
    let (conn, ch) = server.lapin_channel().await;
    assert_eq!(conn.configuration().frame_max(), 8192);
    let name = unique("big");
    q::declare(&ch, &name).await;
    let body: Vec<u8> = (0..100 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    q::publish(&ch, "", &name, &body).await;
    let mut consumer = q::consume(&ch, &name, true).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data.len(), body.len());
    assert!(d.data == body, "body differs after the round trip");

    // On the wire: the server never sends a frame above the negotiated 8192 bytes (the raw
    // client's decoder refuses larger frames), and the pieces add up to the body. A second queue
    // without consumers, so basic.get finds the message.
    let name2 = unique("big-raw");
    q::declare(&ch, &name2).await;
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    assert_eq!(tune.frame_max, 8192);
    raw.open_channel(1).await;
    raw.send(1, Method::ConfirmSelect(amqp_codec::ConfirmSelect { nowait: false })).await;
    assert_eq!(raw.expect_method(1).await, Method::ConfirmSelectOk);
    let mut buf = BytesMut::new();
    RawClient::encode_publish(&mut buf, 1, "", &name2, &body, 8192);
    raw.write_raw(&buf).await;
    match raw.expect_method(1).await {
        Method::BasicAck(ack) => assert_eq!(ack.delivery_tag, 1),
        other => panic!("expected the publish to be confirmed, got {other:?}"),
    }
    raw.send(
        1,
        Method::BasicGet(amqp_codec::BasicGet { queue: name2.as_str().into(), no_ack: true, ..Default::default() }),
    )
    .await;
    match raw.expect_method(1).await {
        Method::BasicGetOk(ok) => assert_eq!(ok.message_count, 0),
        other => panic!("expected get-ok, got {other:?}"),
    }
    let mut received = Vec::new();
    let mut body_frames = 0;
    let size = match raw.read_frame().await {
        Some(Frame::Header { body_size, .. }) => body_size as usize,
        other => panic!("expected a content header, got {other:?}"),
    };
    assert_eq!(size, body.len());
    while received.len() < size {
        match raw.read_frame().await {
            Some(Frame::Body { payload, .. }) => {
                assert!(payload.len() <= 8192 - 8);
                body_frames += 1;
                received.extend_from_slice(&payload);
            }
            other => panic!("expected a body frame, got {other:?}"),
        }
    }
    assert!(received == body);
    assert!(body_frames >= 13, "100 KiB in 8 KiB frames takes at least 13 frames, got {body_frames}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_max_is_enforced() {
    let server = TestServer::start_with(|c| c.limits.channel_max = 2).await;
    let conn = server.lapin().await;
    assert_eq!(conn.configuration().channel_max(), 2);
    let _c1 = within(conn.create_channel()).await.unwrap();
    let _c2 = within(conn.create_channel()).await.unwrap();
    assert!(within(conn.create_channel()).await.is_err(), "a third channel must not open");

    // A client that ignores the limit: the broker refuses the third channel with 530, as RabbitMQ
    // does ("number of channels opened (2) has reached the negotiated channel_max (2)").
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    assert_eq!(tune.channel_max, 2);
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.send(3, Method::ChannelOpen(Default::default())).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 530, "{close:?}");
    raw.expect_eof(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_completes_and_frees_resources() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let name = unique("excl-close");
    within(ch.queue_declare(
        name.as_str().into(),
        QueueDeclareOptions { exclusive: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(conn.close(200, "bye".into())).await.expect("close-ok received");
    assert!(!conn.status().connected());
    assert!(ch
        .basic_publish("".into(), "x".into(), BasicPublishOptions::default(), b"x", BasicProperties::default())
        .await
        .is_err());

    // The broker forgets the connection: its slot is freed and its exclusive queue deleted.
    eventually(|| server.broker().open_connections() == 0, "the connection slot to be freed").await;
    let (_other, ch2) = server.lapin_channel().await;
    assert_code(q::counts(&ch2, &name).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_closes_connections_with_320() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let mut events = conn.events_listener();
    let name = unique("shutdown");
    q::declare(&ch, &name).await;
    let mut consumer = q::consume(&ch, &name, false).await;
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    let amqprs_conn = server.amqprs().await;

    let stop = tokio::spawn(server.shutdown());
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 320);
    assert!(close.reply_text.as_str().starts_with("CONNECTION_FORCED"), "{:?}", close.reply_text);
    raw.expect_eof(DEADLINE).await;

    assert_eq!(next_connection_error(&mut events).await, Some(320));
    match within(consumer.next()).await {
        Some(Err(e)) => assert_eq!(code_of(&e), Some(320), "{e:?}"),
        None => {}
        Some(Ok(d)) => panic!("unexpected delivery {d:?}"),
    }
    within(stop).await.unwrap();
    assert!(!conn.status().connected());
    // amqprs saw the close too (its connection reports closed once the server is gone).
    eventually(|| !amqprs_conn.is_open(), "amqprs to see the connection closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_sent_and_a_silent_client_is_dropped() {
    let server = TestServer::start_with(|c| c.limits.heartbeat_s = 1).await;
    // A well-behaved client (lapin heartbeats on its own) must survive the same idle period.
    let (good, good_ch) = server.lapin_channel().await;
    assert_eq!(good.configuration().heartbeat(), 1);

    let (mut raw, tune) = RawClient::open(server.addr, 1).await;
    assert_eq!(tune.heartbeat, 1);
    let opened = Instant::now();
    let mut heartbeats = 0;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = raw.read_frame_no_deadline().await {
            match frame {
                Frame::Heartbeat { channel: 0 } => heartbeats += 1,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a silent client must be disconnected");
    let elapsed = opened.elapsed();
    assert!(heartbeats >= 1, "the server sent no heartbeat before dropping the client");
    assert!(elapsed >= Duration::from_millis(1500), "dropped too early: {elapsed:?}");

    // Meanwhile the heartbeating lapin connection is still usable.
    assert!(good.status().connected());
    q::declare(&good_ch, &unique("alive")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_is_a_501_frame_error() {
    let server = TestServer::start_with(|c| c.limits.frame_max = 4096).await;
    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    assert_eq!(tune.frame_max, 4096);
    raw.open_channel(1).await;
    let mut args = amqp_codec::FieldTable::new();
    args.insert("x-padding", FieldValue::LongStr(bytes::Bytes::from(vec![b'p'; 6000])));
    let declare = amqp_codec::QueueDeclare { queue: "too-big".into(), arguments: args, ..Default::default() };
    raw.send(1, Method::QueueDeclare(declare)).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 501, "{close:?}");
    raw.expect_eof(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_on_unopened_channel_is_504() {
    let server = TestServer::start().await;
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    let declare = amqp_codec::QueueDeclare { queue: "never".into(), ..Default::default() };
    raw.send(5, Method::QueueDeclare(declare)).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 504, "{close:?}");
    raw.expect_eof(DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_class_or_method_is_540() {
    let server = TestServer::start().await;
    // (class, method): an unknown method of a known class, and an unknown class.
    for (class_id, method_id) in [(60u16, 999u16), (99, 10)] {
        let (mut raw, _) = RawClient::open(server.addr, 0).await;
        raw.open_channel(1).await;
        let mut frame = vec![amqp_codec::FRAME_METHOD, 0, 1, 0, 0, 0, 4];
        frame.extend_from_slice(&class_id.to_be_bytes());
        frame.extend_from_slice(&method_id.to_be_bytes());
        frame.push(amqp_codec::FRAME_END);
        raw.write_raw(&frame).await;
        let close = raw.expect_connection_close().await;
        assert_eq!(close.reply_code, 540, "{class_id}.{method_id}: {close:?}");
        raw.expect_eof(DEADLINE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_from_raw_client_gets_close_ok() {
    let server = TestServer::start().await;
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    let close = amqp_codec::ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
    raw.send(0, Method::ConnectionClose(close)).await;
    assert_eq!(raw.expect_method(0).await, Method::ConnectionCloseOk);
    raw.expect_eof(DEADLINE).await;
    let _ = raw.stream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_must_finish_in_time() {
    let server = TestServer::start_with(|c| c.limits.handshake_timeout_ms = 300).await;
    // Silent after the protocol header: dropped once the handshake timeout passes.
    let mut raw = RawClient::connect(server.addr).await;
    let start = raw.start().await;
    assert!(!start.mechanisms.is_empty());
    let opened = Instant::now();
    raw.expect_eof(DEADLINE).await;
    assert!(opened.elapsed() >= Duration::from_millis(200), "dropped before the timeout: {:?}", opened.elapsed());
    // Silent from the start.
    let mut raw = RawClient::connect(server.addr).await;
    raw.expect_eof(DEADLINE).await;
    // A normal client is unaffected.
    let (_c, ch) = server.lapin_channel().await;
    q::declare(&ch, &unique("in-time")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 1).await;
    let first = server.lapin().await;
    // The second socket is closed without a word.
    let mut raw = RawClient::connect(server.addr).await;
    let _ = raw.stream.write_all(amqp_codec::PROTOCOL_HEADER).await;
    assert!(raw.read_frame().await.is_none(), "no connection.start over the limit");
    assert!(within(Connection::connect(&server.uri(), ConnectionProperties::default())).await.is_err());
    // Closing the first frees the slot.
    within(first.close(200, "bye".into())).await.unwrap();
    eventually(|| server.broker().open_connections() == 0, "the slot to be freed").await;
    let again = server.lapin().await;
    assert!(again.status().connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_ok_outside_the_offer_is_530() {
    let server = TestServer::start_with(|c| c.limits.frame_max = 65536).await;
    // (channel_max, frame_max) the client claims in tune-ok.
    for (channel_max, frame_max) in [(0u16, 1_000_000u32), (0, 1024), (5000, 0)] {
        let mut raw = RawClient::connect(server.addr).await;
        raw.start().await;
        raw.send(0, Method::ConnectionStartOk(start_ok_plain("guest", "guest"))).await;
        let tune = match raw.expect_method(0).await {
            Method::ConnectionTune(t) => t,
            other => panic!("expected tune, got {other:?}"),
        };
        assert_eq!(tune.frame_max, 65536);
        raw.send(0, Method::ConnectionTuneOk(amqp_codec::ConnectionTuneOk { channel_max, frame_max, heartbeat: 0 }))
            .await;
        raw.send(
            0,
            Method::ConnectionOpen(amqp_codec::ConnectionOpen { virtual_host: "/".into(), ..Default::default() }),
        )
        .await;
        let close = raw.expect_connection_close().await;
        assert_eq!(close.reply_code, 530, "tune-ok ({channel_max}, {frame_max}): {close:?}");
        raw.expect_eof(DEADLINE).await;
    }
}
