//! One HTTP model call with the retry rules of [`retry`](super::retry) and the auth
//! profiles of [`keys`](super::keys): a 429 or an auth error rests the key and the next
//! try uses another; other retryable failures wait (the server's hint, or jittered
//! backoff) and try again, at most [`MAX_ATTEMPTS`] times in all.

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::keys::{AUTH_COOLDOWN, NoKey, Pick, RATE_COOLDOWN, Unusable};
use super::retry::{self, MAX_ATTEMPTS, MAX_DELAY, Verdict};
use super::{ErrorKind, Pool, ProviderError};
use pincer_core::metrics::catalog::ProviderMetrics;

/// The most of an error body that is read (its message is all that is wanted).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What differs between providers' error bodies.
#[derive(Debug, Clone, Copy)]
pub struct ErrorShape {
    /// The machine-readable code of an error body (`error.code` for OpenAI,
    /// `error.type` for Anthropic).
    pub code: fn(&Value) -> Option<String>,
    /// Whether an error reply (its status and body) says the request is larger than the
    /// model's context window: never retried, reported as
    /// [`ErrorKind::ContextLength`].
    pub too_long: fn(u16, &Value) -> bool,
}

/// Reads `error.message` (both providers put it there).
pub fn error_message(body: &Value) -> Option<String> {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Takes a usable key, waiting (within [`MAX_DELAY`]) for one to come back from rest.
pub async fn pick_key(pool: &Pool, provider: &str) -> Result<Pick, ProviderError> {
    loop {
        let pick = pool.keys.lock().pick(Instant::now());
        match pick {
            Ok(pick) => return Ok(pick),
            Err(NoKey::None) => {
                return Err(ProviderError::new(
                    ErrorKind::Exhausted,
                    format!("provider `{provider}` has no API key (set apiKey or apiKeys)"),
                ));
            }
            Err(NoKey::Resting(_)) if pool.keys.lock().usable().is_err() => {
                // Every key was refused: say so, not that they rest.
                let why = match pool.keys.lock().usable() {
                    Err(Unusable::Rejected(reason)) => reason,
                    _ => String::new(),
                };
                return Err(ProviderError::new(
                    ErrorKind::Exhausted,
                    format!(
                        "the API key of `{provider}` was rejected ({why}); set a valid providers.{provider}.apiKey"
                    ),
                ));
            }
            Err(NoKey::Resting(wait)) if wait <= MAX_DELAY => tokio::time::sleep(wait).await,
            Err(NoKey::Resting(wait)) => {
                return Err(ProviderError::new(
                    ErrorKind::Exhausted,
                    format!(
                        "every API key of `{provider}` is resting after rate limits or auth errors (first back in {} s)",
                        wait.as_secs()
                    ),
                ));
            }
        }
    }
}

/// Rests key `pick` after a failure with `status` (429: the hint or [`RATE_COOLDOWN`];
/// 401/403: [`AUTH_COOLDOWN`], and the key counts as rejected, for `why`). Returns whether
/// it did.
pub fn rest_key(
    pool: &Pool,
    pick: &Pick,
    status: u16,
    hint: Option<std::time::Duration>,
    why: &str,
) -> bool {
    let mut keys = pool.keys.lock();
    match status {
        // A single key resting for a hint would only delay the retry twice over.
        429 if keys.len() > 1 => {
            keys.rest(pick.index, hint.unwrap_or(RATE_COOLDOWN), Instant::now())
        }
        429 => {}
        401 | 403 => keys.reject(pick.index, why, AUTH_COOLDOWN, Instant::now()),
        _ => return false,
    }
    true
}

/// The provider a call goes to: its name, error shape, connection pool (with its keys and
/// HTTP client) and metrics.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The provider's name, in logs.
    pub provider: &'static str,
    /// How its error bodies carry their code.
    pub shape: ErrorShape,
    /// Its pool: API keys and the HTTP client.
    pub pool: &'a Pool,
    /// Its metrics.
    pub metrics: &'a ProviderMetrics,
    /// How long the upstream may take to send a byte (`providers.<name>.readTimeout`).
    pub read_timeout: Duration,
}

/// Sends `build(key)` to `target` until it succeeds or the rules say stop; `own_key` (an
/// agent's own key) is used instead of the pool's keys. The response returned has a
/// success status; its body is not read.
pub async fn post(
    target: Target<'_>,
    request_id: &str,
    own_key: Option<&str>,
    build: impl Fn(&str) -> RequestBuilder,
) -> Result<Response, ProviderError> {
    let Target {
        provider,
        shape,
        pool,
        metrics,
        read_timeout,
    } = target;
    let retries = &metrics.retries;
    let mut last = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        // An agent's own key is its only key: nothing to rest or rotate to.
        let key = match own_key {
            Some(value) => Pick {
                index: usize::MAX,
                value: value.to_string(),
            },
            None => pick_key(pool, provider).await?,
        };
        let Ok(sent) = tokio::time::timeout(read_timeout, build(&key.value).send()).await else {
            // A stalled upstream: another try would stall as long; the next model in the
            // chain may do better.
            return Err(ProviderError::new(
                ErrorKind::Exhausted,
                format!(
                    "{provider} did not answer within {} s (providers.{provider}.readTimeout)",
                    read_timeout.as_secs()
                ),
            ));
        };
        let (verdict, status) = match sent {
            Ok(response) if response.status().is_success() => {
                if own_key.is_none() {
                    pool.keys.lock().accepted(key.index);
                }
                return Ok(response);
            }
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let body: Value = tokio::time::timeout(
                    read_timeout,
                    pincer_core::net::read_capped(response, MAX_ERROR_BODY),
                )
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or(Value::Null);
                let code = (shape.code)(&body);
                let message = error_message(&body)
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
                last = format!(
                    "{} {}{}",
                    status.as_u16(),
                    code.as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    message
                );
                if (shape.too_long)(status.as_u16(), &body) {
                    // Not transient: the same request fails the same way; the session
                    // compacts its context instead.
                    tracing::info!(provider, request_id, attempt, "model call refused: {last}");
                    return Err(ProviderError::new(ErrorKind::ContextLength, last));
                }
                let hint = retry::hint(&headers);
                let rested =
                    own_key.is_none() && rest_key(pool, &key, status.as_u16(), hint, &last);
                let mut verdict = retry::verdict(status.as_u16(), &headers, code.as_deref());
                // An auth error is final for this key, not for the others.
                if rested && verdict == Verdict::Stop && pool.keys.lock().len() > 1 {
                    verdict = Verdict::Retry(Some(std::time::Duration::ZERO));
                }
                (verdict, Some(status))
            }
            Err(error) => {
                last = format!(
                    "cannot reach the API: {}",
                    pincer_core::net::without_url(&error)
                );
                (Verdict::Retry(None), None)
            }
        };
        tracing::info!(provider, request_id, attempt, "model call failed: {last}");
        let hint = match verdict {
            Verdict::Stop if matches!(status.map(|s| s.as_u16()), Some(401 | 403)) => {
                let why = match own_key {
                    Some(_) => format!("the agent's own API key was rejected ({last})"),
                    None => format!(
                        "the API key of `{provider}` was rejected ({last}); set a valid providers.{provider}.apiKey"
                    ),
                };
                return Err(refused(status, why));
            }
            Verdict::Stop => return Err(refused(status, last)),
            Verdict::Retry(hint) => hint,
        };
        if attempt == MAX_ATTEMPTS {
            break;
        }
        // A rate-limited key was rested: another key needs no wait.
        let hint = if status == Some(StatusCode::TOO_MANY_REQUESTS) && pool.keys.lock().len() > 1 {
            Some(std::time::Duration::ZERO)
        } else {
            hint
        };
        let Some(wait) = retry::delay(attempt, hint) else {
            return Err(ProviderError::new(
                ErrorKind::Exhausted,
                format!(
                    "{last} (the server asks to wait longer than {} s)",
                    MAX_DELAY.as_secs()
                ),
            ));
        };
        retries.inc();
        tokio::time::sleep(wait).await;
    }
    Err(ProviderError::new(
        ErrorKind::Exhausted,
        format!("{last} (gave up after {MAX_ATTEMPTS} tries)"),
    ))
}

/// The error for a final failure with `status`.
pub fn refused(status: Option<StatusCode>, message: String) -> ProviderError {
    let kind = match status.map(|s| s.as_u16()) {
        // Quota, auth and permission: this model (account) is out for now.
        Some(401 | 402 | 403 | 429) => ErrorKind::Exhausted,
        Some(s) if s >= 500 => ErrorKind::Exhausted,
        _ => ErrorKind::Rejected,
    };
    ProviderError::new(kind, message)
}
