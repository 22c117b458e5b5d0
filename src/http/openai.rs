//! The OpenAI-compatible API: `POST /v1/chat/completions` (streaming and not) and
//! `GET /v1/models`, shaped as OpenAI's Chat Completions so the official SDKs work.
//!
//! - `model`: `pincer:<agent>` or `<agent>`.
//! - The session is the header `x-pincer-session`, else the body's `user`, else
//!   `anonymous`; the session keeps the conversation, so only the last user message of
//!   `messages` is new input.
//! - `Idempotency-Key`: a retry with the same key (in the same session, with the same
//!   request) gets the same reply, never a second turn; the same key with a different
//!   request is refused (422 `idempotency_key_reused`).
//! - A turn that fails mid-stream ends the stream with an OpenAI streaming error event
//!   (`data: {"error": {...}}`), not with its message as text.

use std::convert::Infallible;
use std::time::Duration;

use futures::Stream;
use ractor::rpc::CallResult;
use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::sse::Event;
use warp::{Filter, Reply};

use super::{ApiError, authenticated};
use crate::channel::http::HttpLinkMsg;
use crate::channel::{Delivery, IntakeError, Waiter};
use crate::topology::Topology;
use pincer_core::{Inbound, PeerRef, now_ms};
use pincer_store::Accepted;

/// How long a request waits for its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the link may take to make a message durable.
const INTAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The API routes.
pub fn routes(gw: Topology) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    let max_body = gw.config().gateway.max_body_bytes;
    let with_gw = {
        let gw = gw.clone();
        warp::any().map(move || gw.clone())
    };
    let v1 = warp::path("v1").and(authenticated(gw.clone()));

    let models = v1
        .clone()
        .and(warp::path("models"))
        .and(warp::path::end())
        .and(warp::get())
        .and(with_gw.clone())
        .map(|gw: Topology| {
            let data: Vec<Value> = gw
                .config()
                .agents
                .keys()
                .map(|id| json!({"id": format!("pincer:{id}"), "object": "model", "created": 0, "owned_by": "pincer"}))
                .collect();
            warp::reply::json(&json!({"object": "list", "data": data})).into_response()
        });

    let completions = v1
        .and(warp::path!("chat" / "completions"))
        .and(warp::post())
        .and(with_gw)
        .and(warp::header::optional::<String>("x-pincer-session"))
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(warp::body::content_length_limit(max_body))
        // JSON whatever the Content-Type says: `curl -d` sends form encoding by default.
        .and(
            warp::body::bytes().and_then(|body: bytes::Bytes| async move {
                serde_json::from_slice::<Value>(&body).map_err(|e| {
                    warp::reject::custom(ApiError::bad_request(format!(
                        "the body is not JSON: {e}"
                    )))
                })
            }),
        )
        .then(chat_completions);

    models.or(completions).unify().boxed()
}

/// A parsed request.
#[derive(Debug)]
struct ChatRequest {
    agent: String,
    model: String,
    text: String,
    stream: bool,
    include_usage: bool,
    session: String,
}

fn parse(
    gw: &Topology,
    body: &Value,
    session_header: Option<String>,
) -> Result<ChatRequest, ApiError> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("`model` is required (pincer:<agent> or <agent>)"))?;
    let agent = model.strip_prefix("pincer:").unwrap_or(model);
    if !gw.config().agents.contains_key(agent) {
        return Err(ApiError::not_found(
            format!("The model `{model}` does not exist: no agent `{agent}` (see GET /v1/models)"),
            "model_not_found",
        ));
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("`messages` must be a non-empty array"))?;
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .ok_or_else(|| ApiError::bad_request("`messages` has no message with role `user`"))?;
    let text = content_text(last_user.get("content"))
        .ok_or_else(|| ApiError::bad_request("the last user message has no text content"))?;
    let session = session_header
        .or_else(|| body.get("user").and_then(Value::as_str).map(str::to_string))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "anonymous".to_string());
    if session.len() > 256 {
        return Err(ApiError::bad_request(
            "the session id is longer than 256 bytes",
        ));
    }
    Ok(ChatRequest {
        agent: agent.to_string(),
        model: model.to_string(),
        text,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        session,
    })
}

/// A digest of what a request asks (SHA-256 of its JSON with keys in order), so that a
/// retry with the same idempotency key can be told from a different request. How it
/// travels is left out: the model's spelling (`pincer:main` or `main`: the agent is what
/// counts), `stream` and `stream_options`, and `user` (the key is the session's already).
fn fingerprint(body: &Value, agent: &str) -> String {
    let mut asked = body.clone();
    if let Some(fields) = asked.as_object_mut() {
        fields.insert("model".into(), Value::from(agent));
        for travel in ["stream", "stream_options", "user"] {
            fields.remove(travel);
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, asked.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A message's text: a string, or the text parts of a content array.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let text: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            (!text.is_empty()).then(|| text.join("\n"))
        }
        _ => None,
    }
}

async fn chat_completions(
    gw: Topology,
    session_header: Option<String>,
    idempotency_key: Option<String>,
    body: Value,
) -> warp::reply::Response {
    let request = match parse(&gw, &body, session_header) {
        Ok(r) => r,
        Err(e) => return e.into_reply(),
    };
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 256)
    {
        return ApiError::bad_request("Idempotency-Key must be 1 to 256 bytes").into_reply();
    }
    // A key belongs to its caller's session: another caller's key is another message. The
    // session's length keeps `a:b` + `c` apart from `a` + `b:c`.
    let upstream_id = match &idempotency_key {
        Some(key) => format!("idem:{}:{}:{key}", request.session.len(), request.session),
        None => format!("req:{}", uuid::Uuid::new_v4()),
    };
    let fingerprint = idempotency_key
        .as_ref()
        .map(|_| fingerprint(&body, &request.agent));
    let Some(account) = gw.accounts().get("http") else {
        return ApiError::unavailable("the http channel is disabled").into_reply();
    };
    let inbound = Inbound {
        channel: "http".into(),
        account: "http".into(),
        upstream_id: upstream_id.clone(),
        peer: PeerRef {
            kind: "user".into(),
            id: request.session.clone(),
        },
        thread: None,
        guild: None,
        team: None,
        agent: Some(request.agent.clone()),
        topic: None,
        text: request.text.clone(),
        received_at_ms: now_ms(),
        fingerprint: fingerprint.clone(),
    };
    // Wait before submitting: a fast reply cannot slip past.
    let waiter = account.outbox.wait(&upstream_id);
    let accepted = match submit(&gw, inbound).await {
        Ok(a) => a,
        Err(e) => return intake_error(e).into_reply(),
    };
    if accepted.duplicate
        && let (Some(key), Some(fingerprint)) = (&idempotency_key, &fingerprint)
    {
        match gw
            .store()
            .inbox_by_upstream("http", "http", &upstream_id)
            .await
        {
            Ok(Some(first)) if first.inbound.fingerprint.as_ref() != Some(fingerprint) => {
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "Idempotency-Key `{key}` was already used in this session for a different request; a retry must send the same request, a new request needs a new key"
                    ),
                    "invalid_request_error",
                    "idempotency_key_reused",
                )
                .into_reply();
            }
            Ok(_) => {}
            Err(e) => return ApiError::unavailable(e.to_string()).into_reply(),
        }
    }
    let meta = Meta {
        id: format!("chatcmpl-pincer-{}", accepted.id),
        created: now_ms() / 1000,
        model: request.model.clone(),
        prompt_tokens: tokens(&request.text),
    };
    if request.stream {
        let mut waiter = waiter;
        // A message its session refuses (busy) is refused at once: look at the first
        // delivery before the 200 goes out, briefly.
        let first = match accepted.reply {
            Some(_) => None,
            None => tokio::time::timeout(PEEK, waiter.recv()).await.ok(),
        };
        match first {
            Some(Delivery::Refused { reason, .. }) => return busy(reason).into_reply(),
            Some(Delivery::Unavailable { reason, .. }) => {
                return unavailable_reply(reason).into_reply();
            }
            _ => {}
        }
        let stream = sse_stream(
            gw.clone(),
            meta,
            accepted,
            waiter,
            first,
            request.include_usage,
        );
        warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response()
    } else {
        complete(&gw, meta, accepted, waiter).await
    }
}

/// How long a streamed request waits for its first delivery before its 200 goes out.
const PEEK: Duration = Duration::from_millis(100);

/// 429: the session is busy; try again later.
fn busy(reason: String) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        reason,
        "rate_limit_error",
        "session_busy",
    )
}

/// 503: the reply could not be saved; the same key gets it once the store recovers.
fn unavailable_reply(reason: String) -> ApiError {
    ApiError::unavailable(format!(
        "{reason}; the message stays queued: retry with the same Idempotency-Key to get its reply"
    ))
}

async fn submit(gw: &Topology, inbound: Inbound) -> Result<Accepted, IntakeError> {
    let addr = gw.link::<HttpLinkMsg>("http", "http");
    let link = addr
        .get()
        .ok_or_else(|| IntakeError::LinkDown(addr.path().to_string()))?;
    let call = link
        .call(
            |reply| HttpLinkMsg::Submit {
                inbound: Box::new(inbound),
                reply,
            },
            Some(INTAKE_TIMEOUT),
        )
        .await;
    match call {
        Ok(CallResult::Success(result)) => result,
        _ => Err(IntakeError::LinkDown(addr.path().to_string())),
    }
}

fn intake_error(e: IntakeError) -> ApiError {
    ApiError::unavailable(format!("message not accepted, retry: {e}"))
}

/// What every response of one completion repeats.
#[derive(Debug, Clone)]
struct Meta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
}

/// A rough token count (4 characters a token), for the `usage` fields SDKs expect.
fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn usage(meta: &Meta, reply: &str) -> Value {
    let completion = tokens(reply);
    json!({
        "prompt_tokens": meta.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": meta.prompt_tokens + completion,
    })
}

/// How a non-streamed request ends.
enum Final {
    /// The reply; `true` when it reports a failure.
    Reply(String, bool),
    /// The session refused the message.
    Refused(String),
    /// The reply could not be committed.
    Unavailable(String),
}

async fn final_reply(gw: &Topology, accepted: &Accepted, waiter: &mut Waiter) -> Option<Final> {
    if let Some(reply) = &accepted.reply {
        return Some(Final::Reply(reply.clone(), false));
    }
    let wait = async {
        loop {
            match waiter.next_or_stored(gw.store(), "http", "http").await {
                Delivery::Done { reply, failed, .. } => return Final::Reply(reply, failed),
                Delivery::Refused { reason, .. } => return Final::Refused(reason),
                Delivery::Unavailable { reason, .. } => return Final::Unavailable(reason),
                Delivery::Delta { .. } | Delivery::Step { .. } | Delivery::Notice { .. } => {}
            }
        }
    };
    tokio::time::timeout(REPLY_TIMEOUT, wait).await.ok()
}

async fn complete(
    gw: &Topology,
    meta: Meta,
    accepted: Accepted,
    mut waiter: Waiter,
) -> warp::reply::Response {
    match final_reply(gw, &accepted, &mut waiter).await {
        Some(Final::Refused(reason)) => busy(reason).into_reply(),
        Some(Final::Unavailable(reason)) => unavailable_reply(reason).into_reply(),
        Some(Final::Reply(reply, false)) => warp::reply::json(&json!({
            "id": meta.id,
            "object": "chat.completion",
            "created": meta.created,
            "model": meta.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage(&meta, &reply),
            "system_fingerprint": null,
        }))
        .into_response(),
        Some(Final::Reply(reply, true)) => {
            ApiError::new(StatusCode::BAD_GATEWAY, reply, "server_error", "turn_failed").into_reply()
        }
        None => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no reply within {}s; the message stays queued, retry with the same Idempotency-Key to get its reply",
                REPLY_TIMEOUT.as_secs()
            ),
            "server_error",
            "timeout",
        )
        .into_reply(),
    }
}

fn chunk(meta: &Meta, delta: Value, finish: Option<&str>) -> Event {
    let choice = json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish});
    chunk_event(meta, json!([choice]), None)
}

fn chunk_event(meta: &Meta, choices: Value, usage: Option<Value>) -> Event {
    let mut body = json!({
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "system_fingerprint": null,
        "choices": choices,
    });
    if let Some(usage) = usage {
        body["usage"] = usage;
    }
    Event::default().data(body.to_string())
}

/// The SSE events of a streamed completion. A turn started again after a crash streams
/// from its start; text already sent is not sent twice.
fn sse_stream(
    gw: Topology,
    meta: Meta,
    accepted: Accepted,
    waiter: Waiter,
    first: Option<Delivery>,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    struct S {
        gw: Topology,
        meta: Meta,
        accepted: Accepted,
        waiter: Waiter,
        first: Option<Delivery>,
        include_usage: bool,
        started: bool,
        sent: usize,
        attempt: u32,
        position: usize,
        queue: std::collections::VecDeque<Event>,
        finished: bool,
    }
    let state = S {
        gw,
        meta,
        accepted,
        waiter,
        first,
        include_usage,
        started: false,
        sent: 0,
        attempt: 0,
        position: 0,
        queue: Default::default(),
        finished: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.queue.pop_front() {
                return Some((Ok(event), s));
            }
            if s.finished {
                return None;
            }
            if !s.started {
                s.started = true;
                s.queue.push_back(chunk(
                    &s.meta,
                    json!({"role": "assistant", "content": ""}),
                    None,
                ));
                if let Some(reply) = s.accepted.reply.clone() {
                    finish(&mut s.queue, &s.meta, &reply, s.include_usage);
                    s.finished = true;
                }
                continue;
            }
            let next = match s.first.take() {
                Some(first) => Ok(Some(first)),
                None => {
                    let store = s.gw.store().clone();
                    tokio::time::timeout(
                        REPLY_TIMEOUT,
                        s.waiter.next_or_stored(&store, "http", "http"),
                    )
                    .await
                    .map(Some)
                }
            };
            match next {
                // Tool calls are the gateway's business: a client sees their outcome.
                Ok(Some(Delivery::Step { .. } | Delivery::Notice { .. })) => {}
                Ok(Some(Delivery::Delta { attempt, text })) => {
                    if attempt != s.attempt {
                        s.attempt = attempt;
                        s.position = 0;
                    }
                    let start = s.position;
                    s.position += text.len();
                    if s.position > s.sent {
                        let skip = s.sent.saturating_sub(start);
                        let new = text.get(skip..).unwrap_or_default().to_string();
                        s.sent = s.position;
                        s.queue
                            .push_back(chunk(&s.meta, json!({"content": new}), None));
                    }
                }
                Ok(Some(Delivery::Done {
                    reply,
                    failed: true,
                    ..
                })) => {
                    // No model answered: an error event as OpenAI streams one, not text.
                    let error = json!({"error": {"message": reply, "type": "server_error", "code": "turn_failed"}});
                    s.queue.push_back(Event::default().data(error.to_string()));
                    s.queue.push_back(Event::default().data("[DONE]"));
                    s.finished = true;
                }
                Ok(Some(Delivery::Refused { reason, .. })) => {
                    let error = json!({"error": {"message": reason, "type": "rate_limit_error", "code": "session_busy"}});
                    s.queue.push_back(Event::default().data(error.to_string()));
                    s.queue.push_back(Event::default().data("[DONE]"));
                    s.finished = true;
                }
                Ok(Some(Delivery::Unavailable { reason, .. })) => {
                    let message = format!(
                        "{reason}; the message stays queued: retry with the same Idempotency-Key to get its reply"
                    );
                    let error = json!({"error": {"message": message, "type": "server_error", "code": "unavailable"}});
                    s.queue.push_back(Event::default().data(error.to_string()));
                    s.queue.push_back(Event::default().data("[DONE]"));
                    s.finished = true;
                }
                Ok(Some(Delivery::Done { reply, .. })) => {
                    // Whatever the deltas missed (a reply answered before this stream
                    // began, or cut by a restart) goes out before the end.
                    if let Some(rest) = reply.get(s.sent..).filter(|r| !r.is_empty()) {
                        s.queue
                            .push_back(chunk(&s.meta, json!({"content": rest}), None));
                    }
                    s.sent = reply.len();
                    let (meta, include_usage) = (s.meta.clone(), s.include_usage);
                    finish_tail(&mut s.queue, &meta, &reply, include_usage);
                    s.finished = true;
                }
                Ok(None) | Err(_) => {
                    let error = json!({"error": {"message": "no reply in time; retry with the same Idempotency-Key", "type": "server_error", "code": "timeout"}});
                    s.queue.push_back(Event::default().data(error.to_string()));
                    s.queue.push_back(Event::default().data("[DONE]"));
                    s.finished = true;
                }
            }
        }
    })
}

fn finish(
    queue: &mut std::collections::VecDeque<Event>,
    meta: &Meta,
    reply: &str,
    include_usage: bool,
) {
    queue.push_back(chunk(meta, json!({"content": reply}), None));
    finish_tail(queue, meta, reply, include_usage);
}

fn finish_tail(
    queue: &mut std::collections::VecDeque<Event>,
    meta: &Meta,
    reply: &str,
    include_usage: bool,
) {
    queue.push_back(chunk(meta, json!({}), Some("stop")));
    if include_usage {
        queue.push_back(chunk_event(meta, json!([]), Some(usage(meta, reply))));
    }
    queue.push_back(Event::default().data("[DONE]"));
}
