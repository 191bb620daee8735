//! Policies and operator policies over the management API: they apply at once to the queues and
//! exchanges they match (existing and new), are refused with RabbitMQ's reasons when invalid,
//! survive restarts, seed from the config once, and travel in definitions export and import.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use warren_broker::{PolicyConfig, UserConfig};

async fn put(server: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    let (code, body, _) = send(http().put(server.http_url(path)).json(&body)).await;
    (code, body)
}

async fn get(server: &TestServer, path: &str) -> Value {
    let (code, body, _) = send(http().get(server.http_url(path))).await;
    assert_eq!(code, StatusCode::OK, "{path}: {body}");
    body
}

async fn fill(ch: &lapin::Channel, queue: &str, n: usize) {
    for i in 0..n {
        q::publish(ch, "", queue, format!("m{i}").as_bytes()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_applies_at_once_to_existing_and_new_queues_and_goes_when_deleted() {
    let server = TestServer::start().await;
    let (_conn, ch) = server.lapin_channel().await;
    let q = unique("pol.jobs");
    q::declare(&ch, &q).await;
    let ch = confirmed_channel(&_conn).await;
    fill(&ch, &q, 10).await;

    let (code, body) =
        put(&server, "/api/policies/%2F/cap", json!({"pattern": "^pol\\.", "definition": {"max-length": 3}})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(q::counts(&ch, &q).await.unwrap().0, 3, "the existing queue drops its head to the new limit");
    let view = get(&server, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(view["policy"], "cap");
    assert_eq!(view["effective_policy_definition"], json!({"max-length": 3}));
    assert_eq!(q::drain(&ch, &q).await, [b"m7".to_vec(), b"m8".to_vec(), b"m9".to_vec()]);

    // An operator policy caps lower; the queue's own lower argument still wins.
    let (code, _) = put(
        &server,
        "/api/operator-policies/%2F/ops",
        json!({"pattern": ".*", "definition": {"max-length": 2}, "apply-to": "queues"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let fresh = unique("pol.new");
    q::declare(&ch, &fresh).await;
    fill(&ch, &fresh, 5).await;
    assert_eq!(q::counts(&ch, &fresh).await.unwrap().0, 2, "a new queue gets the lower of the two");
    let view = get(&server, &format!("/api/queues/%2F/{fresh}")).await;
    assert_eq!((view["policy"].clone(), view["operator_policy"].clone()), (json!("cap"), json!("ops")));

    let (code, _, _) = send(http().delete(server.http_url("/api/operator-policies/%2F/ops"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _, _) = send(http().delete(server.http_url("/api/policies/%2F/cap"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _, _) = send(http().delete(server.http_url("/api/policies/%2F/cap"))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    fill(&ch, &fresh, 5).await;
    assert_eq!(q::counts(&ch, &fresh).await.unwrap().0, 7, "without policies nothing is dropped");
    assert_eq!(get(&server, &format!("/api/queues/%2F/{fresh}")).await["policy"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_gives_exchanges_an_alternate_exchange() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let (x, unrouted) = (unique("orders"), unique("unrouted"));
    for (name, kind) in [(&x, lapin::ExchangeKind::Direct), (&unrouted, lapin::ExchangeKind::Fanout)] {
        within(ch.exchange_declare(name.as_str().into(), kind, Default::default(), FieldTable::default()))
            .await
            .unwrap();
    }
    let catch = unique("catch");
    q::declare(&ch, &catch).await;
    q::bind(&ch, &catch, &unrouted, "").await;
    let body =
        json!({"pattern": format!("^{x}$"), "definition": {"alternate-exchange": unrouted}, "apply-to": "exchanges"});
    let (code, _) = put(&server, "/api/policies/%2F/ae", body).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(get(&server, &format!("/api/exchanges/%2F/{x}")).await["policy"], "ae");
    let ch = confirmed_channel(&conn).await;
    q::publish(&ch, &x, "nobody", b"lost?").await;
    assert_eq!(q::get_body(&ch, &catch).await.as_deref(), Some(&b"lost?"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_policies_are_refused_with_the_reason_and_tags_decide_who_may_set_them() {
    let server = TestServer::start_with(|c| {
        for (name, tags) in [("maker", vec!["policymaker".to_string()]), ("viewer", vec!["management".to_string()])] {
            c.users.push(UserConfig {
                name: name.into(),
                password: "pw".into(),
                vhosts: Some(vec!["/".into()]),
                permissions: Default::default(),
                loopback_only: false,
                tags,
            });
        }
    })
    .await;
    let cases = [
        (json!({"pattern": "x", "definition": {"foo": 1}}), "not recognised"),
        (json!({"pattern": "(", "definition": {"message-ttl": 1}}), "regular expression"),
        (json!({"pattern": "x", "definition": {"message-ttl": "soon"}}), "x-message-ttl"),
        (json!({"pattern": "x", "definition": {}}), "no policy provided"),
        (json!({"definition": {"message-ttl": 5}}), "key_missing,pattern"),
        (json!({"pattern": "x", "definition": {"message-ttl": 5}, "apply-to": "bogus"}), "apply-to"),
        (json!({"pattern": "x", "definition": {"message-ttl": 5}, "priority": "high"}), "priority"),
    ];
    for (body, reason) in cases {
        let (code, err) = put(&server, "/api/policies/%2F/bad", body.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err["reason"].as_str().unwrap().contains(reason), "{body}: {err}");
    }
    let (code, err) = put(
        &server,
        "/api/operator-policies/%2F/bad",
        json!({"pattern": "x", "definition": {"dead-letter-exchange": "d"}}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "operator policies set limits only: {err}");
    let (code, _) =
        put(&server, "/api/policies/nowhere/p", json!({"pattern": "x", "definition": {"message-ttl": 5}})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(get(&server, "/api/policies").await.as_array().unwrap().is_empty(), "nothing was half-made");

    let as_user = |user: &str, req: reqwest::RequestBuilder| req.basic_auth(user, Some("pw")).send();
    let ok = json!({"pattern": "^q", "definition": {"message-ttl": 5}});
    let resp = within(as_user("maker", http().put(server.http_url("/api/policies/%2F/mine")).json(&ok))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "a policymaker sets policies in its vhosts");
    let resp =
        within(as_user("maker", http().put(server.http_url("/api/operator-policies/%2F/o")).json(&ok))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "operator policies are for administrators");
    let resp = within(as_user("viewer", http().get(server.http_url("/api/policies")))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "a management user lists the policies of its vhosts");
    let listed: Value = within(resp.json()).await.unwrap();
    assert_eq!(listed[0]["name"], "mine");
    let resp = within(as_user("viewer", http().put(server.http_url("/api/policies/%2F/v")).json(&ok))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "but may not set them");
    let resp = within(as_user("viewer", http().get(server.http_url("/api/policies/%2F/mine")))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "nor show one, as in RabbitMQ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_survive_restarts_and_the_config_seeds_them_once() {
    let seeded = PolicyConfig {
        name: "seeded".into(),
        vhost: "/".into(),
        pattern: "^seed".into(),
        priority: 0,
        operator: false,
        apply_to: "queues".into(),
        definition: BTreeMap::from([("max-length".to_string(), warren_broker::config::PolicyValue::Int(1))]),
    };
    let server = TestServer::start_with(|c| c.policies.push(seeded)).await;
    assert_eq!(get(&server, "/api/policies/%2F/seeded").await["definition"], json!({"max-length": 1}));
    let (code, _, _) = send(http().delete(server.http_url("/api/policies/%2F/seeded"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let body = json!({"pattern": "^kept\\.", "definition": {"max-length": 2, "ha-mode": "all"}, "priority": 4, "apply-to": "queues"});
    assert_eq!(put(&server, "/api/policies/%2F/kept", body).await.0, StatusCode::CREATED);
    let q = unique("kept.q");
    {
        let (_conn, ch) = server.lapin_channel().await;
        within(ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        ))
        .await
        .unwrap();
    }

    let server = server.restart().await;
    let listed = get(&server, "/api/policies").await;
    assert_eq!(
        listed,
        json!([{"vhost": "/", "name": "kept", "pattern": "^kept\\.", "apply-to": "queues", "priority": 4,
                "definition": {"max-length": 2, "ha-mode": "all"}}]),
        "the deleted config policy stays deleted; the other comes back as it was given"
    );
    let (conn, _) = server.lapin_channel().await;
    let ch = confirmed_channel(&conn).await;
    fill(&ch, &q, 4).await;
    assert_eq!(q::counts(&ch, &q).await.unwrap().0, 2, "the restored queue runs with the stored policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_operator_policies_travel_in_definitions() {
    let server = TestServer::start().await;
    let file = json!({
        "vhosts": [{"name": "/"}],
        "policies": [{"vhost": "/", "name": "dlx", "pattern": "^work", "apply-to": "queues", "priority": 1,
                      "definition": {"dead-letter-exchange": "dead", "message-ttl": 60000}}],
        "parameters": [{"vhost": "/", "component": "operator_policy", "name": "limits",
                        "value": {"pattern": ".*", "definition": {"max-length": 1000}, "priority": 0, "apply-to": "queues"}}],
        "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
    });
    let (code, body, _) = send(http().post(server.http_url("/api/definitions")).json(&file)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let exported = get(&server, "/api/definitions").await;
    assert_eq!(exported["policies"], file["policies"]);
    assert_eq!(exported["parameters"], file["parameters"]);
    assert_eq!(get(&server, "/api/operator-policies/%2F/limits").await["definition"], json!({"max-length": 1000}));

    let shovel = json!({"parameters": [{"vhost": "/", "component": "shovel", "name": "s", "value": {}}],
                        "policies": [{"vhost": "/", "name": "other", "pattern": ".*", "definition": {"max-length": 1}}]});
    let (code, err, _) = send(http().post(server.http_url("/api/definitions")).json(&shovel)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["reason"].as_str().unwrap().contains("shovel"), "{err}");
    let (code, _, _) = send(http().get(server.http_url("/api/policies/%2F/other"))).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "a refused import changes nothing");
}
