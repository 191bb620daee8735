//! `warren admin` against the real server: the binary, as an operator runs it, declaring,
//! listing, publishing, moving dead letters, exporting and importing, closing a connection.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::Value;

/// Runs `warren admin ARGS` against `server`; (exit success, stdout, stderr).
async fn admin(server: &TestServer, args: &[&str]) -> (bool, String, String) {
    let url = server.http_url("");
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = within(tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
            .arg("admin")
            .args(&args)
            .env("WARREN_URL", url)
            .env_remove("WARREN_USER")
            .env_remove("WARREN_PASSWORD")
            .env_remove("WARREN_VHOST")
            .output()
            .expect("warren admin runs")
    }))
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn admin_ok(server: &TestServer, args: &[&str]) -> String {
    let (ok, out, err) = admin(server, args).await;
    assert!(ok, "warren admin {args:?} failed: {err}");
    out
}

async fn listed(server: &TestServer, kind: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(&admin_ok(server, &["list", kind, "-f", "json"]).await)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_declares_publishes_lists_and_cleans_up() {
    let server = TestServer::start().await;
    admin_ok(&server, &["declare", "queue", "jobs", "--durable", "--arguments", r#"{"x-max-length": 100}"#]).await;
    admin_ok(&server, &["declare", "policy", "cap", "--pattern", "^jobs$", "--definition", r#"{"max-length": 3}"#])
        .await;
    for i in 0..5 {
        admin_ok(&server, &["publish", "--routing-key", "jobs", "--payload", &format!("m{i}")]).await;
    }
    let table = admin_ok(&server, &["list", "queues"]).await;
    let row = table.lines().find(|l| l.contains("jobs")).expect("a row for jobs");
    assert!(row.split_whitespace().collect::<Vec<_>>()[2..4] == ["3", "0"], "3 ready under the policy: {table}");
    let queues = listed(&server, "queues").await;
    assert_eq!(queues[0]["policy"], "cap");
    let got = admin_ok(&server, &["get", "jobs", "--count", "1", "--ackmode", "ack_requeue_false", "-f", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&got).unwrap()[0]["payload"], "m2");

    let (ok, _, err) = admin(&server, &["declare", "queue", "amq.reserved"]).await;
    assert!(!ok && err.contains("403"), "a refusal is reported with its status: {err}");
    let (ok, _, err) = admin(&server, &["--password", "wrong", "list", "queues"]).await;
    assert!(!ok && err.contains("401"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defs.json");
    admin_ok(&server, &["export", file.to_str().unwrap()]).await;
    admin_ok(&server, &["delete", "policy", "cap"]).await;
    admin_ok(&server, &["delete", "queue", "jobs"]).await;
    assert!(listed(&server, "queues").await.is_empty());
    admin_ok(&server, &["import", file.to_str().unwrap()]).await;
    assert_eq!(listed(&server, "policies").await[0]["name"], "cap", "the import brought the policy back");
    assert_eq!(listed(&server, "queues").await[0]["name"], "jobs");
    assert!(admin_ok(&server, &["completions", "bash"]).await.contains("_warren()"), "a bash completion script");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_browses_and_replays_dead_letters_and_closes_a_connection() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from("work.dlq")));
    q::declare(&ch, "work.dlq").await;
    within(ch.queue_declare("work".into(), QueueDeclareOptions::default(), args)).await.unwrap();
    for i in 0..4 {
        within(ch.basic_publish(
            "".into(),
            "work".into(),
            Default::default(),
            format!("w{i}").as_bytes(),
            Default::default(),
        ))
        .await
        .unwrap();
    }
    eventually(|| server.broker().vhost("/").unwrap().queue("work").unwrap().message_counts().0 == 4, "4 queued").await;
    for _ in 0..4 {
        let got = within(ch.basic_get("work".into(), BasicGetOptions::default())).await.unwrap().unwrap();
        within(got.delivery.acker.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    }
    eventually(|| server.broker().vhost("/").unwrap().queue("work.dlq").unwrap().message_counts().0 == 4, "4 dead")
        .await;

    let browsed = admin_ok(&server, &["browse", "work.dlq", "--count", "2"]).await;
    assert!(browsed.contains("rejected") && browsed.contains("w0") && !browsed.contains("w2"), "{browsed}");
    let moved = admin_ok(&server, &["move", "work.dlq", "--count", "3", "-f", "json"]).await;
    assert_eq!(serde_json::from_str::<Value>(&moved).unwrap()["moved"], 3);
    assert_eq!(q::counts(&ch, "work").await.unwrap().0, 3);

    let connections = listed(&server, "connections").await;
    let name = connections[0]["name"].as_str().unwrap().to_owned();
    let mut events = conn.events_listener();
    admin_ok(&server, &["close", &name, "--reason", "maintenance"]).await;
    assert_eq!(next_connection_error(&mut events).await, Some(320));
}
