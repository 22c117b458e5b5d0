//! The HTTP side: routing, auth, and turning an outcome into a response. The server
//! itself (thread, runtime, shutdown) is [`crate::serve`]'s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use warp::http::Method;
use warp::http::header::{HeaderMap, HeaderName, HeaderValue};
use warp::{Filter, Reply};

use super::model::display_name;
use super::reply::{Outcome, plan};
use super::state::Shared;
use super::validate::{ApiError, check_version, invalid, validate};
use super::wire::{
    End, MessageMeta, Step, Timing, body_stream, delta_count, error_json, message_json, sse_steps,
    turn_events,
};
use super::{Knobs, Recorded};
use crate::serve::{Routes, header_map, raw_query, status_code};

/// One filter that takes every request: routing is done by hand in [`handle`] so that
/// unknown routes and methods get the API's JSON 404 rather than warp's rejections.
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    warp::method()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(
            move |method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body: Bytes| {
                let shared = Arc::clone(&shared);
                let req = Incoming {
                    method,
                    path: path.as_str().to_owned(),
                    query,
                    headers,
                    body,
                };
                async move { handle(&shared, req).await }
            },
        )
}

/// A request as received.
#[derive(Debug)]
struct Incoming {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A response body: whole, or planned as timed steps.
#[derive(Debug)]
enum Body {
    Full(Bytes),
    Steps(VecDeque<Step>),
}

/// A decided response.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Body,
    /// Wait before sending headers (a non-streaming reply's generation time).
    delay: Duration,
}

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream; charset=utf-8";

impl Answer {
    fn json(status: u16, value: &Value) -> Answer {
        Answer {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: Body::Full(Bytes::from(value.to_string())),
            delay: Duration::ZERO,
        }
    }

    fn error(err: ApiError, request_id: &str) -> Answer {
        let mut answer = Answer::json(err.status, &error_json(&err, request_id));
        answer.headers = err.headers;
        answer
    }

    fn steps(content_type: &'static str, steps: VecDeque<Step>) -> Answer {
        Answer {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: Body::Steps(steps),
            delay: Duration::ZERO,
        }
    }

    fn into_response(self, request_id: &str) -> warp::reply::Response {
        let mut resp = match self.body {
            Body::Full(bytes) => bytes.to_vec().into_response(),
            Body::Steps(steps) => warp::reply::stream(body_stream(steps)).into_response(),
        };
        *resp.status_mut() = status_code(self.status);
        let headers = resp.headers_mut();
        headers.insert("content-type", HeaderValue::from_static(self.content_type));
        if self.content_type == SSE {
            headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("request-id", v);
        }
        for (name, value) in self.headers {
            // Scripted headers come from tests; skip any that are not valid HTTP.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(n, v);
            }
        }
        resp
    }
}

async fn handle(shared: &Shared, req: Incoming) -> warp::reply::Response {
    let at = Instant::now();
    let request_id = shared.next_id("req");
    let answer = match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/v1/messages") => messages(shared, &req, &request_id).await,
        ("GET", "/v1/models") => models(shared, &req, None, &request_id),
        ("GET", path) => match path.strip_prefix("/v1/models/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                models(shared, &req, Some(id), &request_id)
            }
            _ => not_found(&req, &request_id),
        },
        _ => not_found(&req, &request_id),
    };
    record(shared, &req, at, &answer);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    answer.into_response(&request_id)
}

fn not_found(req: &Incoming, request_id: &str) -> Answer {
    let err = ApiError::new(
        404,
        "not_found_error",
        format!("Not found: {} {}", req.method, req.path),
    );
    Answer::error(err, request_id)
}

/// Records the request and counts the answer, under one lock so snapshots agree.
fn record(shared: &Shared, req: &Incoming, at: Instant, answer: &Answer) {
    let recorded = Recorded {
        method: req.method.as_str().to_owned(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers: header_map(&req.headers),
        body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
        at,
        status: answer.status,
    };
    let mut state = shared.lock();
    let counters = &mut state.counters;
    if answer.status >= 400 {
        *counters.errors_by_status.entry(answer.status).or_insert(0) += 1;
    }
    if answer.status == 429 {
        counters.rate_limited += 1;
    }
    if answer.status == 200 && answer.content_type == SSE {
        counters.streamed += 1;
    }
    state.records.push(recorded);
}

/// Checks `x-api-key`: missing or unknown → 401; throttled → 429 with `retry-after`.
fn authenticate(knobs: &Knobs, req: &Incoming) -> Result<(), ApiError> {
    let Some(key) = req.header("x-api-key") else {
        return Err(ApiError::new(
            401,
            "authentication_error",
            "x-api-key header is required",
        ));
    };
    if knobs.rate_limited_keys.iter().any(|k| k == key) {
        let mut err = ApiError::new(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization",
        );
        err.headers.push((
            "retry-after".to_owned(),
            knobs.rate_limit_retry_after.to_string(),
        ));
        return Err(err);
    }
    if !knobs.valid_keys.iter().any(|k| k == key) {
        return Err(ApiError::new(
            401,
            "authentication_error",
            "invalid x-api-key",
        ));
    }
    Ok(())
}

/// `POST /v1/messages`.
async fn messages(shared: &Shared, req: &Incoming, request_id: &str) -> Answer {
    let knobs = {
        let mut state = shared.lock();
        state.counters.requests += 1;
        state.knobs.clone()
    };
    if !knobs.handshake_delay.is_zero() {
        tokio::time::sleep(knobs.handshake_delay).await;
    }
    match answer_messages(shared, &knobs, req, request_id) {
        Ok(answer) => answer,
        Err(err) => Answer::error(err, request_id),
    }
}

fn answer_messages(
    shared: &Shared,
    knobs: &Knobs,
    req: &Incoming,
    request_id: &str,
) -> Result<Answer, ApiError> {
    authenticate(knobs, req)?;
    check_version(req.header("anthropic-version"))?;
    if req.body.len() > knobs.max_body_bytes {
        return Err(ApiError::new(
            413,
            "request_too_large",
            format!(
                "Request exceeds the maximum allowed number of bytes ({})",
                knobs.max_body_bytes
            ),
        ));
    }
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| invalid(format!("There was an error parsing the body as JSON: {e}")))?;
    let request = validate(&body)?;
    // The window is checked on a valid request, before it is planned (so it takes no
    // script), as the API counts tokens only of a request it can read.
    if let Some(limit) = knobs.context_limit
        && request.input_tokens > limit
    {
        shared.lock().counters.context_exceeded += 1;
        return Err(invalid(format!(
            "prompt is too long: {} tokens > {limit} maximum",
            request.input_tokens
        )));
    }
    // Only a valid request consumes a script: the queue scripts what a good request
    // meets, not what a malformed one does.
    let script = shared.lock().scripts.pop_front();
    let outcome = plan(&request, script, || shared.next_id("toolu"));
    let meta = MessageMeta {
        id: shared.next_id("msg"),
        model: request.model.clone(),
        input_tokens: request.input_tokens,
    };
    let timing = Timing {
        first_token: knobs.first_token_delay,
        token: knobs.token_delay,
        ping_every: knobs.ping_interval,
    };
    let count = |f: fn(&mut super::Counters)| f(&mut shared.lock().counters);
    let answer = match outcome {
        Outcome::Error(err) => return Err(err),
        Outcome::Hang => {
            count(|c| c.hangs += 1);
            let content_type = if request.stream { SSE } else { JSON };
            Answer::steps(content_type, VecDeque::from([Step::Hang]))
        }
        Outcome::Turn(turn) if request.stream => {
            let events = turn_events(&meta, &turn);
            Answer::steps(SSE, sse_steps(&events, timing, End::Complete))
        }
        Outcome::Turn(turn) => {
            // A non-streaming answer arrives only once the whole turn is "generated".
            let tokens = u32::try_from(delta_count(&turn)).unwrap_or(u32::MAX);
            let mut answer = Answer::json(200, &message_json(&meta, &turn));
            answer.delay = timing.first_token + timing.token * tokens.saturating_sub(1);
            answer
        }
        Outcome::StreamError { turn, after, error } if request.stream => {
            count(|c| c.stream_errors += 1);
            let events = turn_events(&meta, &turn);
            let payload = error_json(&error, request_id);
            Answer::steps(
                SSE,
                sse_steps(&events, timing, End::ErrorAfter(after, payload)),
            )
        }
        Outcome::StreamError { error, .. } => return Err(error),
        Outcome::Cut { turn, after } if request.stream => {
            count(|c| c.cuts += 1);
            let events = turn_events(&meta, &turn);
            Answer::steps(SSE, sse_steps(&events, timing, End::CutAfter(after)))
        }
        Outcome::Cut { turn, .. } => {
            count(|c| c.cuts += 1);
            let full = Bytes::from(message_json(&meta, &turn).to_string());
            let half = full.slice(..full.len() / 2);
            Answer::steps(
                JSON,
                VecDeque::from([
                    Step::Data(half),
                    Step::Sleep(Duration::from_millis(20)),
                    Step::Cut,
                ]),
            )
        }
    };
    Ok(answer)
}

/// `GET /v1/models` and `GET /v1/models/{id}`: authenticated, token-free.
fn models(shared: &Shared, req: &Incoming, one: Option<&str>, request_id: &str) -> Answer {
    let knobs = {
        let mut state = shared.lock();
        state.counters.models_list += 1;
        state.knobs.clone()
    };
    match list_models(&knobs, req, one) {
        Ok(value) => Answer::json(200, &value),
        Err(err) => Answer::error(err, request_id),
    }
}

fn model_json(id: &str) -> Value {
    json!({
        "type": "model",
        "id": id,
        "display_name": display_name(id),
        "created_at": "2025-01-01T00:00:00Z",
    })
}

fn list_models(knobs: &Knobs, req: &Incoming, one: Option<&str>) -> Result<Value, ApiError> {
    authenticate(knobs, req)?;
    check_version(req.header("anthropic-version"))?;
    if let Some(id) = one {
        return match knobs.models.iter().find(|m| *m == id) {
            Some(m) => Ok(model_json(m)),
            None => Err(ApiError::new(
                404,
                "not_found_error",
                format!("model: {id}"),
            )),
        };
    }
    // Pagination as the API does it: `limit` (1..=1000, default 20), `after_id`,
    // `before_id`.
    let mut limit = 20usize;
    let mut start = 0usize;
    let mut end = knobs.models.len();
    for (key, value) in req.query.split('&').filter_map(|kv| kv.split_once('=')) {
        let position = |id: &str| knobs.models.iter().position(|m| m == id);
        match key {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| invalid("limit: Input should be between 1 and 1000"))?;
            }
            "after_id" => start = position(value).map_or(end, |p| p + 1),
            "before_id" => end = position(value).unwrap_or(0),
            _ => {}
        }
    }
    let page: Vec<&String> = knobs
        .models
        .iter()
        .take(end)
        .skip(start)
        .take(limit)
        .collect();
    let has_more = start + page.len() < end;
    Ok(json!({
        "data": page.iter().map(|m| model_json(m)).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first(),
        "last_id": page.last(),
    }))
}
