//! Length limits: `x-max-length` and `x-max-length-bytes` (ready messages only, as in RabbitMQ),
//! kept by dropping the head (`drop-head`, the default) or by refusing new messages
//! (`reject-publish`, and `reject-publish-dlx` which also dead-letters what it refuses).

use super::{DeadLetter, Queue, QueueState};
use std::sync::Arc;
use warren_core::dead_letter::Reason;
use warren_core::queue_args::Overflow;
use warren_core::Message;

impl Queue {
    /// Whether the ready messages plus `extra` more, of `extra_bytes` bytes, exceed a limit.
    fn over_limit(&self, st: &QueueState, extra: u64, extra_bytes: u64) -> bool {
        let count = st.messages.ready_count() as u64 + extra;
        let bytes = st.messages.ready_bytes() + extra_bytes;
        self.args().max_length.is_some_and(|max| count > max)
            || self.args().max_length_bytes.is_some_and(|max| bytes > max)
    }

    /// Whether the queue refuses `message` because taking it would exceed a limit and its
    /// overflow is one of the reject modes.
    pub(super) fn refuses(&self, st: &QueueState, message: &Message) -> bool {
        self.args().overflow != Overflow::DropHead && self.over_limit(st, 1, message.body_len() as u64)
    }

    /// A message the queue refused: `reject-publish-dlx` dead-letters it (reason `maxlen`).
    pub(super) fn refused(self: &Arc<Self>, message: Arc<Message>) {
        if self.args().overflow == Overflow::RejectPublishDlx {
            self.dead_letter(vec![DeadLetter {
                stored: None,
                reason: Reason::Maxlen,
                body: Some(message),
                announced: false,
            }]);
        }
    }

    /// With `drop-head`, takes out the oldest ready messages while over a limit, to be
    /// dead-lettered with reason `maxlen`.
    pub(super) fn drop_over_limit(&self, st: &mut QueueState) {
        if self.args().overflow != Overflow::DropHead {
            return;
        }
        while self.over_limit(st, 0, 0) {
            let Some(dropped) = st.messages.drop_head() else { break };
            st.dead.push((dropped, Reason::Maxlen));
        }
    }
}
