//! Callbacks: when a message with a callback URL is finished, Warren POSTs its status there,
//! signed as Standard Webhooks describe (`webhook-id`, `webhook-timestamp`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`). A non-2xx answer or no
//! answer is retried with exponential backoff and jitter, within a number of attempts and a
//! total time; every attempt is in the status. Outgoing calls have a timeout and a concurrency
//! limit.

use crate::outgoing::Outgoing;
use crate::{ApiError, Settings};
use axum::http::StatusCode;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_broker::tracking::{id_text, Attempt, CallbackState, Tracker};
use warren_broker::Broker;

/// The prefix of a Standard Webhooks secret; the rest is the base64 key.
pub const SECRET_PREFIX: &str = "whsec_";

/// The key of a `whsec_...` secret; `None` if it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (!key.is_empty()).then_some(key)
}

/// The `webhook-signature` value for `body` sent as message `id` at `timestamp_s`.
pub fn signature(key: &[u8], id: &str, timestamp_s: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp_s}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// An outgoing URL (a callback, or a push subscription's) that the configuration allows, and the
/// key to sign the calls to it with: the given `whsec_` secret, else the vhost's.
pub(crate) fn check_target(
    settings: &Settings,
    vhost: &str,
    url: String,
    secret: Option<String>,
) -> Result<(String, Vec<u8>), ApiError> {
    let parsed = reqwest::Url::parse(&url).map_err(|_| ApiError::bad_request(format!("invalid URL '{url}'")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::bad_request(format!("URL '{url}' is not http or https")));
    }
    // Credentials in a URL would also let `http://allowed:@elsewhere/` pass a prefix check.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::bad_request(format!("URL '{url}' carries credentials")));
    }
    // The prefixes are matched against the URL as parsed (host lower-cased, default port
    // dropped), so spelling cannot slip past them.
    let url = parsed.to_string();
    let allow = &settings.callback_allow;
    if !allow.is_empty() && !allow.iter().any(|prefix| url.starts_with(prefix.as_str())) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("URL '{url}' is not allowed")));
    }
    let secret = secret.or_else(|| settings.callback_secrets.get(vhost).cloned()).ok_or_else(|| {
        ApiError::bad_request("signing needs a secret: one given with the request, or one configured for the vhost")
    })?;
    let key =
        secret_key(&secret).ok_or_else(|| ApiError::bad_request("a secret is 'whsec_' followed by a base64 key"))?;
    Ok((url, key))
}

/// Starts the task that calls back for finished messages.
pub fn start(broker: Broker, settings: Settings, limit: Arc<Outgoing>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    broker.tracker().on_finished(tx);
    let client = reqwest::Client::builder().timeout(settings.callback_timeout).build().expect("an HTTP client");
    tokio::spawn(async move {
        while let Some(id) = rx.recv().await {
            let (tracker, client, settings, limit) =
                (broker.tracker().clone(), client.clone(), settings.clone(), limit.clone());
            tokio::spawn(async move { call_back(&tracker, &client, &settings, &limit, id).await });
        }
    });
}

async fn call_back(tracker: &Tracker, client: &reqwest::Client, settings: &Settings, limit: &Outgoing, id: u64) {
    let started = Instant::now();
    let webhook_id = format!("msg_{}", id_text(id));
    for attempt in 1..=settings.callback_max_attempts {
        let Some((url, key, status)) = tracker.callback_payload(id) else { return };
        let body = serde_json::to_vec(&status).expect("a status serializes");
        let timestamp_s = now_s();
        // None: the API is stopping; the journal has the callback, a restart resumes it.
        let Some(permit) = limit.permit().await else { return };
        let result = {
            client
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", &webhook_id)
                .header("webhook-timestamp", timestamp_s.to_string())
                .header("webhook-signature", signature(&key, &webhook_id, timestamp_s, &body))
                .body(body)
                .send()
                .await
        };
        let at_ms = now_ms();
        let (record, delivered) = match result {
            Ok(resp) => {
                (Attempt { at_ms, status: Some(resp.status().as_u16()), error: None }, resp.status().is_success())
            }
            Err(e) => (Attempt { at_ms, status: None, error: Some(short_error(&e)) }, false),
        };
        let out_of_time = started.elapsed() >= settings.callback_max_time;
        let state = match (delivered, attempt == settings.callback_max_attempts || out_of_time) {
            (true, _) => CallbackState::Delivered,
            (false, true) => CallbackState::Failed,
            (false, false) => CallbackState::Sending,
        };
        tracker.callback_attempt(id, record, state);
        // Recorded before the permit goes: shutting down waits for the permits.
        drop(permit);
        if state != CallbackState::Sending {
            return;
        }
        tokio::time::sleep(backoff(settings, attempt)).await;
    }
}

/// The wait after attempt `n` (1-based): the base doubled each time, capped, with ±20% jitter.
pub(crate) fn backoff(settings: &Settings, n: u32) -> Duration {
    let exp = settings.callback_backoff_base.saturating_mul(1u32 << n.min(20).saturating_sub(1));
    let capped = exp.min(settings.callback_max_backoff);
    capped.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

pub(crate) fn short_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub(crate) fn now_s() -> u64 {
    now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(secret_key("MfKQ9r8"), None);
        assert_eq!(secret_key("whsec_"), None);
    }
}
