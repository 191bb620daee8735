//! Dead-letter queue operations, Warren's own (RabbitMQ's API has neither): browse a queue's
//! messages without taking them (`GET .../messages`, with their `x-death` history), and move
//! them back to the queue they died in or through an exchange (`POST .../move`), filtered by
//! death reason or chosen one by one (each message's `seq` from a browse), atomically per message (see `warren_broker::moving`).

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::queues::message_json;
use crate::{body, Mgmt};
use axum::extract::{Path, Query, State};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::moving::{MoveRequest, MoveTarget, MAX_MOVE, MAX_SELECTED};
use warren_broker::permissions::{Access, Resource};

/// Most messages one browse shows, and most body bytes it carries.
const MAX_BROWSE: usize = 1000;
const MAX_BROWSE_BYTES: usize = 16 << 20;
/// No connection owns a queue the API looks at.
const NO_CONNECTION: u64 = 0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "fifty")]
    count: usize,
    #[serde(default = "auto")]
    encoding: String,
    truncate: Option<u64>,
    /// Only messages whose last death has this reason.
    reason: Option<String>,
}

fn fifty() -> usize {
    50
}

fn auto() -> String {
    "auto".into()
}

/// `GET /api/queues/{vhost}/{name}/messages`: ready messages in delivery order from `offset`,
/// untouched (not taken, not marked redelivered). Needs read permission on the queue.
pub async fn browse(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<BrowseQuery>,
) -> Result<Json<Value>> {
    caller.require(&vhost, Access::Read, Resource::Queue, &name)?;
    let queue = m.vhost(&vhost)?.queue_for(&name, NO_CONNECTION)?;
    if q.count > MAX_BROWSE {
        return Err(MgmtError::bad_request(format!("count is at most {MAX_BROWSE}")));
    }
    if !matches!(q.encoding.as_str(), "auto" | "base64") {
        return Err(MgmtError::bad_request(format!("unknown encoding '{}'", q.encoding)));
    }
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    let mut next_offset = q.offset;
    // With a reason filter, look further than `count` (bounded) for matching messages.
    let window = if q.reason.is_some() { MAX_BROWSE } else { q.count };
    for (i, peek) in queue.peek(q.offset, window).into_iter().enumerate() {
        if out.len() >= q.count || bytes >= MAX_BROWSE_BYTES {
            break;
        }
        next_offset = q.offset + i + 1;
        let reason = warren_broker::moving::last_death_reason(&peek.message);
        if q.reason.is_some() && q.reason != reason {
            continue;
        }
        bytes += peek.message.body.len();
        let mut one = message_json(&peek.message, peek.redelivered, &q.encoding, q.truncate);
        one["position"] = json!(q.offset + i);
        one["seq"] = json!(peek.seq);
        one["death_reason"] = json!(reason);
        out.push(one);
    }
    let (ready, _, _) = queue.message_counts();
    Ok(Json(json!({"messages": out, "messages_ready": ready, "next_offset": next_offset})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// `"source"` (where each message died) or `"exchange"`.
    to: String,
    exchange: Option<String>,
    routing_key: Option<String>,
    #[serde(default, deserialize_with = "body::optional_count")]
    count: Option<u64>,
    reason: Option<String>,
    /// Only these messages: the `seq` of each, from a browse (at most 1,000).
    seqs: Option<Vec<u64>>,
}

/// `POST /api/queues/{vhost}/{name}/move`: moves up to `count` messages (all by default, at
/// most 100,000 per request) and answers once the moved copies are durable. Needs read on the
/// queue and write on the target exchange (the default exchange for `source`).
pub async fn move_messages(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: MoveBody = body::parse(&body)?;
    caller.require(&vhost, Access::Read, Resource::Queue, &name)?;
    let target = match (body.to.as_str(), body.exchange) {
        ("source", None) => MoveTarget::Source,
        ("exchange", Some(exchange)) => MoveTarget::Exchange { exchange, routing_key: body.routing_key },
        ("source", Some(_)) => return Err(MgmtError::bad_request("a move to the source names no exchange")),
        ("exchange", None) => return Err(MgmtError::bad_request("a move to an exchange needs \"exchange\"")),
        (other, _) => {
            return Err(MgmtError::bad_request(format!("\"to\" is \"source\" or \"exchange\", not \"{other}\"")))
        }
    };
    let exchange = match &target {
        MoveTarget::Exchange { exchange, .. } => exchange.clone(),
        MoveTarget::Source => String::new(),
    };
    caller.require(&vhost, Access::Write, Resource::Exchange, &exchange)?;
    let max = body.count.map_or(MAX_MOVE, |c| c.min(MAX_MOVE as u64) as usize);
    let v = m.vhost(&vhost)?;
    let queue = v.queue_for(&name, NO_CONNECTION)?;
    let only = match body.seqs {
        Some(seqs) if seqs.len() > MAX_SELECTED => {
            return Err(MgmtError::bad_request(format!("seqs names at most {MAX_SELECTED} messages")))
        }
        Some(seqs) => Some(seqs.into_iter().collect()),
        None => None,
    };
    let chosen = only.as_ref().map_or(0, |o: &std::collections::HashSet<u64>| o.len());
    let report = v.move_messages(&queue, MoveRequest { target, max, reason: body.reason, only }).await?;
    let (ready, _, _) = queue.message_counts();
    // Chosen messages that were no longer ready here (consumed, moved, expired meanwhile).
    let not_found = chosen.saturating_sub(report.moved + report.not_moved);
    Ok(Json(
        json!({"moved": report.moved, "not_moved": report.not_moved, "not_found": not_found, "messages_ready": ready}),
    ))
}
