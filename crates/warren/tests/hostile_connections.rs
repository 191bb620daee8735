//! Connections that try to wear the broker down: too many from one address, too many that never
//! log in, HTTP clients that trickle their headers or body or send oversized ones. Each is
//! turned away or cut off by its bound while normal clients go on.

mod common;

use common::http::{http, send};
use common::*;
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(10);

/// Reads until the peer closes; what it sent. Fails the test if it stays open past the deadline.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open; it sent {:?}", String::from_utf8_lossy(&got));
    got
}

fn http_addr(server: &TestServer) -> std::net::SocketAddr {
    server.running().http_addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_opening_connections_too_fast_is_turned_away_on_amqp_and_http() {
    let server = TestServer::start_with(|c| c.limits.connection_rate_per_address = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(RawClient::open(server.addr, 0).await.0);
    }
    // The fourth AMQP connection within the second is closed before connection.start.
    let mut fourth = RawClient::connect(server.addr).await;
    fourth.write_raw(amqp_codec::PROTOCOL_HEADER).await;
    assert!(fourth.read_frame().await.is_none(), "no connection.start over the rate");
    // HTTP counts its own connections by the same rate: a fresh client's first few get in.
    let mut refused = None;
    for _ in 0..5 {
        let mut s = TcpStream::connect(http_addr(&server)).await.unwrap();
        s.write_all(b"GET /api/overview HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let answer = String::from_utf8(read_to_close(&mut s).await).unwrap();
        if answer.starts_with("HTTP/1.1 503") {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("an HTTP connection over the rate is refused");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    // The rate refills: a second later the address is welcome again.
    let mut again = None;
    let started = Instant::now();
    while again.is_none() && started.elapsed() < DEADLINE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut c = RawClient::connect(server.addr).await;
        c.write_raw(amqp_codec::PROTOCOL_HEADER).await;
        again = c.read_frame().await;
    }
    assert!(again.is_some(), "the address could connect again once its rate refilled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_log_in_are_bounded_and_timed_out() {
    let server = TestServer::start_with(|c| {
        c.limits.max_unauthenticated_connections = 2;
        c.limits.handshake_timeout_ms = 500;
    })
    .await;
    // Two sockets that say nothing hold the handshake slots.
    let silent: Vec<TcpStream> =
        vec![TcpStream::connect(server.addr).await.unwrap(), TcpStream::connect(server.addr).await.unwrap()];
    eventually(|| server.broker().admission().handshaking() == 2, "both are counted as handshaking").await;
    let mut third = RawClient::connect(server.addr).await;
    third.write_raw(amqp_codec::PROTOCOL_HEADER).await;
    assert!(third.read_frame().await.is_none(), "a third unauthenticated connection is closed at once");
    // Logged-in connections do not count: once the silent ones are timed out, clients get in.
    for mut s in silent {
        read_to_close(&mut s).await;
    }
    eventually(|| server.broker().admission().handshaking() == 0, "the timed-out handshakes gave their slots back")
        .await;
    let (_conn, ch) = server.lapin_channel().await;
    q::declare(&ch, "after-the-flood").await;
    let (_conn2, _) = server.lapin_channel().await;
    let (_conn3, _) = server.lapin_channel().await;
    assert_eq!(server.broker().admission().handshaking(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_clients_that_trickle_or_bloat_their_requests_are_cut_off() {
    let server = TestServer::start_with(|c| {
        c.http.header_read_timeout_ms = 300;
        c.http.body_read_timeout_ms = 300;
        c.http.max_header_bytes = 8192;
        c.http.max_body_bytes = 1024;
    })
    .await;
    // Headers that never end: closed after the header timeout.
    let mut slow = TcpStream::connect(http_addr(&server)).await.unwrap();
    slow.write_all(b"GET /api/overview HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let started = Instant::now();
    read_to_close(&mut slow).await;
    assert!(started.elapsed() >= Duration::from_millis(250), "closed before the timeout: {:?}", started.elapsed());

    // A head over the bound: 431.
    let mut bloated = TcpStream::connect(http_addr(&server)).await.unwrap();
    let big = format!("GET /api/overview HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n", "a".repeat(16 * 1024));
    let _ = bloated.write_all(big.as_bytes()).await;
    let answer = String::from_utf8_lossy(&read_to_close(&mut bloated).await).into_owned();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // A body that stops halfway: the request fails once the body timeout passes.
    let mut trickle = TcpStream::connect(http_addr(&server)).await.unwrap();
    let head = "PUT /api/queues/%2F/slow HTTP/1.1\r\nhost: x\r\nauthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
                content-type: application/json\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{";
    trickle.write_all(head.as_bytes()).await.unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut trickle).await).into_owned();
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(server.broker().vhost("/").unwrap().queue("slow").is_none(), "nothing was declared from half a body");

    // A body over the bound, on any route: 413 as JSON.
    let (code, body, _) = send(http().post(server.http_url("/api/definitions")).body(vec![b' '; 4096])).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["reason"].is_string(), "{body}");
    // Normal requests go on.
    let (code, _, _) = send(http().get(server.http_url("/api/overview"))).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_over_the_bound_get_503_until_one_closes() {
    let server = TestServer::start_with(|c| c.http.max_connections = 2).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(http_addr(&server)).await.unwrap();
        s.write_all(b"GET /api/openapi.json HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut first = [0u8; 12];
        within(s.read_exact(&mut first)).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        held.push(s);
    }
    let mut third = TcpStream::connect(http_addr(&server)).await.unwrap();
    let answer = String::from_utf8(read_to_close(&mut third).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.ends_with("retry later\"}"), "{answer}");
    held.pop();
    let mut ok = None;
    let started = Instant::now();
    while ok.is_none() && started.elapsed() < DEADLINE {
        let resp = within(http().get(server.http_url("/api/openapi.json")).send()).await;
        ok = resp.ok().filter(|r| r.status() == StatusCode::OK);
    }
    assert!(ok.is_some(), "a connection closed makes room");
}
