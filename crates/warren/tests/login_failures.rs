//! A growing delay after failed logins from one address, on AMQP and HTTP alike: each refusal
//! waits twice as long as the one before (100 ms, 200 ms, ...), a successful login forgets the
//! address. Only lower bounds are asserted: the broker waits at least that long.

mod common;

use amqp_codec::Method;
use common::*;
use std::time::{Duration, Instant};

/// Logs in over AMQP with a wrong password; how long the refusal took.
async fn refused_amqp_login(server: &TestServer) -> Duration {
    let mut c = RawClient::connect(server.addr).await;
    c.start().await;
    let started = Instant::now();
    c.send(0, Method::ConnectionStartOk(start_ok_plain("guest", "wrong"))).await;
    let close = c.expect_connection_close().await;
    assert_eq!(close.reply_code, 403);
    started.elapsed()
}

async fn refused_http_login(server: &TestServer) -> Duration {
    let started = Instant::now();
    let resp =
        within(common::http::http().get(server.http_url("/api/overview")).basic_auth("guest", Some("wrong")).send())
            .await
            .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_from_one_address_wait_longer_each_time() {
    let server = TestServer::start().await;
    refused_amqp_login(&server).await;
    refused_amqp_login(&server).await;
    let third = refused_amqp_login(&server).await;
    assert!(third >= Duration::from_millis(400), "the third refusal waited {third:?}");
    let fourth = refused_http_login(&server).await;
    assert!(fourth >= Duration::from_millis(800), "HTTP shares the count: the fourth waited {fourth:?}");
    // A successful login forgets the address: the next refusal is the first again.
    let (ok, _) = RawClient::open(server.addr, 0).await;
    drop(ok);
    assert_eq!(server.broker().users().login_delay("127.0.0.1".parse().unwrap()), Duration::ZERO);
    refused_http_login(&server).await;
    assert_eq!(server.broker().users().login_delay("127.0.0.1".parse().unwrap()), Duration::from_millis(100));
}
