//! The web console's server side: its pages served from the binary with a strict
//! Content-Security-Policy, and its login sessions: an HttpOnly, SameSite=Strict cookie that is
//! worth nothing without the session's anti-forgery token, which ends on logout or when its
//! user changes, and which both HTTP APIs accept. (The pages themselves are tested in a real
//! browser: interop/console.)

mod common;

use common::*;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const CSRF: &str = "x-csrf-token";

fn with_users(c: &mut warren::Config) {
    c.users.push(user_on_root("ops", "ops-pw", &["administrator"]));
    c.users.push(user_on_root("app", "app-pw", &[]));
}

/// A logged-in console session: its cookie header and its anti-forgery token.
struct Session {
    cookie: String,
    csrf: String,
}

async fn login(server: &TestServer, user: &str, password: &str) -> reqwest::Response {
    let body = json!({"username": user, "password": password});
    within(reqwest::Client::new().post(server.http_url("/api/session")).header(CSRF, "none").json(&body).send())
        .await
        .unwrap()
}

async fn session(server: &TestServer) -> Session {
    let response = login(server, "ops", "ops-pw").await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie} has {attribute}");
    }
    assert!(!set_cookie.contains("Secure"), "no Secure over plain HTTP (the browser would drop it)");
    let port = server.running().http_addr.port();
    assert!(set_cookie.starts_with(&format!("warren_session_{port}=")), "named after its listener: {set_cookie}");
    let answer: Value = response.json().await.unwrap();
    assert_eq!((answer["name"].as_str(), answer["tags"][0].as_str()), (Some("ops"), Some("administrator")));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    Session { cookie, csrf: answer["csrf_token"].as_str().unwrap().to_owned() }
}

/// A request made with the session's cookie and, if `csrf` is given, that anti-forgery token.
async fn with_cookie(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    s: &Session,
    csrf: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, server.http_url(path)).header(COOKIE, &s.cookie);
    if let Some(token) = csrf {
        request = request.header(CSRF, token);
    }
    within(request.header(CONTENT_TYPE, "application/json").body("{}").send()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_from_the_binary_with_a_strict_policy() {
    let server = TestServer::start().await;
    let page = within(reqwest::get(server.http_url("/"))).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    for rule in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"] {
        assert!(policy.contains(rule), "{policy} has {rule}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js">"#), "{html}");
    for asset in ["/console/app.js", "/console/style.css", "/console/pages/queue.js", "/console/favicon.svg"] {
        let response = within(reqwest::get(server.http_url(asset))).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let missing = within(reqwest::get(server.http_url("/console/nope.js"))).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // The management API is still where RabbitMQ's clients look for it; its answers, errors
    // included, are never sniffed into another type either.
    let overview = common::http::http().get(server.http_url("/api/overview")).basic_auth("guest", Some("guest"));
    let overview = within(overview.send()).await.unwrap();
    assert_eq!(overview.status(), StatusCode::OK);
    assert_eq!(overview.headers()["x-content-type-options"], "nosniff");
    let refused = within(reqwest::get(server.http_url("/api/overview"))).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_works_only_with_its_anti_forgery_token() {
    let server = TestServer::start_with(with_users).await;
    let s = session(&server).await;
    let get = reqwest::Method::GET;
    let whoami = with_cookie(&server, get.clone(), "/api/whoami", &s, Some(&s.csrf)).await;
    assert_eq!(whoami.status(), StatusCode::OK);
    assert_eq!(whoami.json::<Value>().await.unwrap()["name"], "ops");

    // The cookie alone (what a page of another site could make the browser send) is refused,
    // and without a Basic challenge that would open the browser's own login prompt.
    let queue = "/api/queues/%2F/console-made";
    let forged = with_cookie(&server, reqwest::Method::PUT, queue, &s, None).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert!(forged.headers().get(WWW_AUTHENTICATE).is_none());
    let wrong = with_cookie(&server, reqwest::Method::PUT, queue, &s, Some(&"0".repeat(64))).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(server.broker().vhost("/").unwrap().queue("console-made").is_none(), "nothing was declared");
    let made = with_cookie(&server, reqwest::Method::PUT, queue, &s, Some(&s.csrf)).await;
    assert_eq!(made.status(), StatusCode::CREATED);

    // A page that reloads gets the token back from the cookie; the Async HTTP API takes the
    // session too (the console's tracking page), with the same rule.
    let again = with_cookie(&server, get.clone(), "/api/session", &s, None).await;
    assert_eq!(again.json::<Value>().await.unwrap()["csrf_token"], s.csrf.as_str());
    let find = "/api/vhosts/%2F/messages?message_id=nothing";
    assert_eq!(with_cookie(&server, get.clone(), find, &s, Some(&s.csrf)).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(with_cookie(&server, get.clone(), find, &s, None).await.status(), StatusCode::UNAUTHORIZED);

    // Another broker's session cookie on the same host (or one planted by a sibling domain)
    // beside this one changes nothing.
    let stranger = format!("warren_session_1={}", "ab".repeat(32));
    let both = Session { cookie: format!("{stranger}; {}", s.cookie), csrf: s.csrf.clone() };
    assert_eq!(with_cookie(&server, get.clone(), "/api/whoami", &both, Some(&s.csrf)).await.status(), StatusCode::OK);

    // Logging out ends it, and tells the browser to forget the cookie.
    let out = with_cookie(&server, reqwest::Method::DELETE, "/api/session", &s, Some(&s.csrf)).await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    let after = with_cookie(&server, get.clone(), "/api/whoami", &s, Some(&s.csrf)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let reload = with_cookie(&server, get, "/api/session", &s, None).await;
    assert_eq!(reload.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_refused_for_a_wrong_password_a_user_without_a_tag_or_a_form() {
    let server = TestServer::start_with(with_users).await;
    let wrong = login(&server, "ops", "guess").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.headers().get(WWW_AUTHENTICATE).is_none(), "the console's requests get no Basic challenge");
    let untagged = login(&server, "app", "app-pw").await;
    assert_eq!(untagged.status(), StatusCode::UNAUTHORIZED);
    let reason = untagged.json::<Value>().await.unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("no management tag"), "{reason}");
    // A cross-site form can post only form encodings: a login must be JSON.
    let form = within(
        reqwest::Client::new()
            .post(server.http_url("/api/session"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("username=ops&password=ops-pw")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(form.headers().get(SET_COOKIE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_or_deleting_the_user_ends_its_sessions() {
    let server = TestServer::start_with(with_users).await;
    let (first, second) = (session(&server).await, session(&server).await);
    let get = reqwest::Method::GET;
    assert_eq!(
        with_cookie(&server, get.clone(), "/api/whoami", &first, Some(&first.csrf)).await.status(),
        StatusCode::OK
    );
    let new_password = json!({"password": "rotated", "tags": "administrator"});
    let (code, _, _) =
        common::http::send(common::http::http().put(server.http_url("/api/users/ops")).json(&new_password)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    for s in [&first, &second] {
        let refused = with_cookie(&server, get.clone(), "/api/whoami", s, Some(&s.csrf)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "a changed user's sessions end");
    }
    assert_eq!(login(&server, "ops", "rotated").await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_again_replaces_the_browsers_session_and_one_user_cannot_crowd_out_others() {
    let server = TestServer::start_with(with_users).await;
    let first = session(&server).await;
    let body = json!({"username": "ops", "password": "ops-pw"});
    let again = reqwest::Client::new().post(server.http_url("/api/session")).header(COOKIE, &first.cookie).json(&body);
    assert_eq!(within(again.send()).await.unwrap().status(), StatusCode::OK);
    let old = with_cookie(&server, reqwest::Method::GET, "/api/whoami", &first, Some(&first.csrf)).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "the browser's old session ended");
    let sessions = server.broker().sessions();
    assert_eq!(sessions.len(), 1);
    for _ in 0..2 * warren_broker::sessions::MAX_SESSIONS_PER_USER {
        session(&server).await;
    }
    assert_eq!(sessions.len(), warren_broker::sessions::MAX_SESSIONS_PER_USER, "bounded per user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_message_is_checked_against_a_contract_without_publishing() {
    let server = TestServer::start().await;
    let http = common::http::http;
    let contract = json!({
        "exchange": "amq.direct",
        "routing_key": "orders",
        "schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    });
    let (code, body, _) =
        common::http::send(http().put(server.http_url("/api/contracts/%2F/order")).json(&contract)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let test = |sample: Value| {
        let server = &server;
        async move {
            let (code, answer, _) =
                common::http::send(http().post(server.http_url("/api/contracts/%2F/order/test")).json(&sample)).await;
            (code, answer)
        }
    };
    let (code, valid) = test(json!({"body": {"id": 7}, "routing_key": "orders"})).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(valid, json!({"covers": true, "valid": true, "version": 1, "violations": []}));
    let (_, invalid) = test(json!({"body": {"id": "seven"}, "routing_key": "orders"})).await;
    assert_eq!((invalid["valid"].as_bool(), invalid["violations"][0]["pointer"].as_str()), (Some(false), Some("/id")));
    let (_, elsewhere) = test(json!({"body": {"id": 7}, "routing_key": "invoices"})).await;
    assert_eq!(elsewhere["covers"], false, "{elsewhere}");
    let (code, _) = test(json!({"routing_key": "orders"})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a sample needs a body");
    let (code, _, _) =
        common::http::send(http().post(server.http_url("/api/contracts/%2F/none/test")).json(&json!({"body": {}})))
            .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
