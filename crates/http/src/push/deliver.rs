//! A subscription's deliveries: each message the queue hands it is POSTed (signed, with retries
//! and backoff) until a 2xx acks it or its attempts run out; with a transform, each output in
//! turn.

use super::*;

/// Pushes what the queue hands the subscription until it is stopped; a queue deletion removes
/// the subscription.
pub(super) async fn run(
    subs: Weak<Subscriptions>,
    live: Arc<Live>,
    mut pushes: mpsc::UnboundedReceiver<Entry>,
    client: reqwest::Client,
    settings: Settings,
    outgoing: Arc<Outgoing>,
) {
    let mut stop = live.sink.stop.subscribe();
    loop {
        tokio::select! {
            entry = pushes.recv() => {
                let Some(entry) = entry else { return };
                tokio::spawn(push(live.clone(), entry, client.clone(), settings.clone(), outgoing.clone()));
            }
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    let Some(subs) = subs.upgrade() else { return };
    if live.queue.is_deleted() {
        let mut all = subs.live.lock();
        if all.get(&live.def.id).is_some_and(|l| Arc::ptr_eq(l, &live)) {
            all.remove(&live.def.id);
            subs.save(&all);
        }
    }
}

/// The request body of one push.
#[derive(Serialize)]
struct Payload<'a> {
    subscription: &'a str,
    queue: &'a str,
    attempt: u32,
    #[serde(flatten)]
    message: &'a MessageJson,
}

/// Pushes one message (or what its subscription's transform makes of it, each in turn) until
/// it is accepted, its attempts run out, or the subscription stops.
async fn push(live: Arc<Live>, entry: Entry, client: reqwest::Client, settings: Settings, outgoing: Arc<Outgoing>) {
    let shaped = match &live.def.transform {
        None => vec![MessageJson::of(&entry)],
        Some(name) => match shaping::shape(&live.sink.broker, &live.def.vhost, name, &entry).await {
            Ok(shaped) => shaped,
            Err(error) => {
                *live.sink.last_failure.lock() = Some(Failure { at_ms: now_ms(), status: None, error: Some(error) });
                live.sink.dead_lettered.fetch_add(1, Ordering::Relaxed);
                live.fail(entry.seq, warren_core::dead_letter::Reason::TransformFailed);
                return;
            }
        },
    };
    for (part, message) in shaped.iter().enumerate() {
        if !push_one(&live, &entry, part, message, &client, &settings, &outgoing).await {
            return;
        }
    }
    live.sink.succeeded.fetch_add(1, Ordering::Relaxed);
    live.settle(entry.seq, true);
}

/// Pushes one JSON message of `entry` until it is accepted (true), or its attempts run out
/// (the entry is rejected) or the subscription stops (false).
async fn push_one(
    live: &Arc<Live>,
    entry: &Entry,
    part: usize,
    message: &MessageJson,
    client: &reqwest::Client,
    settings: &Settings,
    outgoing: &Arc<Outgoing>,
) -> bool {
    // The same on every attempt, different for every message and subscription (a receiver
    // that drops repeated ids loses nothing).
    let mut webhook_id = match entry.message.track {
        0 => format!("push_{}_{:08x}_{}", live.def.id, live.epoch, entry.seq),
        track => format!("push_{}_{}", live.def.id, id_text(track)),
    };
    if part > 0 {
        webhook_id.push_str(&format!("_{part}"));
    }
    let mut stop = live.sink.stop.subscribe();
    for attempt in 1..=live.def.max_attempts {
        if *stop.borrow() {
            return false;
        }
        let payload = Payload { subscription: &live.def.id, queue: &live.def.queue, attempt, message };
        let body = serde_json::to_vec(&payload).expect("a payload serializes");
        // None: the API is stopping. And a call waiting for its turn does not start once the
        // subscription stopped.
        let Some(permit) = outgoing.permit().await else { return false };
        if *stop.borrow() {
            return false;
        }
        let timestamp_s = now_s();
        let result = client
            .post(&live.def.url)
            .header("content-type", "application/json")
            .header("webhook-id", &webhook_id)
            .header("webhook-timestamp", timestamp_s.to_string())
            .header("webhook-signature", signature(&live.key, &webhook_id, timestamp_s, &body))
            .body(body)
            .send()
            .await;
        live.sink.attempts.fetch_add(1, Ordering::Relaxed);
        count(&live.sink.broker.http_stats().push_attempts);
        let failure = match result {
            // Settled before the permit goes: shutting down waits for the permits.
            Ok(resp) if resp.status().is_success() => {
                count(&live.sink.broker.http_stats().push_succeeded);
                drop(permit);
                return true;
            }
            Ok(resp) => Failure { at_ms: now_ms(), status: Some(resp.status().as_u16()), error: None },
            Err(e) => Failure { at_ms: now_ms(), status: None, error: Some(short_error(&e)) },
        };
        *live.sink.last_failure.lock() = Some(failure);
        if attempt == live.def.max_attempts {
            live.sink.dead_lettered.fetch_add(1, Ordering::Relaxed);
            count(&live.sink.broker.http_stats().push_dead_lettered);
            live.settle(entry.seq, false);
            return false;
        }
        drop(permit);
        tokio::select! {
            _ = tokio::time::sleep(backoff(settings, attempt)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return false,
        }
    }
    false
}
