//! The management API client of `warren admin`: HTTP Basic, JSON in and out, and an error that
//! says what the broker answered.

use super::AdminArgs;
use serde_json::Value;
use std::time::Duration;

pub struct Client {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

/// A path segment percent-encoded (a vhost `/` is `%2F`, as the API wants).
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Client {
    pub fn new(args: &AdminArgs) -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout_s.max(1)))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Client {
            http,
            base: args.url.trim_end_matches('/').to_owned(),
            user: args.user.clone(),
            password: args.password.clone(),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, String> {
        self.send("GET", path, None).await
    }

    /// Sends `method path` with `body` as JSON; the answer's JSON (`null` when empty), or the
    /// status and the broker's reason.
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.answer(req).await
    }

    /// `DELETE /api/connections/{name}` with the reason RabbitMQ reads from `X-Reason`.
    pub async fn close_connection(&self, name: &str, reason: &str) -> Result<Value, String> {
        let url = format!("{}/api/connections/{}", self.base, enc(name));
        let req = self.http.delete(url).basic_auth(&self.user, Some(&self.password)).header("x-reason", reason);
        self.answer(req).await
    }

    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let resp = req.send().await.map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| format!("reading the answer: {e}"))?;
        let body: Value =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if status.is_success() {
            return Ok(body);
        }
        let reason =
            body["reason"].as_str().map(str::to_owned).unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(format!("{status}: {}", reason.trim()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_encoded_as_the_api_wants() {
        assert_eq!(super::enc("/"), "%2F");
        assert_eq!(super::enc("orders.dlq"), "orders.dlq");
        assert_eq!(super::enc("a b->c"), "a%20b-%3Ec");
    }
}
