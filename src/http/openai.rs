//! The OpenAI-compatible API: `POST /v1/chat/completions` (streaming and not) and
//! `GET /v1/models`, shaped as OpenAI's Chat Completions so the official SDKs work.
//!
//! - `model`: `pincer:<agent>` or `<agent>`; the header `x-pincer-agent` names the agent
//!   instead.
//! - Without `x-pincer-session` or `user` a request is stateless: its `messages` are the
//!   whole context, and its session is one-off. With one, that session's transcript is
//!   the context and the last user message the new turn ([`request`] and the README).
//! - Every field is honoured or refused with a 400 naming it ([`request`]).
//! - `Idempotency-Key`: a retry with the same key (in the same session, with the same
//!   request) gets the same reply, never a second turn; the same key with a different
//!   request is refused (422 `idempotency_key_reused`).
//! - A turn that fails mid-stream ends the stream with an OpenAI streaming error event
//!   (`data: {"error": {...}}`), not with its message as text.

mod request;
mod responses;

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
use pincer_channels::ReplyExtra;
use pincer_core::{Inbound, PeerRef, now_ms};
use pincer_store::Accepted;
use request::Asked;

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

    let model = v1
        .clone()
        .and(warp::path!("models" / String))
        .and(warp::get())
        .and(with_gw.clone())
        .map(|id: String, gw: Topology| {
            let agent = id.strip_prefix("pincer:").unwrap_or(&id);
            if gw.config().agents.contains_key(agent) {
                warp::reply::json(&json!({"id": format!("pincer:{agent}"), "object": "model", "created": 0, "owned_by": "pincer"})).into_response()
            } else {
                ApiError::not_found(
                    format!("The model `{id}` does not exist: no agent `{agent}` (see GET /v1/models)"),
                    "model_not_found",
                )
                .into_reply()
            }
        });

    let headers = warp::header::optional::<String>("x-pincer-agent")
        .and(warp::header::optional::<String>("x-pincer-session"))
        .and(warp::header::optional::<String>("idempotency-key"))
        .map(|agent, session, key| Headers {
            agent,
            session,
            idempotency_key: key,
        });
    // JSON whatever the Content-Type says: `curl -d` sends form encoding by default.
    let json_body = warp::body::content_length_limit(max_body).and(warp::body::bytes().and_then(
        |body: bytes::Bytes| async move {
            serde_json::from_slice::<Value>(&body).map_err(|e| {
                warp::reject::custom(ApiError::bad_request(format!("the body is not JSON: {e}")))
            })
        },
    ));

    let completions = v1
        .clone()
        .and(warp::path!("chat" / "completions"))
        .and(warp::post())
        .and(with_gw.clone())
        .and(headers)
        .and(json_body)
        .then(chat_completions);

    let responses = v1
        .and(warp::path!("responses"))
        .and(warp::post())
        .and(with_gw)
        .and(headers)
        .and(json_body)
        .then(responses::create);

    models
        .or(model)
        .unify()
        .or(completions)
        .unify()
        .or(responses)
        .unify()
        .boxed()
}

/// The headers both POST routes read.
#[derive(Debug, Clone)]
struct Headers {
    agent: Option<String>,
    session: Option<String>,
    idempotency_key: Option<String>,
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

async fn chat_completions(gw: Topology, headers: Headers, body: Value) -> warp::reply::Response {
    let asked = match request::chat(
        &gw.config(),
        &body,
        headers.agent.as_deref(),
        headers.session.clone(),
    ) {
        Ok(a) => a,
        Err(e) => return e.into_reply(),
    };
    let (accepted, waiter) = match take_in(&gw, &asked, &headers, &body).await {
        Ok(taken) => taken,
        Err(response) => return response,
    };
    let meta = Meta {
        id: format!("chatcmpl-pincer-{}", accepted.id),
        created: now_ms() / 1000,
        model: asked.model.clone(),
        prompt_tokens: tokens(&asked.text),
    };
    if asked.stream {
        let (waiter, first) = match peek(&accepted, waiter).await {
            Ok(peeked) => peeked,
            Err(response) => return response,
        };
        let stream = sse_stream(
            gw.clone(),
            meta,
            accepted,
            waiter,
            first,
            asked.include_usage,
        );
        warp::sse::reply(warp::sse::keep_alive().stream(stream)).into_response()
    } else {
        complete(&gw, meta, accepted, waiter).await
    }
}

/// Takes `asked` into the durable inbox (once per idempotency key) and returns its entry
/// and the waiter of its reply; an error response when it cannot be taken.
async fn take_in(
    gw: &Topology,
    asked: &Asked,
    headers: &Headers,
    body: &Value,
) -> Result<(Accepted, Waiter), warp::reply::Response> {
    let idempotency_key = &headers.idempotency_key;
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 256)
    {
        return Err(ApiError::bad_request("Idempotency-Key must be 1 to 256 bytes").into_reply());
    }
    // A stateful request is its session's; a stateless one gets a one-off session of its
    // own, never reused (its actor stops once it has answered).
    let peer = match &asked.session {
        Some(session) => PeerRef {
            kind: "user".into(),
            id: session.clone(),
        },
        None => PeerRef {
            kind: pincer_core::session_key::ONE_OFF_PEER.into(),
            id: uuid::Uuid::new_v4().to_string(),
        },
    };
    // A key belongs to its caller's session: another caller's key is another message. The
    // session's length keeps `a:b` + `c` apart from `a` + `b:c`. Stateless requests share
    // one space of keys.
    let upstream_id = match (idempotency_key, &asked.session) {
        (Some(key), Some(session)) => format!("idem:{}:{session}:{key}", session.len()),
        (Some(key), None) => format!("idem-stateless:{key}"),
        (None, _) => format!("req:{}", uuid::Uuid::new_v4()),
    };
    let fingerprint = idempotency_key
        .as_ref()
        .map(|_| fingerprint(body, &asked.agent));
    let Some(account) = gw.accounts().get("http") else {
        return Err(ApiError::unavailable("the http channel is disabled").into_reply());
    };
    let inbound = Inbound {
        channel: "http".into(),
        account: "http".into(),
        upstream_id: upstream_id.clone(),
        peer,
        thread: None,
        guild: None,
        team: None,
        agent: Some(asked.agent.clone()),
        topic: None,
        text: asked.text.clone(),
        received_at_ms: now_ms(),
        sender: None,
        fingerprint: fingerprint.clone(),
        api: Some(asked.caller.to_json()),
    };
    // Wait before submitting: a fast reply cannot slip past.
    let waiter = account.outbox.wait(&upstream_id);
    let accepted = submit(gw, inbound)
        .await
        .map_err(|e| intake_error(e).into_reply())?;
    if accepted.duplicate
        && let (Some(key), Some(fingerprint)) = (idempotency_key, &fingerprint)
    {
        match gw
            .store()
            .inbox_by_upstream("http", "http", &upstream_id)
            .await
        {
            Ok(Some(first)) if first.inbound.fingerprint.as_ref() != Some(fingerprint) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "Idempotency-Key `{key}` was already used in this session for a different request; a retry must send the same request, a new request needs a new key"
                    ),
                    "invalid_request_error",
                    "idempotency_key_reused",
                )
                .into_reply());
            }
            Ok(_) => {}
            Err(e) => return Err(ApiError::unavailable(e.to_string()).into_reply()),
        }
    }
    Ok((accepted, waiter))
}

/// A message its session refuses (busy) is refused at once: the first delivery is looked
/// at, briefly, before a stream's 200 goes out.
async fn peek(
    accepted: &Accepted,
    mut waiter: Waiter,
) -> Result<(Waiter, Option<Delivery>), warp::reply::Response> {
    let first = match accepted.reply {
        Some(_) => None,
        None => tokio::time::timeout(PEEK, waiter.recv()).await.ok(),
    };
    match first {
        Some(Delivery::Refused { reason, .. }) => Err(busy(reason).into_reply()),
        Some(Delivery::Unavailable { reason, .. }) => Err(unavailable_reply(reason).into_reply()),
        first => Ok((waiter, first)),
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

/// The tokens of a reply: the provider's counts when the turn has them, else (a reply
/// read back from the store) a rough estimate.
fn counts(meta: &Meta, reply: &str, extra: Option<&ReplyExtra>) -> (u64, u64) {
    extra
        .and_then(|e| e.usage)
        .unwrap_or_else(|| (meta.prompt_tokens, tokens(reply)))
}

fn usage(meta: &Meta, reply: &str, extra: Option<&ReplyExtra>) -> Value {
    let (prompt, completion) = counts(meta, reply, extra);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// A reply's calls of the caller's tools, as Chat Completions' `tool_calls` (with
/// `index` for a streamed delta).
fn tool_calls(extra: Option<&ReplyExtra>, indexed: bool) -> Option<Value> {
    let calls = &extra?.tool_calls;
    (!calls.is_empty()).then(|| {
        calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut call = json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}});
                if indexed {
                    call["index"] = json!(i);
                }
                call
            })
            .collect()
    })
}

/// `finish_reason` of a reply without calls: `length` when it stopped at the output cap.
fn stop_reason(extra: Option<&ReplyExtra>) -> &'static str {
    if extra.is_some_and(|e| e.cut) {
        "length"
    } else {
        "stop"
    }
}

/// How a non-streamed request ends.
enum Final {
    /// The reply; `true` when it reports a failure; what it carries besides its text.
    Reply(String, bool, Option<Box<ReplyExtra>>),
    /// The session refused the message.
    Refused(String),
    /// The reply could not be committed.
    Unavailable(String),
}

async fn final_reply(gw: &Topology, accepted: &Accepted, waiter: &mut Waiter) -> Option<Final> {
    if let Some(reply) = &accepted.reply {
        let extra = ReplyExtra::decode(accepted.reply_extra.as_deref());
        return Some(Final::Reply(reply.clone(), false, extra));
    }
    let wait = async {
        loop {
            match waiter.next_or_stored(gw.store(), "http", "http").await {
                Delivery::Done {
                    reply,
                    failed,
                    extra,
                    ..
                } => return Final::Reply(reply, failed, extra),
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
        Some(Final::Reply(reply, false, extra)) => {
            let extra = extra.as_deref();
            let mut message = json!({"role": "assistant", "content": reply, "refusal": null});
            let finish = match tool_calls(extra, false) {
                Some(calls) => {
                    message["tool_calls"] = calls;
                    if reply.is_empty() {
                        message["content"] = Value::Null;
                    }
                    "tool_calls"
                }
                None => stop_reason(extra),
            };
            warp::reply::json(&json!({
                "id": meta.id,
                "object": "chat.completion",
                "created": meta.created,
                "model": meta.model,
                "choices": [{
                    "index": 0,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": finish,
                }],
                "usage": usage(&meta, &reply, extra),
                "system_fingerprint": null,
            }))
            .into_response()
        }
        Some(Final::Reply(reply, true, _)) => {
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

/// What a streamed reply is made of, whatever the shape it is sent in.
#[derive(Debug)]
enum Piece {
    /// New reply text.
    Text(String),
    /// The end: the whole reply and what it carries besides.
    Done(String, Option<Box<ReplyExtra>>),
    /// The end, without a reply: message, type, code.
    Error(String, &'static str, &'static str),
}

/// A streamed completion in Chat Completions' shape.
fn sse_stream(
    gw: Topology,
    meta: Meta,
    accepted: Accepted,
    waiter: Waiter,
    first: Option<Delivery>,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    use futures::StreamExt as _;
    let head = chunk(&meta, json!({"role": "assistant", "content": ""}), None);
    let body = pieces(gw, accepted, waiter, first).flat_map(move |piece| {
        let mut queue = std::collections::VecDeque::new();
        match piece {
            Piece::Text(text) => queue.push_back(chunk(&meta, json!({"content": text}), None)),
            Piece::Done(reply, extra) => {
                finish_tail(&mut queue, &meta, &reply, extra.as_deref(), include_usage)
            }
            Piece::Error(message, kind, code) => {
                let error = json!({"error": {"message": message, "type": kind, "code": code}});
                queue.push_back(Event::default().data(error.to_string()));
                queue.push_back(Event::default().data("[DONE]"));
            }
        }
        futures::stream::iter(queue.into_iter().map(Ok))
    });
    futures::stream::once(async move { Ok(head) }).chain(body)
}

/// The pieces of a reply as its deliveries come. A turn started again after a crash
/// streams from its start; text already sent is not sent twice.
fn pieces(
    gw: Topology,
    accepted: Accepted,
    waiter: Waiter,
    first: Option<Delivery>,
) -> impl Stream<Item = Piece> + Send + 'static {
    use futures::StreamExt as _;
    struct S {
        gw: Topology,
        accepted: Accepted,
        waiter: Waiter,
        first: Option<Delivery>,
        sent: usize,
        attempt: u32,
        position: usize,
        finished: bool,
    }
    let state = S {
        gw,
        accepted,
        waiter,
        first,
        sent: 0,
        attempt: 0,
        position: 0,
        finished: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.finished {
                return None;
            }
            if let Some(reply) = s.accepted.reply.take() {
                // Answered before: the whole reply at once.
                s.finished = true;
                let extra = ReplyExtra::decode(s.accepted.reply_extra.as_deref());
                let mut rest = std::collections::VecDeque::from([Piece::Text(reply.clone())]);
                rest.push_back(Piece::Done(reply, extra));
                s.first = None;
                return Some((rest, s));
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
            let end = |piece: Piece| std::collections::VecDeque::from([piece]);
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
                        return Some((end(Piece::Text(new)), s));
                    }
                }
                Ok(Some(Delivery::Done {
                    reply,
                    failed: true,
                    ..
                })) => {
                    // No model answered: an error event, not text.
                    s.finished = true;
                    return Some((end(Piece::Error(reply, "server_error", "turn_failed")), s));
                }
                Ok(Some(Delivery::Refused { reason, .. })) => {
                    s.finished = true;
                    return Some((end(Piece::Error(reason, "rate_limit_error", "session_busy")), s));
                }
                Ok(Some(Delivery::Unavailable { reason, .. })) => {
                    let message = format!(
                        "{reason}; the message stays queued: retry with the same Idempotency-Key to get its reply"
                    );
                    s.finished = true;
                    return Some((end(Piece::Error(message, "server_error", "unavailable")), s));
                }
                Ok(Some(Delivery::Done { reply, extra, .. })) => {
                    // Whatever the deltas missed (a reply answered before this stream
                    // began, or cut by a restart) goes out before the end.
                    let mut out = std::collections::VecDeque::new();
                    if let Some(rest) = reply.get(s.sent..).filter(|r| !r.is_empty()) {
                        out.push_back(Piece::Text(rest.to_string()));
                    }
                    s.sent = reply.len();
                    out.push_back(Piece::Done(reply, extra));
                    s.finished = true;
                    return Some((out, s));
                }
                Ok(None) | Err(_) => {
                    s.finished = true;
                    let message = "no reply in time; retry with the same Idempotency-Key".to_string();
                    return Some((end(Piece::Error(message, "server_error", "timeout")), s));
                }
            }
        }
    })
    .flat_map(futures::stream::iter)
}

fn finish_tail(
    queue: &mut std::collections::VecDeque<Event>,
    meta: &Meta,
    reply: &str,
    extra: Option<&ReplyExtra>,
    include_usage: bool,
) {
    let finish = match tool_calls(extra, true) {
        Some(calls) => {
            queue.push_back(chunk(meta, json!({ "tool_calls": calls }), None));
            "tool_calls"
        }
        None => stop_reason(extra),
    };
    queue.push_back(chunk(meta, json!({}), Some(finish)));
    if include_usage {
        queue.push_back(chunk_event(
            meta,
            json!([]),
            Some(usage(meta, reply, extra)),
        ));
    }
    queue.push_back(Event::default().data("[DONE]"));
}
