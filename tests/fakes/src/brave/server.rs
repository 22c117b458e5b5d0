//! The HTTP side, in Brave's order: route, check the token, the rate limiter, then the
//! parameters, then answer. The server itself (thread, runtime, shutdown) is
//! [`crate::serve`]'s.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;

use super::state::Shared;
use super::wire::{GARBAGE, default_results, error_body, search_body, validate};
use super::{Knobs, Recorded, SEARCH_PATH};
use crate::serve::{Routes, form_pairs, header_map, json_response, raw_query, text_response};

/// Requests per second and per month in the rate-limit headers (Brave's per-plan figures
/// vary; these are plausible ones).
const LIMITS: (u64, u64) = (20, 20_000_000);

/// A month, the monthly window's `w=` in `X-RateLimit-Policy`.
const MONTH_SECS: u64 = 2_592_000;

/// One filter that takes every request; routing is done in [`answer`] so that every
/// answer, unknown paths included, is in Brave's error shape.
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    warp::method()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        // Unused (Brave's search is a GET), but read so a client's stray body is drained.
        .and(warp::body::bytes())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers,
                  _body: bytes::Bytes| {
                let shared = Arc::clone(&shared);
                let path = path.as_str().to_owned();
                async move { handle(&shared, &method, path, query, &headers).await }
            },
        )
}

/// An answer before it becomes a response.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Body,
    /// `X-RateLimit-Remaining` per second when the rate-limit headers are sent.
    remaining: Option<u64>,
}

#[derive(Debug)]
enum Body {
    Json(Value),
    /// A 200 whose body is not JSON ([`Knobs::garbage_bodies`]).
    Garbage,
}

async fn handle(
    shared: &Shared,
    method: &Method,
    path: String,
    query: String,
    headers: &HeaderMap,
) -> Response {
    let headers = header_map(headers);
    let record = Recorded {
        method: method.as_str().to_owned(),
        path,
        params: form_pairs(&query),
        query,
        token: headers.get("x-subscription-token").cloned(),
        headers,
        status: None,
        at: Instant::now(),
    };
    let latency = shared.lock().knobs.latency;
    let index = shared.record(record.clone());
    if !latency.is_zero() {
        // A client that gives up meanwhile leaves the record without a status.
        tokio::time::sleep(latency).await;
    }
    let answer = answer(shared, method, &record);
    shared.finish(index, answer.status);
    let knobs = shared.lock().knobs.clone();
    into_response(answer, &knobs)
}

fn answer(shared: &Shared, method: &Method, request: &Recorded) -> Answer {
    let error = |status: u16, code: &str, detail: &str, meta: Value| Answer {
        status,
        body: Body::Json(error_body(
            &shared.next_error_id(),
            status,
            code,
            detail,
            meta,
        )),
        remaining: None,
    };
    if request.path != SEARCH_PATH {
        return error(
            404,
            "NOT_FOUND",
            "The requested resource was not found.",
            json!({"component": "router"}),
        );
    }
    if method != Method::GET {
        return error(
            405,
            "METHOD_NOT_ALLOWED",
            "Method not allowed.",
            json!({"component": "router"}),
        );
    }
    let token = request.token.as_deref().unwrap_or("");
    let (forbidden, valid, invalid_status) = {
        let state = shared.lock();
        let k = &state.knobs;
        (
            k.forbidden_keys.iter().any(|key| key == token),
            k.valid_keys.iter().any(|key| key == token),
            k.invalid_key_status,
        )
    };
    if forbidden {
        return error(
            403,
            "SUBSCRIPTION_FORBIDDEN",
            "The subscription token is not allowed to use this endpoint.",
            json!({"component": "authentication"}),
        );
    }
    if !valid {
        return error(
            invalid_status,
            "SUBSCRIPTION_TOKEN_INVALID",
            "The provided subscription token is invalid.",
            json!({"component": "authentication"}),
        );
    }
    let limited = {
        let mut state = shared.lock();
        let k = &mut state.knobs;
        let limited = k.rate_limited_requests > 0;
        k.rate_limited_requests = k.rate_limited_requests.saturating_sub(1);
        limited
    };
    if limited {
        let mut answer = error(
            429,
            "RATE_LIMITED",
            "Request rate limit exceeded for plan.",
            json!({
                "plan": "Free",
                "rate_limit": LIMITS.0,
                "rate_current": LIMITS.0 + 1,
                "quota_limit": LIMITS.1,
                "quota_current": 1,
                "component": "rate_limiter",
            }),
        );
        answer.remaining = Some(0);
        return answer;
    }
    let search = match validate(&request.params) {
        Ok(search) => search,
        Err(errors) => {
            return error(
                422,
                "VALIDATION",
                "Unable to validate request parameter(s)",
                json!({ "errors": errors }),
            );
        }
    };
    let mut state = shared.lock();
    let k = &mut state.knobs;
    if k.garbage_bodies > 0 {
        k.garbage_bodies -= 1;
        return Answer {
            status: 200,
            body: Body::Garbage,
            remaining: Some(LIMITS.0 - 1),
        };
    }
    let mut results = k
        .results
        .clone()
        .unwrap_or_else(|| default_results(&search.q));
    let more = results.len() > search.count;
    results.truncate(search.count);
    Answer {
        status: 200,
        body: Body::Json(search_body(&search, &results, more)),
        remaining: Some(LIMITS.0 - 1),
    }
}

fn into_response(answer: Answer, knobs: &Knobs) -> Response {
    let mut response = match &answer.body {
        Body::Json(body) => json_response(answer.status, body),
        Body::Garbage => text_response(answer.status, "application/json", GARBAGE.to_owned()),
    };
    if let Some(remaining) = answer.remaining {
        // Brave sends one figure per window, the per-second one first.
        let reset = knobs.rate_limit_reset_secs;
        let values = match knobs.rate_limit_monthly_reset_secs {
            Some(monthly) => [
                format!("{}, {}", LIMITS.0, LIMITS.1),
                format!("{};w=1, {};w={MONTH_SECS}", LIMITS.0, LIMITS.1),
                format!("{remaining}, {}", LIMITS.1 - 1),
                format!("{reset}, {monthly}"),
            ],
            None => [
                LIMITS.0.to_string(),
                format!("{};w=1", LIMITS.0),
                remaining.to_string(),
                reset.to_string(),
            ],
        };
        let names = [
            "x-ratelimit-limit",
            "x-ratelimit-policy",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ];
        for (name, value) in names.into_iter().zip(values) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}
