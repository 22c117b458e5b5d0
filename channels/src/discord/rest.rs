//! The Discord REST client: `Authorization: Bot TOKEN`, per-route rate-limit buckets read
//! from the `X-RateLimit-*` headers, the global limit (50 requests a second), and 429s
//! honoured from `retry_after`, `global` telling which of the two to pause.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::pace::{Pacer, Rate};
use crate::push::SendError;

/// Default REST base.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";

/// Discord's global limit.
const GLOBAL_RATE: Rate = Rate {
    burst: 50,
    per: Duration::from_millis(20),
};

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// 429s in a row before a send is left for later.
const MAX_RATE_LIMITED: u32 = 5;

/// Tries of a request that failed on the network or with a 5xx.
const MAX_TRANSIENT: u32 = 3;

/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// A REST client for one bot.
pub struct Rest {
    http: reqwest::Client,
    base: String,
    auth: String,
    global: Pacer,
    /// Per route: requests left in the window and when it resets.
    routes: Mutex<HashMap<String, (u64, Instant)>>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// An answer that is not a success.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {route}: {detail}")]
pub struct RestError {
    method: &'static str,
    route: String,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    detail: String,
}

// === impl Rest ===

impl Rest {
    /// A client for the bot with `token` at `base`.
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            auth: format!("Bot {token}"),
            global: Pacer::new(GLOBAL_RATE),
            routes: Mutex::default(),
        }
    }

    /// `GET /gateway/bot`: the socket URL.
    pub async fn gateway_url(&self) -> Result<String, RestError> {
        let answer = self.request("GET", "/gateway/bot", None, "gateway").await?;
        answer
            .get("url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RestError {
                method: "GET",
                route: "/gateway/bot".into(),
                status: Some(200),
                detail: "answer has no `url`".into(),
            })
    }

    /// Posts `content` in `channel`, as a reply to `reply_to` when given.
    pub async fn post_message(
        &self,
        channel: &str,
        content: &str,
        reply_to: Option<&str>,
    ) -> Result<Value, SendError> {
        let mut body = json!({ "content": content, "allowed_mentions": {"parse": []} });
        if let Some(id) = reply_to {
            body["message_reference"] = json!({"message_id": id, "fail_if_not_exists": false});
        }
        let path = format!("/channels/{channel}/messages");
        self.request("POST", &path, Some(body), &format!("messages:{channel}"))
            .await
            .map_err(|e| match e.status {
                Some(s) if (400..500).contains(&s) && s != 429 => {
                    SendError::Permanent(e.to_string())
                }
                _ => SendError::Transient(e.to_string()),
            })
    }

    /// Shows "typing…" in `channel` (best effort).
    pub async fn typing(&self, channel: &str) {
        let path = format!("/channels/{channel}/typing");
        let _ = self
            .request("POST", &path, None, &format!("typing:{channel}"))
            .await;
    }

    /// One request under the limits, honouring 429s and trying transient failures again.
    async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
        route: &str,
    ) -> Result<Value, RestError> {
        let fail = |status: Option<u16>, detail: String| RestError {
            method,
            route: path.to_string(),
            status,
            detail,
        };
        let (mut limited, mut failed) = (0, 0);
        loop {
            self.wait_route(route).await;
            self.global.wait("", GLOBAL_RATE).await;
            let mut request = match method {
                "GET" => self.http.get(format!("{}{path}", self.base)),
                _ => self.http.post(format!("{}{path}", self.base)),
            }
            .header("authorization", &self.auth)
            .timeout(TIMEOUT);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    failed += 1;
                    if failed >= MAX_TRANSIENT {
                        return Err(fail(None, describe(&e)));
                    }
                    tokio::time::sleep(Duration::from_millis(500) * failed).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            self.note_route(route, response.headers());
            let header_secs = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let retry_header = header_secs("retry-after");
            let global_header = response.headers().get("x-ratelimit-global").is_some();
            let bytes = pincer_core::net::read_capped(response, MAX_ANSWER_BYTES)
                .await
                .map_err(|e| fail(Some(status), e))?;
            let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            match status {
                200..=299 => return Ok(answer),
                429 => {
                    let secs = answer
                        .get("retry_after")
                        .and_then(Value::as_f64)
                        .or(retry_header)
                        .unwrap_or(1.0)
                        .clamp(0.0, 3600.0);
                    let wait = Duration::from_secs_f64(secs);
                    let global = answer
                        .get("global")
                        .and_then(Value::as_bool)
                        .unwrap_or(global_header);
                    if global {
                        self.global.pause(None, GLOBAL_RATE, wait);
                    } else {
                        self.routes
                            .lock()
                            .insert(route.to_string(), (0, Instant::now() + wait));
                    }
                    limited += 1;
                    if limited >= MAX_RATE_LIMITED {
                        return Err(fail(Some(429), format!("rate limited {limited} times")));
                    }
                }
                500..=599 => {
                    failed += 1;
                    if failed >= MAX_TRANSIENT {
                        return Err(fail(Some(status), message(&answer)));
                    }
                    tokio::time::sleep(Duration::from_millis(500) * failed).await;
                }
                _ => return Err(fail(Some(status), message(&answer))),
            }
        }
    }

    /// Waits while `route`'s window is used up.
    async fn wait_route(&self, route: &str) {
        let until = {
            let routes = self.routes.lock();
            match routes.get(route) {
                Some((0, reset)) if *reset > Instant::now() => Some(*reset),
                _ => None,
            }
        };
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Reads `X-RateLimit-Remaining` and `X-RateLimit-Reset-After` for `route`.
    fn note_route(&self, route: &str, headers: &reqwest::header::HeaderMap) {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(remaining), Some(after)) =
            (get("x-ratelimit-remaining"), get("x-ratelimit-reset-after"))
        {
            let reset = Instant::now() + Duration::from_secs_f64(after.clamp(0.0, 3600.0));
            self.routes
                .lock()
                .insert(route.to_string(), (remaining.max(0.0) as u64, reset));
        }
    }
}

fn message(answer: &Value) -> String {
    let text = answer
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    match answer.get("code").and_then(Value::as_u64) {
        Some(code) => format!("{text} (code {code})"),
        None => text.to_string(),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        "request failed".into()
    }
}
