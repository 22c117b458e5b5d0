//! The Bot API client: `POST {apiBase}/bot<TOKEN>/<method>` with a JSON body, answered
//! `{"ok":true,"result":...}` or `{"ok":false,"error_code","description","parameters"}`.
//!
//! The token is part of every URL, so no URL is ever logged or put in an error: errors
//! name the method only.

use std::time::Duration;

use serde_json::Value;

/// Default Bot API base.
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";

/// Largest answer read from the Bot API (a full `getUpdates` batch is well under this).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The Bot API answered `ok: false`.
    #[error("{method}: {code} {description}")]
    Refused {
        /// The method called.
        method: &'static str,
        /// `error_code` (the HTTP status).
        code: u16,
        /// `description`.
        description: String,
        /// `parameters.retry_after`, for 429.
        retry_after: Option<Duration>,
    },
    /// No answer (connect, timeout, reset) or one that is not the Bot API's shape.
    #[error("{method}: {detail}")]
    Transport {
        /// The method called.
        method: &'static str,
        /// What happened (never the URL: it holds the token).
        detail: String,
    },
}

/// A Bot API client for one bot.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// `{base}/bot{token}`: never shown.
    root: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

// === impl ApiError ===

impl ApiError {
    /// The HTTP status, when the Bot API answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            Self::Transport { .. } => None,
        }
    }

    /// Whether the description contains `text` (Telegram's descriptions are the only way
    /// to tell some 400s apart).
    pub fn says(&self, text: &str) -> bool {
        matches!(self, Self::Refused { description, .. } if description.contains(text))
    }
}

// === impl Api ===

impl Api {
    /// A client for the bot with `token` at `base` (no trailing slash needed).
    pub fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            root: format!("{}/bot{token}", base.trim_end_matches('/')),
        }
    }

    /// Calls `method` with `body`, waiting at most `timeout` for the answer.
    pub async fn call(
        &self,
        method: &'static str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let transport = |detail: String| ApiError::Transport { method, detail };
        let response = self
            .http
            .post(format!("{}/{method}", self.root))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| transport(describe(&e)))?;
        let status = response.status().as_u16();
        let bytes = pincer_core::net::read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| transport(e.to_string()))?;
        let answer: Value = serde_json::from_slice(&bytes).map_err(|_| {
            transport(format!(
                "HTTP {status} with a body that is not Bot API JSON ({} bytes)",
                bytes.len()
            ))
        })?;
        if answer.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
        let code = answer
            .get("error_code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(status);
        let description = answer
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("no description")
            .to_string();
        let retry_after = answer
            .pointer("/parameters/retry_after")
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        Err(ApiError::Refused {
            method,
            code,
            description,
            retry_after,
        })
    }
}

/// A reqwest error without its URL (which holds the token).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "answer cut short"
    } else {
        "request failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    if detail.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {detail}")
    }
}
