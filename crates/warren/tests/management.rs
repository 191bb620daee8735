//! The management API (RabbitMQ's HTTP API shape) against the real server: authentication and
//! tags, objects declared over HTTP and over AMQP seen both ways, connections closed with a
//! reason, message get and publish, lists with pages, and the definitions export.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{json, Value};
use warren_broker::UserConfig;

fn url(server: &TestServer, path: &str) -> String {
    server.http_url(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_users_with_a_management_tag_get_in() {
    let server = TestServer::start_with(|c| {
        c.users.push(user_on_root("app", "pw", &[]));
        c.users.push(user_on_root("watcher", "pw", &["monitoring"]));
    })
    .await;
    let get =
        |user: &str, password: &str, path: &str| http().get(url(&server, path)).basic_auth(user, Some(password)).send();
    let resp = within(http().get(url(&server, "/api/overview")).send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = within(get("guest", "wrong", "/api/overview")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = within(get("app", "pw", "/api/overview")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "a user without tags may not use the API");
    let body: Value = within(resp.json()).await.unwrap();
    assert_eq!(body["reason"], "Not management user");

    let resp = within(get("watcher", "pw", "/api/queues")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = within(get("watcher", "pw", "/api/users")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "only administrators list users");
    let (code, me, _) = send(http().get(url(&server, "/api/whoami"))).await;
    assert_eq!((code, me), (StatusCode::OK, json!({"name": "guest", "tags": ["administrator"]})));
    // A trailing slash names the same resource, as in RabbitMQ (amqp091-go's tests use one).
    let (code, _, _) = send(http().get(url(&server, "/api/whoami/"))).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_exchanges_and_bindings_declared_over_http_work_over_amqp() {
    let server = TestServer::start().await;
    let q = unique("mq");
    let x = unique("mx");
    let qpath = format!("/api/queues/%2F/{q}");
    let body = json!({"durable": "true", "auto_delete": false, "arguments": {"x-max-length": 5}});
    let (code, _, _) = send(http().put(url(&server, &qpath)).json(&body)).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _, _) = send(http().put(url(&server, &qpath)).json(&body)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "declaring it again changes nothing");
    let other = json!({"durable": true, "arguments": {"x-max-length": 6}});
    let (code, err, _) = send(http().put(url(&server, &qpath)).json(&other)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["reason"].as_str().unwrap().contains("inequivalent arg"), "{err}");

    let (code, _, _) =
        send(http().put(url(&server, &format!("/api/exchanges/%2F/{x}"))).json(&json!({"type": "topic"}))).await;
    assert_eq!(code, StatusCode::CREATED);
    let bind = format!("/api/bindings/%2F/e/{x}/q/{q}");
    let (code, _, location) = send(http().post(url(&server, &bind)).json(&json!({"routing_key": "a.*"}))).await;
    assert_eq!((code, location.as_deref()), (StatusCode::CREATED, Some("a.*")));

    // Over AMQP the binding routes, and the message is seen over HTTP.
    let (_c, ch) = server.lapin_channel().await;
    q::publish(&ch, &x, "a.b", b"through http's binding").await;
    let (code, q_json, _) = send(http().get(url(&server, &qpath))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((q_json["messages"].as_u64(), q_json["durable"].as_bool()), (Some(1), Some(true)), "{q_json}");
    assert_eq!(q_json["arguments"], json!({"x-max-length": 5}));

    let get = json!({"count": "5", "ackmode": "ack_requeue_true", "encoding": "auto"});
    let (code, got, _) = send(http().post(url(&server, &format!("{qpath}/get"))).json(&get)).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(got[0]["payload"], "through http's binding");
    assert_eq!((got[0]["routing_key"].as_str(), got[0]["exchange"].as_str()), (Some("a.b"), Some(x.as_str())));
    assert_eq!(q::counts(&ch, &q).await.unwrap().0, 1, "ack_requeue_true puts it back");
    let get = json!({"count": 5, "ackmode": "ack_requeue_false", "encoding": "base64"});
    let (_, got, _) = send(http().post(url(&server, &format!("{qpath}/get"))).json(&get)).await;
    assert_eq!((got[0]["payload_encoding"].as_str(), got[0]["redelivered"].as_bool()), (Some("base64"), Some(true)));
    assert_eq!(q::counts(&ch, &q).await.unwrap().0, 0);

    // Publish over HTTP, unbind, and delete with the conditions.
    let publish = json!({"routing_key": "a.c", "payload": "aGk=", "payload_encoding": "base64",
                         "properties": {"delivery_mode": 2, "headers": {"h": 1}}});
    let (code, routed, _) =
        send(http().post(url(&server, &format!("/api/exchanges/%2F/{x}/publish"))).json(&publish)).await;
    assert_eq!((code, routed), (StatusCode::OK, json!({"routed": true})));
    let (code, _, _) = send(http().delete(url(&server, &format!("{qpath}?if-empty=true")))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "not empty");
    let (code, _, _) = send(http().delete(url(&server, &format!("{bind}/a.*")))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (_, routed, _) =
        send(http().post(url(&server, &format!("/api/exchanges/%2F/{x}/publish"))).json(&publish)).await;
    assert_eq!(routed, json!({"routed": false}));
    let (code, _, _) = send(http().delete(url(&server, &format!("{qpath}/contents")))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _, _) = send(http().delete(url(&server, &format!("{qpath}?if-empty=true")))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_code(q::counts(&ch, &q).await, 404);
    let (code, _, _) = send(http().get(url(&server, &qpath))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_channels_and_consumers_are_listed_and_a_connection_can_be_closed() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let q = unique("watched");
    q::declare(&ch, &q).await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let _consumer = within(ch.basic_consume(
        q.as_str().into(),
        "tag-1".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();

    let (_, connections, _) = send(http().get(url(&server, "/api/connections"))).await;
    let mine = &connections[0];
    assert_eq!(
        (mine["user"].as_str(), mine["vhost"].as_str(), mine["channels"].as_u64()),
        (Some("guest"), Some("/"), Some(1))
    );
    assert!(mine["recv_oct"].as_u64().unwrap() > 0 && mine["send_oct"].as_u64().unwrap() > 0, "{mine}");
    assert_eq!(mine["client_properties"]["product"], "lapin");
    let name = mine["name"].as_str().unwrap().to_owned();

    let (_, channels, _) = send(http().get(url(&server, "/api/channels"))).await;
    assert_eq!((channels[0]["confirm"].as_bool(), channels[0]["consumer_count"].as_u64()), (Some(true), Some(1)));
    let (_, consumers, _) = send(http().get(url(&server, "/api/consumers/%2F"))).await;
    assert_eq!(
        (consumers[0]["consumer_tag"].as_str(), consumers[0]["queue"]["name"].as_str()),
        (Some("tag-1"), Some(q.as_str()))
    );
    assert_eq!(consumers[0]["channel_details"]["connection_name"], name.as_str());

    let encoded = |name: &str| name.replace(' ', "%20").replace('>', "%3E");
    let mut events = conn.events_listener();
    let (code, _, _) = send(http().delete(url(&server, &format!("/api/connections/{}", encoded(&name))))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(next_connection_error(&mut events).await, Some(320));
    eventually(|| server.broker().registry().connections().is_empty(), "the connection to go from the registry").await;
    let (code, _, _) = send(http().get(url(&server, &format!("/api/connections/{}", encoded(&name))))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // The reason reaches the client in the connection.close.
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    let (_, connections, _) = send(http().get(url(&server, "/api/connections"))).await;
    let name = connections[0]["name"].as_str().unwrap().to_owned();
    let path = format!("/api/connections/{}", encoded(&name));
    let (code, _, _) = send(http().delete(url(&server, &path)).header("X-Reason", "maintenance window")).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 320);
    assert!(close.reply_text.as_str().contains("maintenance window"), "{close:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sort_page_filter_and_pick_columns() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let prefix = unique("page");
    for i in 0..7 {
        let name = format!("{prefix}-{i}");
        q::declare(&ch, &name).await;
        for _ in 0..i {
            q::publish(&ch, "", &name, b"m").await;
        }
    }
    let path = format!(
        "/api/queues/%2F?page=2&page_size=3&name={prefix}&sort=messages&sort_reverse=true&columns=name,messages"
    );
    let (code, page, _) = send(http().get(url(&server, &path))).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert_eq!((page["filtered_count"].as_u64(), page["page_count"].as_u64()), (Some(7), Some(3)));
    assert_eq!(page["items"][0], json!({"name": format!("{prefix}-3"), "messages": 3}));
    let (code, _, _) = send(http().get(url(&server, "/api/queues?page=1&page_size=501"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _, _) = send(http().get(url(&server, "/api/queues?colour=red"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "unknown parameters are refused");
    let (code, _, _) = send(http().get(url(&server, "/api/queues?disable_stats=true&msg_rates_age=60"))).await;
    assert_eq!(code, StatusCode::OK, "RabbitMQ's statistics options are accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_export_carries_durable_objects_and_rabbitmq_password_hashes() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let durable = unique("kept");
    let transient = unique("gone");
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(durable.as_str().into(), opts, FieldTable::default())).await.unwrap();
    q::declare(&ch, &transient).await;
    let (code, defs, _) = send(http().get(url(&server, "/api/definitions"))).await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = defs["queues"].as_array().unwrap().iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert!(names.contains(&durable.as_str()) && !names.contains(&transient.as_str()), "{names:?}");
    let guest = defs["users"].as_array().unwrap().iter().find(|u| u["name"] == "guest").unwrap();
    assert_eq!(guest["hashing_algorithm"], "rabbit_password_hashing_sha256");
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(guest["password_hash"].as_str().unwrap()).unwrap();
    let salt: [u8; 4] = raw[..4].try_into().unwrap();
    assert_eq!(warren_broker::auth::hash_password_sha256(b"guest", salt), guest["password_hash"].as_str().unwrap());
    assert_eq!(
        defs["permissions"][0],
        json!({"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_aliveness_answer() {
    let server = TestServer::start().await;
    for path in ["/api/health/checks/alarms", "/api/health/checks/virtual-hosts", "/api/aliveness-test/%2F"] {
        let (code, body, _) = send(http().get(url(&server, path))).await;
        assert_eq!((code, body), (StatusCode::OK, json!({"status": "ok"})), "{path}");
    }
    let port = server.port();
    let (code, _, _) = send(http().get(url(&server, &format!("/api/health/checks/port-listener/{port}")))).await;
    assert_eq!(code, StatusCode::OK);
    let (code, body, _) = send(http().get(url(&server, "/api/health/checks/port-listener/1"))).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (code, overview, _) = send(http().get(url(&server, "/api/overview"))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(overview["listeners"][0]["port"].as_u64(), Some(u64::from(port)));
    assert_eq!(overview["product_name"], "Warren");
}

/// Vhosts, users and permissions made over the API work at once, are on disk when answered,
/// and survive a restart; deletions close what depended on them. The config's users seed the
/// first start only: one deleted over the API stays deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_vhosts_users_and_permissions_are_durable() {
    let server = TestServer::start_with(|c| {
        c.users.push(UserConfig {
            name: "seeded".into(),
            password: "pw".into(),
            vhosts: None,
            permissions: Default::default(),
            loopback_only: false,
            tags: Vec::new(),
        });
    })
    .await;
    let (code, _, _) = send(http().put(url(&server, "/api/vhosts/dev"))).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _, _) = send(http().put(url(&server, "/api/vhosts/dev"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let user = json!({"password": "s3cret", "tags": "management,monitoring"});
    let (code, _, _) = send(http().put(url(&server, "/api/users/ops")).json(&user)).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, err, _) = send(http().put(url(&server, "/api/users/bad")).json(&json!({"tags": ""}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
    let perm = json!({"configure": "^ops\\.", "write": ".*", "read": ".*"});
    let (code, _, _) = send(http().put(url(&server, "/api/permissions/dev/ops")).json(&perm)).await;
    assert_eq!(code, StatusCode::CREATED);
    let bad = json!({"configure": "(", "write": ".*", "read": ".*"});
    let (code, _, _) = send(http().put(url(&server, "/api/permissions/dev/ops")).json(&bad)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _, _) = send(http().delete(url(&server, "/api/users/seeded"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);

    let ops_in_dev = |server: &TestServer| server.uri_for("ops", "s3cret", "dev");
    let conn = within(lapin::Connection::connect(&ops_in_dev(&server), Default::default())).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.queue_declare(
        "ops.jobs".into(),
        QueueDeclareOptions { durable: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(conn.close(200, "bye".into())).await.unwrap();

    let server = server.restart().await;
    let (_, users, _) = send(http().get(url(&server, "/api/users"))).await;
    let names: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["guest", "ops"], "the deleted config user stays deleted");
    let (_, me, _) = send(http().get(url(&server, "/api/users/ops"))).await;
    assert_eq!(me["tags"], json!(["management", "monitoring"]));
    let (_, p, _) = send(http().get(url(&server, "/api/permissions/dev/ops"))).await;
    assert_eq!(p["configure"], "^ops\\.");
    let (code, _, _) = send(http().get(url(&server, "/api/queues/dev/ops.jobs"))).await;
    assert_eq!(code, StatusCode::OK, "the durable queue of the new vhost came back");
    let conn = within(lapin::Connection::connect(&ops_in_dev(&server), Default::default())).await.expect("ops logs in");
    let mut events = conn.events_listener();

    // Deleting the vhost closes its connections and drops its queues.
    let (code, _, _) = send(http().delete(url(&server, "/api/vhosts/dev"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(next_connection_error(&mut events).await, Some(320));
    let (code, _, _) = send(http().get(url(&server, "/api/queues/dev/ops.jobs"))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, _) = send(http().delete(url(&server, "/api/users/ops"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let server = server.restart().await;
    let (code, _, _) = send(http().get(url(&server, "/api/vhosts/dev"))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(lapin::Connection::connect(&server.uri_for("seeded", "pw", "%2f"), Default::default()).await.is_err());
}

/// A definitions file RabbitMQ 3.10.8 exported (a vhost with a user, permissions, a policy, an
/// exchange policy and an operator policy, exchanges with an alternate exchange, queues with
/// dead-lettering, length and priority arguments, and queue, exchange-to-exchange and headers
/// bindings) imports into Warren, keeps the user's password,
/// routes as it did there, and comes back out of Warren's export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_export_imports_and_round_trips() {
    let server = TestServer::start().await;
    let file: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/rabbitmq-3.10.8-definitions.json")).expect("the fixture is JSON");
    let (code, body, _) = send(http().post(url(&server, "/api/definitions")).json(&file)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");

    // The user logs in with the password it had in RabbitMQ, within its permissions.
    let conn =
        within(lapin::Connection::connect(&server.uri_for("shop-app", "shop-secret", "shop"), Default::default()))
            .await
            .expect("the imported password hash works");
    let ch = within(conn.create_channel()).await.unwrap();
    assert_code(within(ch.queue_declare("elsewhere".into(), Default::default(), FieldTable::default())).await, 403);
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(Default::default())).await.unwrap();
    let publish = |key: &'static str| {
        ch.basic_publish("shop.events".into(), key.into(), Default::default(), b"o", Default::default())
    };
    within(within(publish("order.created")).await.unwrap()).await.unwrap();
    let (_, q, _) = send(http().get(url(&server, "/api/queues/shop/shop.orders"))).await;
    assert_eq!(q["messages"], 1);
    assert_eq!(q["arguments"]["x-dead-letter-exchange"], "shop.dlx");
    // Through the exchange-to-exchange binding to the headers exchange, whose alternate
    // exchange takes what its binding does not match.
    let (_, audit, _) = send(http().get(url(&server, "/api/queues/shop/shop.audit"))).await;
    assert_eq!(audit["messages"], 1, "{audit}");

    // Warren's export carries the same objects and the same password hash.
    let (_, exported, _) = send(http().get(url(&server, "/api/definitions"))).await;
    for kind in ["queues", "exchanges", "bindings"] {
        let names = |defs: &serde_json::Value| {
            let mut n: Vec<String> =
                defs[kind].as_array().unwrap().iter().filter(|o| o["vhost"] == "shop").map(|o| o.to_string()).collect();
            n.sort();
            n
        };
        assert_eq!(names(&exported), names(&file), "{kind}");
    }
    let user = exported["users"].as_array().unwrap().iter().find(|u| u["name"] == "shop-app").unwrap();
    assert_eq!(user["password_hash"], file["users"][0]["password_hash"]);

    // Its policy and operator policy apply to the queue, and come back out as RabbitMQ wrote them.
    assert_eq!((q["policy"].as_str(), q["operator_policy"].as_str()), (Some("shop-limits"), Some("shop-cap")));
    assert_eq!(q["effective_policy_definition"]["max-length"], 10000);
    let by_name = |list: &serde_json::Value| {
        let mut all = list.as_array().unwrap().clone();
        all.sort_by_key(|p| p["name"].to_string());
        all
    };
    assert_eq!(by_name(&exported["policies"]), by_name(&file["policies"]));
    assert_eq!(exported["parameters"], file["parameters"]);

    // What Warren does not have is refused whole, not dropped.
    let mut with_shovel = file.clone();
    with_shovel["parameters"] = json!([{"vhost": "shop", "component": "shovel", "name": "s", "value": {}}]);
    let (code, err, _) = send(http().post(url(&server, "/api/definitions")).json(&with_shovel)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["reason"].as_str().unwrap().contains("shovel"), "{err}");
}

/// No import or PUT opens guest to the network: it stays loopback-only, and a new `guest` is
/// loopback-only too (RabbitMQ's default `loopback_users`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_stays_loopback_only_whatever_is_imported() {
    let server = TestServer::start().await;
    let loopback_only = |server: &TestServer| server.broker().users().get("guest").is_some_and(|u| u.loopback_only);
    let (code, _, _) =
        send(http().put(url(&server, "/api/users/guest")).json(&json!({"password": "guest", "tags": "administrator"})))
            .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert!(loopback_only(&server));
    let admin = json!({"password": "root-pw", "tags": ["administrator"]});
    assert_eq!(send(http().put(url(&server, "/api/users/root")).json(&admin)).await.0, StatusCode::CREATED);
    let as_root = |req: reqwest::RequestBuilder| async move {
        within(req.basic_auth("root", Some("root-pw")).send()).await.unwrap().status()
    };
    assert_eq!(as_root(http().delete(url(&server, "/api/users/guest"))).await, StatusCode::NO_CONTENT);
    let file = json!({"users": [{"name": "guest", "password_hash": warren_broker::auth::hash_password_sha256(b"guest", [1, 2, 3, 4]),
                                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "administrator"}]});
    assert_eq!(as_root(http().post(url(&server, "/api/definitions")).json(&file)).await, StatusCode::NO_CONTENT);
    assert!(loopback_only(&server), "an imported guest is loopback-only");
}

/// A vhost whose deletion reached the definitions log without its queues (a crash between the
/// two) starts empty when made again: the restore drops what was left of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vhost_made_again_does_not_bring_back_its_old_queues() {
    let server = TestServer::start().await;
    assert_eq!(send(http().put(url(&server, "/api/vhosts/gone"))).await.0, StatusCode::CREATED);
    let (code, _, _) = send(http().put(url(&server, "/api/queues/gone/old")).json(&json!({"durable": true}))).await;
    assert_eq!(code, StatusCode::CREATED);
    // Only the vhost's record is deleted, as if the process died right after writing it.
    let defs = &server.broker().durability().expect("durable").defs;
    let seq = defs.submit(vec![(warren_broker::durable::access_defs::vhost_key("gone"), None)]);
    within(defs.wait_durable(seq)).await.unwrap();
    let server = server.restart().await;
    assert_eq!(send(http().get(url(&server, "/api/vhosts/gone"))).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(http().put(url(&server, "/api/vhosts/gone"))).await.0, StatusCode::CREATED);
    let server = server.restart().await;
    assert_eq!(send(http().get(url(&server, "/api/queues/gone/old"))).await.0, StatusCode::NOT_FOUND);
}
