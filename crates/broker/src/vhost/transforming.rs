//! An exchange's shaping in the publish pipeline: its splitting (`x-split`, `splitting.rs`) and
//! its transform (`x-transform`). The parts and outputs of one message are routed as one group
//! (`grouped.rs`: stored in one record, one confirm). The message's JSON view goes
//! to a transform worker on a task of its own, so the publishing connection never waits for a
//! program: the publish answers at once (held, like a delayed message), and the outputs are
//! routed through the exchange when the worker answers. A persistent message's confirm waits
//! for every output (or for its dead letter) to be durable, and is a nack if one is refused or
//! the failed message has nowhere to go. A failure (the program's error, a body that is not
//! JSON, the time or output budget, a crashed worker, a missing transform) dead-letters the
//! message with reason `transform_failed` and the error in `x-transform-error`.

use super::grouped::GroupItem;
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
use warren_core::split::{self, SplitBy};
use warren_core::Message;

/// The header of a transform's dead letter: what went wrong.
pub const TRANSFORM_ERROR_HEADER: &str = "x-transform-error";
/// The header naming the transform (`name/version`) on its outputs and dead letters.
pub const TRANSFORM_HEADER: &str = "x-transform";
/// The longest error text a dead letter carries.
pub(super) const MAX_ERROR_TEXT: usize = 1000;

/// The outputs of one run, or why it failed.
type RunResult = Result<Vec<serde_json::Value>, String>;

/// Why a message could not be shaped at its exchange.
enum Failed<'a> {
    Split(&'a str),
    Transform { label: &'a str, error: &'a str },
}

impl VHost {
    /// Publishes `message` to `ex`, which splits it (`x-split`) or transforms it
    /// (`x-transform`) or both (split, then each part transformed): its parts and outputs are
    /// stored as one group and routed through `ex`; what fails is dead-lettered on its own.
    pub(super) fn shape_then_route(
        &self,
        ex: &Arc<Exchange>,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let by_path = ex.split.as_ref().filter(|s| matches!(s.by, SplitBy::Path(_)));
        let inputs = match by_path {
            None => vec![message],
            Some(split) => match self.split_by_path(ex, split, &message) {
                Ok(parts) => parts,
                Err(error) => {
                    let (held, settle) = held(on_durable);
                    settle.expect(1);
                    self.failed_at_exchange(ex, &message, Failed::Split(&error), settle.part());
                    return held;
                }
            },
        };
        let Some(at) = &ex.transform else {
            let items: Vec<GroupItem> = inputs.into_iter().map(|m| self.targets_of(ex, m)).collect();
            if items.iter().any(|i| !i.transformed.is_empty()) {
                return self.deliver_through_transforms(ex, items, on_durable);
            }
            return self.deliver_group(items, on_durable);
        };
        let split_outputs = ex.split.as_ref().is_some_and(|s| s.by == SplitBy::Transform);
        self.transform_then_route(ex, at, inputs, split_outputs, on_durable)
    }

    /// Sends each of `inputs` through `ex`'s transform; their outputs are routed when they
    /// come (as the parts of a split, with `split_outputs`).
    fn transform_then_route(
        &self,
        ex: &Arc<Exchange>,
        at: &TransformAt,
        inputs: Vec<Arc<Message>>,
        split_outputs: bool,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let (held, settle) = held(on_durable);
        let Some(transform) = self.transforms.get(&self.name, &at.name) else {
            let error = format!("no transform '{}' in vhost '{}'", at.name, self.name);
            settle.expect(inputs.len());
            for input in &inputs {
                self.failed_at_exchange(ex, input, Failed::Transform { label: &at.name, error: &error }, settle.part());
            }
            return held;
        };
        let label = format!("{}/{}", transform.name, transform.version);
        let (mut viewed, mut unreadable) = (Vec::new(), Vec::new());
        for input in inputs {
            match view::message_view(&input) {
                Ok(view) => viewed.push((input, view)),
                Err(error) => unreadable.push((input, error)),
            }
        }
        let (book, vhost, ex) = (self.transforms.clone(), at.vhost.clone(), ex.clone());
        let in_flight = book.begin(viewed.len().max(1));
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let (inputs, views): (Vec<_>, Vec<_>) = viewed.into_iter().unzip();
            let results = book.run_all(&transform, views).await;
            // A vhost deleted meanwhile took the exchange with it: nothing to route to, and its
            // connections are closed (the confirm goes with them).
            let Some(vhost) = vhost.upgrade() else { return };
            let ran = inputs.into_iter().zip(results.into_iter().map(|r| r.map_err(|f| f.to_string()))).collect();
            vhost.route_outputs(&ex, &label, ran, unreadable, split_outputs, settle);
        });
        held
    }

    /// Routes the outputs of each input's run through `ex`, all of them as one group; an input
    /// whose run failed (or made an output that is not a message) is dead-lettered instead.
    fn route_outputs(
        &self,
        ex: &Arc<Exchange>,
        label: &str,
        ran: Vec<(Arc<Message>, RunResult)>,
        mut failures: Vec<(Arc<Message>, String)>,
        split_outputs: bool,
        settle: Arc<Joined>,
    ) {
        let mut outputs = Vec::new();
        let mut track = 0;
        for (input, result) in ran {
            track = input.track;
            let made: Result<Vec<Message>, String> = result.and_then(|outs| {
                outs.iter().map(|out| view::output_message(&input, out).map(|m| stamped(m, label, &input))).collect()
            });
            match made {
                Ok(made) => outputs.extend(made),
                Err(error) => failures.push((input, error)),
            }
        }
        if split_outputs && failures.is_empty() {
            let props = outputs.first().and_then(Message::decode_properties).unwrap_or_default();
            let (id, count) = (super::splitting::split_id(&props, track), outputs.len());
            outputs =
                outputs.into_iter().enumerate().map(|(i, m)| super::splitting::as_part(m, &id, i, count)).collect();
            self.tracker.split(track, self.timers.now_ms(), ex.name(), count);
            ex.split_counts.split(count);
        }
        if track != 0 && !outputs.is_empty() {
            self.tracker.transformed(track, self.timers.now_ms(), label, outputs.len());
        }
        let items: Vec<GroupItem> = outputs.into_iter().map(|m| self.targets_of(ex, Arc::new(m))).collect();
        settle.expect(failures.len() + usize::from(!items.is_empty()));
        for (input, error) in &failures {
            self.failed_at_exchange(ex, input, Failed::Transform { label, error }, settle.part());
        }
        if !items.is_empty() {
            let part = settle.part();
            let for_store = part.clone();
            let callback: OnDurable = Box::new(move |ok| for_store.settle(ok));
            let routed = if items.iter().any(|i| !i.transformed.is_empty()) {
                self.deliver_through_transforms(ex, items, Some(callback))
            } else {
                self.deliver_group(items, Some(callback))
            };
            part.settle_by(&routed);
        }
    }

    /// Dead-letters `message`, which `ex` could not split or transform.
    fn failed_at_exchange(&self, ex: &Arc<Exchange>, message: &Message, failed: Failed, part: Arc<Part>) {
        let now_ms = self.timers.now_ms();
        let (reason, headers, error) = match failed {
            Failed::Split(error) => {
                ex.split_counts.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let error = warren_core::text::cut(error, MAX_ERROR_TEXT);
                let headers = vec![(ShortStr::from_static(super::splitting::SPLIT_ERROR_HEADER), long_str(&error))];
                (Reason::SplitFailed, headers, error)
            }
            Failed::Transform { label, error } => {
                let error = warren_core::text::cut(error, MAX_ERROR_TEXT);
                (Reason::TransformFailed, failure_headers(label, &error), error)
            }
        };
        let track = |taken: Option<(&str, Vec<String>)>| match failed {
            Failed::Split(_) => self.tracker.split_failed(message.track, now_ms, (ex.name(), &error), taken),
            Failed::Transform { label, .. } => {
                self.tracker.transform_failed(message.track, now_ms, (ex.name(), label, &error), taken)
            }
        };
        let for_store = part.clone();
        let callback: OnDurable = Box::new(move |ok| for_store.settle(ok));
        match self.dead_letter_unrouted(ex, message, reason, headers, (None, None), Some(callback)) {
            Ok((routed, dlx, queues)) => {
                let taken = !routed.rejected && routed.confirm != Confirm::Refused;
                track(taken.then_some((dlx.as_str(), queues)));
                part.settle_by(&routed);
            }
            Err(_) => {
                tracing::debug!(exchange = ex.name(), reason = reason.as_str(), error = %error,
                    "a message its exchange could not shape has no dead-letter exchange to go to");
                track(None);
                part.settle(false);
            }
        }
    }
}

/// The answer to a publish whose routing comes later (`queues: 1`, so it is never returned as
/// unroutable), and the confirm its parts settle together.
pub(super) fn held(on_durable: Option<OnDurable>) -> (Routed, Arc<Joined>) {
    let confirm = if on_durable.is_some() { Confirm::WhenDurable } else { Confirm::Now };
    (Routed { queues: 1, confirm, ..Routed::default() }, Joined::new(on_durable))
}

pub(super) fn long_str(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

/// The headers of a transform's dead letter: which transform (`name/version`) and what went
/// wrong.
pub(super) fn failure_headers(label: &str, error: &str) -> Vec<(ShortStr, FieldValue)> {
    vec![
        (ShortStr::from_static(TRANSFORM_HEADER), long_str(label)),
        (ShortStr::from_static(TRANSFORM_ERROR_HEADER), long_str(error)),
    ]
}

/// An output with the transform that made it in its headers, and the split headers of the
/// part it was made of (a program that replaced the headers keeps the part's place).
pub(super) fn stamped(message: Message, label: &str, input: &Message) -> Message {
    let Some(mut props) = message.decode_properties() else { return message };
    let headers = props.headers.get_or_insert_with(Default::default);
    headers.insert(ShortStr::from_static(TRANSFORM_HEADER), long_str(label));
    if let Some(from) = input.decode_properties().and_then(|p| p.headers) {
        for name in [split::ID_HEADER, split::INDEX_HEADER, split::COUNT_HEADER] {
            if let Some(value) = from.get(name) {
                headers.insert(ShortStr::from_static(name), value.clone());
            }
        }
    }
    message.with_properties(&props)
}

/// A publisher's confirm that the parts a transform made settle together: `true` once every
/// part is durable (or needed no disk), `false` if any was refused.
pub(super) struct Joined {
    confirm: Mutex<Option<OnDurable>>,
    remaining: AtomicUsize,
    ok: AtomicBool,
}

impl Joined {
    fn new(confirm: Option<OnDurable>) -> Arc<Joined> {
        Arc::new(Joined { confirm: Mutex::new(confirm), remaining: AtomicUsize::new(0), ok: AtomicBool::new(true) })
    }

    /// `parts` will settle (none: the confirm goes now).
    pub(super) fn expect(self: &Arc<Self>, parts: usize) {
        if parts == 0 {
            self.finish();
        }
        self.remaining.store(parts, Ordering::SeqCst);
    }

    pub(super) fn part(self: &Arc<Self>) -> Arc<Part> {
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
pub(super) struct Part {
    joined: Arc<Joined>,
    done: AtomicBool,
}

impl Part {
    /// Settles as the routing of its message says, or leaves it to the store's callback.
    pub(super) fn settle_by(&self, routed: &Routed) {
        match routed.confirm {
            Confirm::Now => self.settle(!routed.rejected),
            Confirm::Refused => self.settle(false),
            Confirm::WhenDurable if routed.rejected => self.settle(false),
            Confirm::WhenDurable => {}
        }
    }

    pub(super) fn settle(&self, ok: bool) {
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
