//! An exchange's splitting (`x-split`, `warren_core::split`): the parts a message is split
//! into, each with the original's properties and the `x-split-*` headers, and the dead letter
//! of a message that cannot be split (reason `split_failed`, the error in `x-split-error`).

use super::VHost;
use crate::exchange::Exchange;
use amqp_codec::{BasicProperties, ShortStr};
use rand::Rng;
use std::sync::Arc;
use warren_core::split::{self, Split};
use warren_core::Message;

/// The header of a split's dead letter: why the message could not be split.
pub const SPLIT_ERROR_HEADER: &str = "x-split-error";

/// The id a split's parts share: the original's `message_id`, else its tracking id, else a new
/// random one.
pub(super) fn split_id(props: &BasicProperties, track: u64) -> String {
    if let Some(id) = &props.message_id {
        return id.as_str().to_owned();
    }
    if track != 0 {
        return crate::tracking::id_text(track);
    }
    format!("split-{:032x}", rand::thread_rng().gen::<u128>())
}

/// `message` as part `index` of `count` of split `split_id`.
pub(super) fn as_part(message: Message, split_id: &str, index: usize, count: usize) -> Message {
    let Some(mut props) = message.decode_properties() else { return message };
    split::stamp(props.headers.get_or_insert_with(Default::default), split_id, index, count);
    message.with_properties(&props)
}

impl VHost {
    /// The parts of `message`, which `ex` splits by a path of its body; `Err` says why it
    /// cannot be split.
    pub(super) fn split_by_path(
        &self,
        ex: &Exchange,
        split: &Split,
        message: &Message,
    ) -> Result<Vec<Arc<Message>>, String> {
        let bodies = split.parts_of(&message.body)?;
        let mut props = message.decode_properties().unwrap_or_default();
        let id = split_id(&props, message.track);
        props.content_type = Some(ShortStr::from_static("application/json"));
        let count = bodies.len();
        let parts = bodies
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let mut props = props.clone();
                split::stamp(props.headers.get_or_insert_with(Default::default), &id, index, count);
                let part = Message::new(message.exchange.clone(), message.routing_key.clone(), props.to_raw(), body)
                    .at(message.timestamp_ms)
                    .tracked(message.track);
                Arc::new(part)
            })
            .collect();
        self.tracker.split(message.track, self.timers.now_ms(), ex.name(), count);
        ex.split_counts.split(count);
        Ok(parts)
    }
}
