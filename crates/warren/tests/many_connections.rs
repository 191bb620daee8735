//! 10,000 AMQP connections held at once by the real `warren` binary, each logged in with a
//! channel open: the broker's memory per connection is measured and bounded, and every
//! connection then closes cleanly (connection.close answered, none left in the broker).

mod common;

use amqp_codec::Method;
use common::child::Broker;
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const CONNECTIONS: usize = 10_000;
/// Handshakes in flight at once (well under the broker's bound on unauthenticated ones).
const OPENING_AT_ONCE: usize = 200;
/// What one idle connection with one channel may cost the broker, bytes.
const MAX_BYTES_PER_CONNECTION: u64 = 64 * 1024;

/// Raises this process's open-file limit (inherited by the broker it starts, which holds the
/// other end of every connection).
fn raise_file_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur >= wanted {
            return;
        }
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max.max(wanted) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            // Without the privilege to raise the hard limit, go as far as it allows.
            let capped = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &capped), 0);
            assert!(
                limit.rlim_max >= wanted,
                "this test needs {wanted} open files; the hard limit is {} (raise it, or run as root)",
                limit.rlim_max
            );
        }
    }
}

async fn connections_listed(broker: &Broker) -> u64 {
    let url = format!("http://{}/api/overview", broker.http_addr);
    let resp = within(reqwest::Client::new().get(url).basic_auth("guest", Some("guest")).send()).await.unwrap();
    let overview: serde_json::Value = within(resp.json()).await.unwrap();
    overview["object_totals"]["connections"].as_u64().expect("object_totals.connections")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_are_held_and_closed_cleanly() {
    // The client ends here and the broker's in the child each need one file per connection.
    raise_file_limit(CONNECTIONS as u64 + 4096);
    let dir = tempfile::tempdir().unwrap();
    let config = "[limits]\nmax_connections = 12000\nconnection_rate_per_address = 0\nheartbeat_s = 0\n";
    let broker = Broker::start_configured(&dir.path().join("data"), config).await;
    // One connection first, so that what is measured is the cost of the others.
    let (mut warm, _) = RawClient::open(broker.amqp_addr, 0).await;
    warm.open_channel(1).await;
    let idle_rss = broker.rss_bytes();

    let started = Instant::now();
    let room = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (room, addr) = (room.clone(), broker.amqp_addr);
        opening.spawn(async move {
            let _turn = room.acquire_owned().await.unwrap();
            let (mut c, _) = RawClient::open(addr, 0).await;
            c.open_channel(1).await;
            c
        });
    }
    let mut clients = Vec::with_capacity(CONNECTIONS);
    while let Some(client) = opening.join_next().await {
        clients.push(client.expect("a connection opened"));
    }
    let opened_in = started.elapsed();
    assert_eq!(connections_listed(&broker).await, CONNECTIONS as u64 + 1);
    let held_rss = broker.rss_bytes();
    let per_connection = held_rss.saturating_sub(idle_rss) / CONNECTIONS as u64;
    println!(
        "{CONNECTIONS} connections opened in {opened_in:?}; broker RSS {} MiB idle, {} MiB with them: {per_connection} bytes each",
        idle_rss >> 20,
        held_rss >> 20
    );
    assert!(per_connection <= MAX_BYTES_PER_CONNECTION, "{per_connection} bytes per connection");

    // Every one closes with the handshake: close, close-ok, then both ends of the socket.
    let mut closing = tokio::task::JoinSet::new();
    for mut c in clients {
        let room = room.clone();
        closing.spawn(async move {
            let _turn = room.acquire_owned().await.unwrap();
            let close =
                amqp_codec::ConnectionClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 };
            c.send(0, Method::ConnectionClose(close)).await;
            assert_eq!(c.expect_method(0).await, Method::ConnectionCloseOk);
            // The client closes its end once answered; the broker then closes its own.
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut c.stream).await;
            c.expect_eof(Duration::from_secs(10)).await;
        });
    }
    while let Some(closed) = closing.join_next().await {
        closed.expect("a connection closed cleanly");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while connections_listed(&broker).await != 1 {
        assert!(Instant::now() < deadline, "the broker still lists closed connections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("after closing them: broker RSS {} MiB", broker.rss_bytes() >> 20);
    broker.kill().await;
}
