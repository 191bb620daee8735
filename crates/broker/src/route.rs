//! Routing one message through an exchange graph: bindings, exchange-to-exchange hops, alternate
//! exchanges, and the CC/BCC sender-selected routing keys. Each queue is reached at most once.

use crate::exchange::{Dest, Exchange};
use crate::message_view::MessageView;
use crate::{Queue, VHost};
use amqp_codec::{BasicProperties, FieldTable, FieldValue};
use std::sync::Arc;
use warren_core::Message;

/// Headers are decoded from the raw properties at most once per message, and only if a headers
/// exchange or CC/BCC needs them.
pub(crate) struct LazyHeaders<'a> {
    message: &'a Message,
    decoded: Option<Option<FieldTable>>,
}

impl<'a> LazyHeaders<'a> {
    pub fn new(message: &'a Message) -> Self {
        LazyHeaders { message, decoded: None }
    }

    pub fn get(&mut self) -> Option<&FieldTable> {
        if self.decoded.is_none() {
            let headers = if amqp_codec::raw_properties::has_headers(&self.message.properties) {
                BasicProperties::decode(self.message.properties.clone()).ok().and_then(|p| p.headers)
            } else {
                None
            };
            self.decoded = Some(headers);
        }
        self.decoded.as_ref().and_then(|h| h.as_ref())
    }
}

/// Where a message is routed: queues, and queues bound through a transform (with its name).
#[derive(Default)]
pub(crate) struct Reached {
    pub queues: Vec<Arc<Queue>>,
    pub transformed: Vec<(Arc<Queue>, Arc<str>)>,
}

impl Reached {
    fn len(&self) -> usize {
        self.queues.len() + self.transformed.len()
    }
}

/// Collect the queues `message` reaches from `exchange` with `routing_key` into `out`;
/// filtered bindings judge the message through `view`.
pub(crate) fn route(
    vhost: &VHost,
    exchange: &Arc<Exchange>,
    routing_key: &str,
    headers: &mut LazyHeaders<'_>,
    view: &MessageView<'_>,
    out: &mut Reached,
) {
    let mut visited: Vec<*const Exchange> = Vec::new();
    route_from(vhost, exchange, routing_key, headers, view, out, &mut visited);
}

/// The queues `message` reaches from `exchange` with each of `keys` (each queue once), for
/// republishing paths that route a message the broker made (dead letters, moves). Bindings
/// with a transform do not take these: their queues want the transform's shape.
pub(crate) fn queues_for<K: AsRef<str>>(
    vhost: &VHost,
    exchange: &Arc<Exchange>,
    keys: &[K],
    message: &Message,
) -> Vec<Arc<Queue>> {
    let mut reached = Reached::default();
    let mut headers = LazyHeaders::new(message);
    let view = MessageView::new(message);
    for key in keys {
        route(vhost, exchange, key.as_ref(), &mut headers, &view, &mut reached);
    }
    reached.queues
}

fn route_from(
    vhost: &VHost,
    exchange: &Arc<Exchange>,
    routing_key: &str,
    headers: &mut LazyHeaders<'_>,
    view: &MessageView<'_>,
    out: &mut Reached,
    visited: &mut Vec<*const Exchange>,
) {
    if visited.contains(&Arc::as_ptr(exchange)) {
        return;
    }
    let before = out.len();
    if exchange.is_default() {
        if let Some(q) = vhost.queue(routing_key) {
            push_unique(&mut out.queues, q);
        }
        return;
    }
    let mut next_hops: Vec<Arc<Exchange>> = Vec::new();
    {
        let bindings = exchange.bindings.read();
        let header_table = if bindings.needs_headers() { headers.get() } else { None };
        bindings.route(routing_key, header_table, &mut |filter| filter.matches(view), &mut |dest| match dest {
            Dest::Queue(q) => push_unique(&mut out.queues, q.clone()),
            Dest::Exchange(e) => next_hops.push(e.clone()),
            Dest::Transformed(q, t) => {
                if !out.transformed.iter().any(|(o, u)| Arc::ptr_eq(o, q) && u == t) {
                    out.transformed.push((q.clone(), t.clone()));
                }
            }
        });
    }
    let alternate = if out.len() == before { exchange.alternate_in(vhost) } else { None };
    if next_hops.is_empty() && alternate.is_none() {
        return; // the common case: no hop to follow, so no cycle detection and no allocation
    }
    visited.push(Arc::as_ptr(exchange));
    for hop in next_hops {
        route_from(vhost, &hop, routing_key, headers, view, out, visited);
    }
    if out.len() == before {
        if let Some(ae) = alternate {
            route_from(vhost, &ae, routing_key, headers, view, out, visited);
        }
    }
}

fn push_unique(out: &mut Vec<Arc<Queue>>, q: Arc<Queue>) {
    if !out.iter().any(|o| Arc::ptr_eq(o, &q)) {
        out.push(q);
    }
}

/// Routing keys named by the `CC` and `BCC` headers (sender-selected distribution).
pub(crate) fn sender_selected_keys(headers: &FieldTable) -> Vec<String> {
    let mut keys = Vec::new();
    for name in ["CC", "BCC"] {
        if let Some(FieldValue::Array(values)) = headers.get(name) {
            keys.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    }
    keys
}
