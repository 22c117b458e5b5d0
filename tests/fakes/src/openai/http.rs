//! The HTTP side: routing, `POST /v1/responses` as SSE, `GET /v1/models` and the 404 for
//! everything else. WebSocket upgrades are handed to [`super::ws`]; the server itself
//! (thread, runtime, shutdown) is [`crate::serve`]'s.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::errors::ApiError;
use super::plan::{Out, Plan, decide, event_type};
use super::state::{Shared, bump};
use super::wire::{authenticate, is_warmup};
use super::{Recorded, Transport, player, ws};
use crate::serve::{Routes, header_map, json_body, json_response};

/// Every route: WebSocket upgrades of `/v1/responses`, then plain HTTP.
pub(super) fn routes(shared: Arc<Shared>) -> impl Routes {
    let upgrade_shared = Arc::clone(&shared);
    let upgrade = warp::path!("v1" / "responses")
        .and(warp::ws())
        .and(warp::header::headers_cloned())
        .then(move |socket, headers| ws::upgrade(socket, headers, Arc::clone(&upgrade_shared)));
    let plain = warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .then(move |method, path: warp::path::FullPath, headers, body| {
            let shared = Arc::clone(&shared);
            async move { plain_http(shared, method, path.as_str().to_owned(), headers, body).await }
        });
    upgrade.or(plain).unify()
}

async fn plain_http(
    shared: Arc<Shared>,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = header_map(&headers);
    let request = Request {
        method: method.as_str().to_owned(),
        path,
        headers,
        body: json_body(&body),
    };
    match (method, request.path.trim_end_matches('/')) {
        (Method::POST, "/v1/responses") => responses(&shared, request).await,
        (Method::GET, "/v1/models") => models(&shared, request),
        _ => {
            let err = ApiError::invalid_url(&request.method, &request.path);
            request.record(&shared, Transport::Other, None);
            error_response(&shared, &err)
        }
    }
}

/// An HTTP request, as recorded.
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    /// `Err(raw text)` when the body is not JSON.
    body: Result<Value, String>,
}

impl Request {
    fn record(&self, shared: &Shared, transport: Transport, plan: Option<&Plan>) {
        shared.record(Recorded {
            transport,
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            body: match &self.body {
                Ok(v) => v.clone(),
                Err(raw) => Value::String(raw.clone()),
            },
            connection: None,
            at: Instant::now(),
            continuation: plan.is_some_and(|p| p.continuation),
            warmup: plan.is_some_and(|p| p.warmup),
        });
    }
}

async fn responses(shared: &Arc<Shared>, request: Request) -> Response {
    let knobs = shared.knobs();
    // A fresh HTTPS request pays a connection set-up; WebSocket mode pays it once per socket.
    if !knobs.handshake_delay.is_zero() {
        tokio::time::sleep(knobs.handshake_delay).await;
    }
    let outcome = (|| {
        let key = authenticate(&knobs, &request.headers)?;
        if let Ok(body) = &request.body
            && !is_warmup(body)
        {
            bump(&shared.counters.sse_requests);
        }
        if knobs.rate_limited_keys.contains(&key) {
            return Err(ApiError::rate_limited(knobs.retry_after_ms));
        }
        match &request.body {
            Ok(body) if body.is_object() => decide(shared, body, None),
            _ => Err(ApiError::invalid_json()),
        }
    })();
    request.record(shared, Transport::Sse, outcome.as_ref().ok());
    match outcome {
        Err(err) => error_response(shared, &err),
        Ok(plan) => {
            if plan.warmup {
                bump(&shared.counters.warmups);
            }
            if plan.hangs_at_start() {
                return hang(shared).await;
            }
            sse_response(shared, plan)
        }
    }
}

/// "Accept and never answer": no status line until the sockets are killed, then a body
/// that aborts at once (the connection is dropped).
async fn hang(shared: &Shared) -> Response {
    let mut kill = shared.kill_watch();
    let _ = kill.changed().await;
    let aborted = futures::stream::iter([Err::<Bytes, _>(io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by the fake",
    ))]);
    warp::reply::stream(aborted).into_response()
}

fn sse_response(shared: &Arc<Shared>, plan: Plan) -> Response {
    let mut events = player::spawn(Arc::clone(shared), plan);
    let body = futures::stream::poll_fn(move |cx| events.poll_recv(cx)).map(|out| match out {
        Out::Event(event) => Ok(Bytes::from(sse_frame(&event))),
        // An error makes hyper abort the connection mid-body, with no terminating chunk:
        // what a client sees when the upstream connection dies.
        Out::Cut(_) => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "stream cut by the fake",
        )),
    });
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    add_common_headers(shared, headers, false);
    response
}

/// `event: TYPE\ndata: JSON\n\n`.
fn sse_frame(event: &Value) -> String {
    format!(
        "event: {}\ndata: {}\n\n",
        event_type(event).unwrap_or("message"),
        event
    )
}

fn models(shared: &Shared, request: Request) -> Response {
    bump(&shared.counters.models_calls);
    let knobs = shared.knobs();
    request.record(shared, Transport::Models, None);
    if let Err(err) = authenticate(&knobs, &request.headers) {
        return error_response(shared, &err);
    }
    let data: Vec<Value> = knobs
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}))
        .collect();
    let mut response = json_response(200, &json!({"object": "list", "data": data}));
    add_common_headers(shared, response.headers_mut(), false);
    response
}

/// The JSON error answer, counted, with the error's own headers on top of the usual ones.
pub(super) fn error_response(shared: &Shared, err: &ApiError) -> Response {
    err.count(shared);
    let mut response = json_response(err.status, &err.http_body());
    let headers = response.headers_mut();
    add_common_headers(shared, headers, err.status == 429);
    for (name, value) in &err.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    response
}

/// `x-request-id` and the `x-ratelimit-*` family the real API sends on every answer.
pub(super) fn add_common_headers(shared: &Shared, headers: &mut HeaderMap, exhausted: bool) {
    let request_id = shared.next_id("req");
    let remaining_requests = if exhausted { "0" } else { "9999" };
    let pairs = [
        ("x-request-id", request_id.as_str()),
        ("openai-processing-ms", "1"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", remaining_requests),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-limit-tokens", "30000000"),
        ("x-ratelimit-remaining-tokens", "29999000"),
        ("x-ratelimit-reset-tokens", "2ms"),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
}
