//! An exchange's transform (`x-transform`) in the publish pipeline. The message's JSON view goes
//! to a transform worker on a task of its own, so the publishing connection never waits for a
//! program: the publish answers at once (held, like a delayed message), and the outputs are
//! routed through the exchange when the worker answers. A persistent message's confirm waits
//! for every output (or for its dead letter) to be durable, and is a nack if one is refused or
//! the failed message has nowhere to go. A failure (the program's error, a body that is not
//! JSON, the time or output budget, a crashed worker, a missing transform) dead-letters the
//! message with reason `transform_failed` and the error in `x-transform-error`.

use super::{Confirm, Routed, VHost};
use crate::durable::OnDurable;
use crate::exchange::{Exchange, TransformAt};
use crate::transforms::view;
use amqp_codec::{FieldValue, ShortStr};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use warren_core::dead_letter::Reason;
use warren_core::Message;

/// The header of a transform's dead letter: what went wrong.
pub const TRANSFORM_ERROR_HEADER: &str = "x-transform-error";
/// The header naming the transform (`name/version`) on its outputs and dead letters.
pub const TRANSFORM_HEADER: &str = "x-transform";
/// The longest error text a dead letter carries.
const MAX_ERROR_TEXT: usize = 1000;

impl VHost {
    /// Sends `message` through `ex`'s transform; its outputs are routed when they come.
    pub(super) fn transform_then_route(
        &self,
        ex: &Arc<Exchange>,
        at: &TransformAt,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let confirm = if on_durable.is_some() { Confirm::WhenDurable } else { Confirm::Now };
        let held = Routed { queues: 1, confirm, ..Routed::default() };
        let settle = Joined::new(on_durable);
        let Some(transform) = self.transforms.get(&self.name, &at.name) else {
            let error = format!("no transform '{}' in vhost '{}'", at.name, self.name);
            self.transform_failed(ex, &message, &at.name, &error, settle);
            return held;
        };
        let label = format!("{}/{}", transform.name, transform.version);
        let input = match view::message_view(&message) {
            Ok(input) => input,
            Err(error) => {
                self.transform_failed(ex, &message, &label, &error, settle);
                return held;
            }
        };
        let (book, vhost, ex) = (self.transforms.clone(), at.vhost.clone(), ex.clone());
        let in_flight = book.begin();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let outcome = book.run(&transform, input).await;
            // A vhost deleted meanwhile took the exchange with it: nothing to route to, and its
            // connections are closed (the confirm goes with them).
            let Some(vhost) = vhost.upgrade() else { return };
            match outcome {
                Ok(outputs) => vhost.route_outputs(&ex, &message, &label, &outputs, settle),
                Err(failure) => vhost.transform_failed(&ex, &message, &label, &failure.to_string(), settle),
            }
        });
        held
    }

    /// Routes each output of `message`'s transform through `ex`; an output that is not a
    /// message fails the whole message (nothing is routed).
    fn route_outputs(
        &self,
        ex: &Arc<Exchange>,
        message: &Message,
        label: &str,
        outputs: &[serde_json::Value],
        settle: Arc<Joined>,
    ) {
        let made: Result<Vec<Message>, String> =
            outputs.iter().map(|out| view::output_message(message, out).map(|m| stamped(m, label))).collect();
        let made = match made {
            Ok(made) => made,
            Err(error) => return self.transform_failed(ex, message, label, &error, settle),
        };
        self.tracker.transformed(message.track, self.timers.now_ms(), label, made.len());
        settle.expect(made.len());
        for out in made {
            let part = settle.part();
            let for_store = part.clone();
            let routed = self.route_and_deliver(ex, Arc::new(out), Some(Box::new(move |ok| for_store.settle(ok))));
            match routed.confirm {
                Confirm::Now => part.settle(!routed.rejected),
                Confirm::Refused => part.settle(false),
                Confirm::WhenDurable if routed.rejected => part.settle(false),
                Confirm::WhenDurable => {}
            }
        }
    }

    /// Dead-letters `message`, on which transform `label` failed with `error`.
    fn transform_failed(&self, ex: &Arc<Exchange>, message: &Message, label: &str, error: &str, settle: Arc<Joined>) {
        let now_ms = self.timers.now_ms();
        let error = warren_core::text::cut(error, MAX_ERROR_TEXT);
        let headers = vec![
            (ShortStr::from_static(TRANSFORM_HEADER), long_str(label)),
            (ShortStr::from_static(TRANSFORM_ERROR_HEADER), long_str(&error)),
        ];
        settle.expect(1);
        let part = settle.part();
        let for_store = part.clone();
        let callback: OnDurable = Box::new(move |ok| for_store.settle(ok));
        let what = (ex.name(), label, error.as_str());
        match self.dead_letter_unrouted(ex, message, Reason::TransformFailed, headers, (None, None), Some(callback)) {
            Ok((routed, dlx, queues)) => {
                let taken = !routed.rejected && routed.confirm != Confirm::Refused;
                self.tracker.transform_failed(message.track, now_ms, what, taken.then_some((dlx.as_str(), queues)));
                match routed.confirm {
                    Confirm::Now => part.settle(!routed.rejected),
                    Confirm::Refused => part.settle(false),
                    Confirm::WhenDurable if routed.rejected => part.settle(false),
                    Confirm::WhenDurable => {}
                }
            }
            Err(_) => {
                tracing::debug!(exchange = ex.name(), transform = label, error = %error,
                    "a failed transform's message has no dead-letter exchange to go to");
                self.tracker.transform_failed(message.track, now_ms, what, None);
                part.settle(false);
            }
        }
    }
}

fn long_str(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

/// An output with the transform that made it in its headers.
fn stamped(message: Message, label: &str) -> Message {
    let Some(mut props) = message.decode_properties() else { return message };
    props.headers.get_or_insert_with(Default::default).insert(ShortStr::from_static(TRANSFORM_HEADER), long_str(label));
    message.with_properties(&props)
}

/// A publisher's confirm that the parts a transform made settle together: `true` once every
/// part is durable (or needed no disk), `false` if any was refused.
struct Joined {
    confirm: Mutex<Option<OnDurable>>,
    remaining: AtomicUsize,
    ok: AtomicBool,
}

impl Joined {
    fn new(confirm: Option<OnDurable>) -> Arc<Joined> {
        Arc::new(Joined { confirm: Mutex::new(confirm), remaining: AtomicUsize::new(0), ok: AtomicBool::new(true) })
    }

    /// `parts` will settle (none: the confirm goes now).
    fn expect(self: &Arc<Self>, parts: usize) {
        if parts == 0 {
            self.finish();
        }
        self.remaining.store(parts, Ordering::SeqCst);
    }

    fn part(self: &Arc<Self>) -> Arc<Part> {
        Arc::new(Part { joined: self.clone(), done: AtomicBool::new(false) })
    }

    fn finish(&self) {
        if let Some(confirm) = self.confirm.lock().take() {
            confirm(self.ok.load(Ordering::SeqCst));
        }
    }
}

/// One part of a [`Joined`] confirm; settles once, whichever of the router and the store says
/// first.
struct Part {
    joined: Arc<Joined>,
    done: AtomicBool,
}

impl Part {
    fn settle(&self, ok: bool) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        if !ok {
            self.joined.ok.store(false, Ordering::SeqCst);
        }
        if self.joined.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.joined.finish();
        }
    }
}
