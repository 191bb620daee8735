//! A push subscription's transform: each message goes through it (in a transform worker)
//! before it is pushed, and each output is pushed in turn; the message is acked once every
//! output was accepted. A message the transform fails on is dead-lettered by its queue with
//! reason `transform_failed` (the error is the subscription's `last_failure`).

use crate::message_json::MessageJson;
use std::sync::Arc;
use warren_broker::transforms::view;
use warren_broker::Broker;
use warren_core::Entry;

/// What transform `name` makes of `entry`, as the JSON messages to push (none: nothing to push,
/// the message is acked); or why it failed.
pub(super) async fn shape(broker: &Broker, vhost: &str, name: &str, entry: &Entry) -> Result<Vec<MessageJson>, String> {
    let book = broker.transform_book();
    let transform = book.get(vhost, name).ok_or_else(|| format!("no transform '{name}' in vhost '{vhost}'"))?;
    let input = view::message_view(&entry.message)?;
    let outputs = book.run(&transform, input).await.map_err(|e| e.to_string())?;
    outputs
        .iter()
        .map(|out| {
            let mut shaped = entry.clone();
            shaped.message = Arc::new(view::output_message(&entry.message, out)?);
            Ok(MessageJson::of(&shaped))
        })
        .collect()
}
