//! `warren perf` against a real in-process broker, with small counts: every mode runs to the
//! end, counts what it sent, measures latencies, and removes what it declared.

mod common;

use clap::Parser;
use common::*;
use serde_json::Value;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    perf: warren::perf::PerfArgs,
}

async fn perf(server: &TestServer, extra: &[&str]) -> Value {
    let addr = format!("127.0.0.1:{}", server.port());
    let mut argv = vec!["perf", "--addr", addr.as_str(), "--timeout-s", "30"];
    argv.extend_from_slice(extra);
    warren::perf::run(Cli::parse_from(argv).perf).await.expect("the run succeeds")
}

fn queue_count(server: &TestServer) -> usize {
    server.broker().vhost("/").unwrap().queue_names().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_runs_count_every_message_and_measure_latency() {
    let server = TestServer::start().await;
    let before = queue_count(&server);
    let r = perf(&server, &["--count", "2000", "--ack-mode", "manual", "--confirm", "100"]).await;
    assert_eq!((r["published"].as_u64(), r["consumed"].as_u64()), (Some(2000), Some(2000)), "{r}");
    assert_eq!(r["latency"]["count"].as_u64(), Some(2000), "{r}");
    assert_eq!(r["confirm_latency"]["count"].as_u64(), Some(2000), "{r}");
    assert!(r["latency"]["p50_us"].as_u64().unwrap() <= r["latency"]["p99_us"].as_u64().unwrap());

    let r =
        perf(&server, &["--count", "500", "--fanout", "3", "--consumers", "2", "--queue-arg", "x-max-length=10000"])
            .await;
    assert_eq!((r["queues"].as_u64(), r["consumed"].as_u64()), (Some(3), Some(1500)), "{r}");

    let r = perf(&server, &["--count", "300", "--rate", "3000", "--ack-mode", "auto", "--size", "4"]).await;
    assert_eq!(r["consumed"].as_u64(), Some(300), "{r}");
    assert!(r["latency"].is_null(), "bodies under 8 bytes carry no timestamp: {r}");
    assert!(r["publish_msgs_per_s"].as_f64().unwrap() < 6000.0, "paced to the offered rate: {r}");
    // The broker named by a URI (overriding --addr).
    let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2F", server.port());
    let argv = ["perf", "--uri", uri.as_str(), "--addr", "127.0.0.1:1", "--count", "100", "--timeout-s", "30"];
    let r = warren::perf::run(Cli::parse_from(argv).perf).await.expect("the run succeeds");
    assert_eq!(r["consumed"].as_u64(), Some(100), "{r}");
    assert_eq!(queue_count(&server), before, "every queue it declared is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_and_memory_runs_complete() {
    let server = TestServer::start().await;
    let before = queue_count(&server);
    for extra in
        [&["--rpc", "--count", "200"][..], &["--rpc", "--count", "200", "--direct-reply-to", "--rpc-in-flight", "8"]]
    {
        let r = perf(&server, extra).await;
        assert_eq!((r["calls"].as_u64(), r["latency"]["count"].as_u64()), (Some(200), Some(200)), "{r}");
    }
    let pid = std::process::id().to_string();
    let r = perf(&server, &["--memory", "--connections", "20", "--queues", "40", "--broker-pid", &pid]).await;
    assert_eq!((r["connections"].as_u64(), r["queues"].as_u64()), (Some(20), Some(40)), "{r}");
    assert!(r["idle_rss_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(r["bytes_per_connection"].is_u64(), "{r}");
    eventually(|| queue_count(&server) == before, "the tool's queues to go").await;
    // A connection counts until the client has closed its end too (the broker reads what a
    // client still sends after close-ok).
    eventually(|| server.broker().open_connections() == 0, "every connection to close").await;
}
