//! Transforms on bindings: a queue bound with `x-transform` in the binding's arguments gets
//! what that transform makes of each message routed to it, so each destination of one event
//! can have its own shape. A message that reaches such bindings is delivered once every one of
//! its transforms has answered: its plain copies and every output in one group (one store
//! record, one confirm). A copy whose transform fails is dead-lettered through that queue's
//! dead-letter exchange (reason `transform_failed`, the error in `x-transform-error`); with
//! none, the publisher's confirm is a nack. Dead letters and moves do not take such bindings.

use super::grouped::GroupItem;
use super::transforming::{failure_headers, held, stamped, Joined, MAX_ERROR_TEXT};
use super::{Routed, VHost};
use crate::durable::OnDurable;
use crate::exchange::Exchange;
use crate::transforms::view;
use crate::Queue;
use std::sync::Arc;
use warren_core::dead_letter::Reason;
use warren_core::Message;

/// One copy of a message on its way through a binding's transform.
struct Job {
    message: Arc<Message>,
    queue: Arc<Queue>,
    transform: Arc<str>,
}

/// What became of a job: the transform's label and its outputs, or why it failed.
type Ran = (String, Result<Vec<serde_json::Value>, String>);

impl VHost {
    /// Delivers `items` once the transforms of their transformed bindings have answered.
    pub(super) fn deliver_through_transforms(
        &self,
        ex: &Arc<Exchange>,
        items: Vec<GroupItem>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let (held, settle) = held(on_durable);
        let mut jobs = Vec::new();
        let mut direct = Vec::with_capacity(items.len());
        for item in items {
            for (queue, transform) in item.transformed {
                jobs.push(Job { message: item.message.clone(), queue, transform });
            }
            if !item.targets.is_empty() {
                direct.push(GroupItem { message: item.message, targets: item.targets, transformed: Vec::new() });
            }
        }
        let Some(weak) = jobs.first().map(|j| j.queue.vhost_weak()) else {
            self.finish_binding_transforms(ex, direct, Vec::new(), settle);
            return held;
        };
        let (book, vhost_name, ex) = (self.transforms.clone(), self.name.clone(), ex.clone());
        let in_flight = book.begin(jobs.len());
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let mut ran: Vec<Option<Ran>> = jobs.iter().map(|_| None).collect();
            let mut names: Vec<Arc<str>> = jobs.iter().map(|j| j.transform.clone()).collect();
            names.dedup();
            names.sort();
            names.dedup();
            for name in names {
                let chosen: Vec<usize> = (0..jobs.len()).filter(|&i| jobs[i].transform == name).collect();
                let Some(transform) = book.get(&vhost_name, &name) else {
                    let error = format!("no transform '{name}' in vhost '{vhost_name}'");
                    chosen.iter().for_each(|&i| ran[i] = Some((name.to_string(), Err(error.clone()))));
                    continue;
                };
                let label = format!("{}/{}", transform.name, transform.version);
                let mut runnable = Vec::new();
                for &i in &chosen {
                    match view::message_view(&jobs[i].message) {
                        Ok(input) => runnable.push((i, input)),
                        Err(error) => ran[i] = Some((label.clone(), Err(error))),
                    }
                }
                let (at, inputs): (Vec<usize>, Vec<_>) = runnable.into_iter().unzip();
                for (i, result) in at.into_iter().zip(book.run_all(&transform, inputs).await) {
                    ran[i] = Some((label.clone(), result.map_err(|e| e.to_string())));
                }
            }
            let Some(vhost) = weak.upgrade() else { return };
            let done = jobs.into_iter().zip(ran).filter_map(|(job, ran)| ran.map(|r| (job, r))).collect();
            vhost.finish_binding_transforms(&ex, direct, done, settle);
        });
        held
    }

    /// Delivers the plain copies and every output as one group; dead-letters the failed copies.
    fn finish_binding_transforms(
        &self,
        ex: &Arc<Exchange>,
        mut items: Vec<GroupItem>,
        done: Vec<(Job, Ran)>,
        settle: Arc<Joined>,
    ) {
        let mut failures = Vec::new();
        for (job, (label, result)) in done {
            let made: Result<Vec<Message>, String> = result.and_then(|outs| {
                outs.iter()
                    .map(|out| view::output_message(&job.message, out).map(|m| stamped(m, &label, &job.message)))
                    .collect()
            });
            match made {
                Ok(made) => {
                    self.tracker.transformed(job.message.track, self.timers.now_ms(), &label, made.len());
                    for message in made {
                        let targets = vec![job.queue.clone()];
                        items.push(GroupItem { message: Arc::new(message), targets, transformed: Vec::new() });
                    }
                }
                Err(error) => failures.push((job, label, error)),
            }
        }
        settle.expect(failures.len() + usize::from(!items.is_empty()));
        for (job, label, error) in failures {
            let part = settle.part();
            let error = warren_core::text::cut(&error, MAX_ERROR_TEXT);
            let Some(mut props) = job.message.decode_properties() else {
                part.settle(false);
                continue;
            };
            let headers = props.headers.get_or_insert_with(Default::default);
            for (name, value) in failure_headers(&label, &error) {
                headers.insert(name, value);
            }
            let failed = job.message.with_properties(&props);
            let now_ms = self.timers.now_ms();
            let for_store = part.clone();
            let callback: OnDurable = Box::new(move |ok| for_store.settle(ok));
            let (confirm, queues) =
                self.republish_dead_letter(&job.queue, &failed, Reason::TransformFailed, now_ms, Vec::new(), callback);
            let dlx = job.queue.args().dead_letter_exchange.clone().unwrap_or_default();
            let taken = (!queues.is_empty()).then_some((dlx.as_str(), queues));
            let went = taken.is_some();
            self.tracker.transform_failed(job.message.track, now_ms, (ex.name(), &label, &error), taken);
            match went {
                true => part.settle_by(&Routed { confirm, ..Routed::default() }),
                false => part.settle(false),
            }
        }
        if !items.is_empty() {
            let part = settle.part();
            let for_store = part.clone();
            let routed = self.deliver_group(items, Some(Box::new(move |ok| for_store.settle(ok))));
            part.settle_by(&routed);
        }
    }
}
