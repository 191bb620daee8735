//! Warren's management API: RabbitMQ's management HTTP API (its paths, JSON field names and
//! status codes) over the broker, so that `rabbitmqadmin`, scripts and dashboards written for
//! RabbitMQ work unchanged. Served on the HTTP listener beside the async API (`warren-http`),
//! with HTTP Basic authentication and RabbitMQ's user tags.

mod access;
mod aggregators;
mod alarms;
mod auth;
mod bindings;
mod body;
mod contracts;
mod dead_letters;
mod definitions;
mod error;
mod exchanges;
mod import;
mod limits;
mod listing;
mod live;
mod metrics;
mod node;
mod policies;
mod queues;
mod rates;
mod session;
mod transforms;
mod view;

use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_broker::{Broker, VHost};

pub use error::MgmtError;

/// What the management API shows of the node that is not in the broker.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where the AMQP listener is bound.
    pub amqp_addr: Option<SocketAddr>,
    /// Where the HTTP listener (this API) is bound.
    pub http_addr: Option<SocketAddr>,
    /// How often message rates are worked out (RabbitMQ's `collect_statistics_interval`);
    /// 0 for the default of 5 s.
    pub statistics_interval_ms: u64,
}

/// RabbitMQ's default statistics interval.
pub const DEFAULT_STATISTICS_INTERVAL_MS: u64 = 5_000;

/// What every handler shares.
pub(crate) struct Mgmt {
    pub broker: Broker,
    pub settings: Settings,
    pub node: String,
    pub rates: rates::Rates,
}

impl Mgmt {
    /// The vhost, or 404.
    pub fn vhost(&self, name: &str) -> error::Result<Arc<VHost>> {
        self.broker.vhost(name).ok_or_else(MgmtError::not_found)
    }

    /// A vhost the caller may see, or 404 (not 401: its existence is not revealed).
    pub fn visible_vhost(&self, caller: &auth::Caller, name: &str) -> error::Result<Arc<VHost>> {
        self.broker.vhost(name).filter(|_| caller.may_see(name)).ok_or_else(MgmtError::not_found)
    }

    pub fn visible_vhosts(&self, caller: &auth::Caller) -> Vec<Arc<VHost>> {
        self.broker.vhosts().into_iter().filter(|v| caller.may_see(&v.name)).collect()
    }

    /// Waits until the definition changes made so far are on disk: the API answers a change
    /// only once it would survive a crash, as the AMQP transport does.
    pub async fn durable(&self) -> error::Result<()> {
        let mark = self.broker.defs_mark();
        self.broker.wait_defs(mark).await.map_err(|e| MgmtError::unavailable(format!("cannot write definitions: {e}")))
    }

    /// Once the change is durable: 201 if it created something, 204 if it replaced or found it.
    pub async fn answered(&self, created: bool) -> error::Result<axum::http::StatusCode> {
        self.durable().await?;
        Ok(if created { axum::http::StatusCode::CREATED } else { axum::http::StatusCode::NO_CONTENT })
    }
}

/// The management API's routes over `broker` (merged into the HTTP listener's router). Call it
/// on the runtime: it starts the task that works out message rates.
pub fn router(broker: Broker, settings: Settings) -> Router {
    let interval_ms = match settings.statistics_interval_ms {
        0 => DEFAULT_STATISTICS_INTERVAL_MS,
        ms => ms,
    };
    let state = Arc::new(Mgmt { broker, settings, node: view::node_name(), rates: rates::Rates::default() });
    rates::run(Arc::downgrade(&state), std::time::Duration::from_millis(interval_ms));
    Router::new()
        .route("/api/overview", get(node::overview))
        .route("/api/alarms", get(alarms::show).put(alarms::put))
        .route("/api/cluster-name", get(node::cluster_name))
        .route("/api/nodes", get(node::nodes))
        .route("/api/nodes/{node}", get(node::node))
        .route("/api/extensions", get(node::extensions))
        .route("/api/health/checks/alarms", get(node::alarms))
        .route("/api/health/checks/local-alarms", get(node::alarms))
        .route("/api/health/checks/virtual-hosts", get(node::ok))
        .route("/api/health/checks/node-is-quorum-critical", get(node::ok))
        .route("/api/health/checks/node-is-mirror-sync-critical", get(node::ok))
        .route("/api/health/checks/port-listener/{port}", get(node::port_listener))
        .route("/api/health/checks/protocol-listener/{protocol}", get(node::protocol_listener))
        .route("/api/aliveness-test/{vhost}", get(node::aliveness))
        .route("/api/whoami", get(access::whoami))
        .route("/api/session", get(session::show).post(session::login).delete(session::logout))
        .route("/api/vhosts", get(access::vhosts))
        .route("/api/vhosts/{vhost}", get(access::vhost).put(access::put_vhost).delete(access::delete_vhost))
        .route("/api/vhosts/{vhost}/permissions", get(access::vhost_permissions))
        .route("/api/vhosts/{vhost}/connections", get(live::vhost_connections))
        .route("/api/vhosts/{vhost}/channels", get(live::vhost_channels))
        .route("/api/users", get(access::users))
        .route("/api/users/{user}", get(access::user).put(access::put_user).delete(access::delete_user))
        .route("/api/users/{user}/permissions", get(access::user_permissions))
        .route("/api/permissions", get(access::permissions))
        .route("/api/vhost-limits", get(limits::vhost_limits))
        .route("/api/vhost-limits/{vhost}", get(limits::vhost_limits_of))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            axum::routing::put(limits::put_vhost_limit).delete(limits::delete_vhost_limit),
        )
        .route("/api/user-limits", get(limits::user_limits))
        .route("/api/user-limits/{user}", get(limits::user_limits_of))
        .route(
            "/api/user-limits/{user}/{name}",
            axum::routing::put(limits::put_user_limit).delete(limits::delete_user_limit),
        )
        .route(
            "/api/permissions/{vhost}/{user}",
            get(access::permission).put(access::put_permission).delete(access::delete_permission),
        )
        .route("/api/connections", get(live::connections))
        .route("/api/connections/{name}", get(live::connection).delete(live::close_connection))
        .route("/api/connections/{name}/channels", get(live::connection_channels))
        .route("/api/channels", get(live::channels))
        .route("/api/channels/{name}", get(live::channel))
        .route("/api/consumers", get(live::consumers))
        .route("/api/consumers/{vhost}", get(live::vhost_consumers))
        .route("/api/exchanges", get(exchanges::list))
        .route("/api/exchanges/{vhost}", get(exchanges::list_vhost))
        .route("/api/exchanges/{vhost}/{name}", get(exchanges::show).put(exchanges::declare).delete(exchanges::delete))
        .route("/api/exchanges/{vhost}/{name}/publish", post(exchanges::publish))
        .route("/api/exchanges/{vhost}/{name}/bindings/source", get(bindings::of_source))
        .route("/api/exchanges/{vhost}/{name}/bindings/destination", get(bindings::of_destination))
        .route("/api/queues", get(queues::list))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route("/api/queues/{vhost}/{name}", get(queues::show).put(queues::declare).delete(queues::delete))
        .route("/api/queues/{vhost}/{name}/contents", axum::routing::delete(queues::purge))
        .route("/api/queues/{vhost}/{name}/get", post(queues::get_messages))
        .route("/api/queues/{vhost}/{name}/bindings", get(bindings::of_queue))
        .route("/api/queues/{vhost}/{name}/messages", get(dead_letters::browse))
        .route("/api/queues/{vhost}/{name}/move", post(dead_letters::move_messages))
        .route("/api/bindings", get(bindings::list))
        .route("/api/bindings/{vhost}", get(bindings::list_vhost))
        .route("/api/bindings/{vhost}/e/{source}/{kind}/{destination}", get(bindings::between).post(bindings::create))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(bindings::show).delete(bindings::delete),
        )
        .route("/api/policies", get(policies::list))
        .route("/api/policies/{vhost}", get(policies::list_vhost))
        .route("/api/policies/{vhost}/{name}", get(policies::show).put(policies::put).delete(policies::delete))
        .route("/api/operator-policies", get(policies::list_operator))
        .route("/api/operator-policies/{vhost}", get(policies::list_operator_vhost))
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::show_operator).put(policies::put_operator).delete(policies::delete_operator),
        )
        .route("/api/contracts", get(contracts::list))
        .route("/api/contracts/{vhost}", get(contracts::list_vhost))
        .route("/api/contracts/{vhost}/{name}", get(contracts::show).put(contracts::put).delete(contracts::delete))
        .route("/api/contracts/{vhost}/{name}/versions", post(contracts::add_version))
        .route("/api/contracts/{vhost}/{name}/test", post(contracts::test))
        .route("/api/aggregators", get(aggregators::list))
        .route("/api/aggregators/{vhost}", get(aggregators::list_vhost))
        .route(
            "/api/aggregators/{vhost}/{name}",
            get(aggregators::show).put(aggregators::put).delete(aggregators::delete),
        )
        .route("/api/transforms", get(transforms::list))
        .route("/api/transforms/{vhost}", get(transforms::list_vhost))
        .route("/api/transforms/{vhost}/{name}", get(transforms::show).put(transforms::put).delete(transforms::delete))
        .route("/api/transforms/{vhost}/{name}/test", post(transforms::test))
        .route("/metrics", get(metrics::aggregated))
        .route("/metrics/per-object", get(metrics::per_object))
        .route("/api/definitions", get(definitions::export).post(import::import))
        .route("/api/definitions/{vhost}", get(definitions::export_vhost).post(import::import_vhost))
        .with_state(state)
        .layer(axum::middleware::from_fn(no_login_prompt_for_the_console))
}

/// The console's requests carry `X-CSRF-Token` or its session cookie; their 401s must not make
/// the browser open its own login prompt (and remember a password the console never asked for).
async fn no_login_prompt_for_the_console(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers = request.headers();
    let has_session = headers
        .get(axum::http::header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| warren_broker::sessions::tokens_in_cookies(c).next().is_some());
    let from_console = has_session || headers.contains_key(warren_broker::sessions::CSRF_HEADER);
    let mut response = next.run(request).await;
    if from_console {
        response.headers_mut().remove(axum::http::header::WWW_AUTHENTICATE);
    }
    response
}
