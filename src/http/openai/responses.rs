//! `POST /v1/responses`: the OpenAI Responses shape on the same agent run as Chat
//! Completions. The body is read into a Chat Completions request (so sessions, options,
//! tools and refusals follow the same rules), and the reply is shaped as a `response`
//! object, or streamed as Responses SSE events (`event: TYPE`, each with its
//! `sequence_number`, ending with `response.completed`, no `[DONE]`).

use std::convert::Infallible;

use futures::{Stream, StreamExt as _};
use serde_json::{Map, Value, json};
use warp::Reply;
use warp::sse::Event;

use super::{Final, Headers, Meta, Piece, counts, final_reply, peek, pieces, request, take_in};
use crate::http::ApiError;
use crate::topology::Topology;
use pincer_channels::ReplyExtra;
use pincer_core::now_ms;

/// The route's handler.
pub(super) async fn create(gw: Topology, headers: Headers, body: Value) -> warp::reply::Response {
    let chat = match as_chat(&body) {
        Ok(chat) => chat,
        Err(e) => return e.into_reply(),
    };
    let asked = match request::chat(
        &gw.config(),
        &chat,
        headers.agent.as_deref(),
        headers.session.clone(),
    ) {
        Ok(a) => a,
        Err(e) => return e.into_reply(),
    };
    let (accepted, waiter) = match take_in(&gw, &asked, &headers, &chat).await {
        Ok(taken) => taken,
        Err(response) => return response,
    };
    let meta = Meta {
        id: format!("resp_pincer_{}", accepted.id),
        created: now_ms() / 1000,
        model: asked.model.clone(),
        prompt_tokens: super::tokens(&asked.text),
    };
    if asked.stream {
        let (waiter, first) = match peek(&accepted, waiter).await {
            Ok(peeked) => peeked,
            Err(response) => return response,
        };
        let events = stream(&meta, pieces(gw.clone(), accepted, waiter, first));
        return warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response();
    }
    let mut waiter = waiter;
    match final_reply(&gw, &accepted, &mut waiter).await {
        Some(Final::Reply(reply, false, extra)) => {
            let status = ended(extra.as_deref());
            warp::reply::json(&response(&meta, status, &reply, extra.as_deref()))
                .into_response()
        }
        Some(Final::Reply(reply, true, _)) => ApiError::new(
            warp::http::StatusCode::BAD_GATEWAY,
            reply,
            "server_error",
            "turn_failed",
        )
        .into_reply(),
        Some(Final::Refused(reason)) => super::busy(reason).into_reply(),
        Some(Final::Unavailable(reason)) => super::unavailable_reply(reason).into_reply(),
        None => ApiError::new(
            warp::http::StatusCode::GATEWAY_TIMEOUT,
            "no reply in time; the message stays queued, retry with the same Idempotency-Key to get its reply",
            "server_error",
            "timeout",
        )
        .into_reply(),
    }
}

/// A Responses body as the Chat Completions body it asks the same as; a field with no
/// counterpart here is refused by its Responses name.
fn as_chat(body: &Value) -> Result<Value, ApiError> {
    let fields = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let mut chat = Map::new();
    let mut messages = Vec::new();
    for (name, value) in fields {
        match name.as_str() {
            "model"
            | "stream"
            | "user"
            | "temperature"
            | "top_p"
            | "tool_choice"
            | "store"
            | "metadata"
            | "parallel_tool_calls"
            | "service_tier"
            | "safety_identifier"
            | "prompt_cache_key" => {
                chat.insert(name.clone(), value.clone());
            }
            "max_output_tokens" => {
                chat.insert("max_completion_tokens".into(), value.clone());
            }
            "tools" => {
                chat.insert("tools".into(), value.clone());
            }
            "instructions" => {
                if let Some(text) = value.as_str() {
                    messages.insert(0, json!({"role": "system", "content": text}));
                }
            }
            "text" => {
                if let Some(format) = value.get("format") {
                    chat.insert("response_format".into(), response_format(format));
                }
            }
            "input" => {}
            other => {
                return Err(ApiError::param(
                    other,
                    "unsupported_parameter",
                    format!(
                        "`{other}` is not supported by this gateway's Responses API (name a session with x-pincer-session or `user` to keep a conversation)"
                    ),
                ));
            }
        }
    }
    match fields.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                messages.push(input_item(item, i)?);
            }
        }
        _ => {
            return Err(ApiError::param(
                "input",
                "invalid_value",
                "`input` must be a string or an array of items",
            ));
        }
    }
    chat.insert("messages".into(), Value::Array(messages));
    Ok(Value::Object(chat))
}

/// `text.format` as Chat Completions' `response_format`.
fn response_format(format: &Value) -> Value {
    match format.get("type").and_then(Value::as_str) {
        Some("json_schema") => json!({
            "type": "json_schema",
            "json_schema": {"name": format.get("name"), "schema": format.get("schema"), "strict": format.get("strict")},
        }),
        _ => format.clone(),
    }
}

/// One input item as a Chat Completions message.
fn input_item(item: &Value, i: usize) -> Result<Value, ApiError> {
    let kind = item
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    let field = |name: &str| item.get(name).cloned().unwrap_or(Value::Null);
    Ok(match kind {
        "message" => {
            let content = match item.get("content") {
                Some(Value::Array(parts)) => {
                    let mut text = Vec::new();
                    for (j, part) in parts.iter().enumerate() {
                        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
                        match (kind, part.get("text")) {
                            ("input_text" | "output_text", Some(t)) => {
                                text.push(json!({"type": "text", "text": t}))
                            }
                            _ => {
                                return Err(ApiError::param(
                                    format!("input[{i}].content[{j}]"),
                                    "unsupported_parameter",
                                    format!(
                                        "content parts of type `{kind}` are not supported: only text reaches the model"
                                    ),
                                ));
                            }
                        }
                    }
                    Value::Array(text)
                }
                other => other.cloned().unwrap_or(Value::Null),
            };
            json!({"role": field("role"), "content": content})
        }
        "function_call" => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{"id": field("call_id"), "type": "function",
                "function": {"name": field("name"), "arguments": field("arguments")}}],
        }),
        "function_call_output" => {
            json!({"role": "tool", "tool_call_id": field("call_id"), "content": field("output")})
        }
        other => {
            return Err(ApiError::param(
                format!("input[{i}]"),
                "unsupported_parameter",
                format!(
                    "input items of type `{other}` are not supported (message, function_call, function_call_output)"
                ),
            ));
        }
    })
}

/// The output items of a reply: its text as one message, then its calls of the
/// caller's tools.
fn output(meta: &Meta, reply: &str, extra: Option<&ReplyExtra>) -> Vec<Value> {
    let mut out = Vec::new();
    if !reply.is_empty() || extra.is_none_or(|e| e.tool_calls.is_empty()) {
        out.push(message_item(meta, reply, ended(extra)));
    }
    for call in extra.map(|e| e.tool_calls.as_slice()).unwrap_or_default() {
        out.push(call_item(call));
    }
    out
}

fn message_item(meta: &Meta, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([{"type": "output_text", "text": text, "annotations": []}])
    };
    json!({"type": "message", "id": format!("msg_{}", meta.id), "status": status,
        "role": "assistant", "content": content})
}

fn call_item(call: &pincer_channels::CallerCall) -> Value {
    json!({"type": "function_call", "id": format!("fc_{}", call.id), "call_id": call.id,
        "name": call.name, "arguments": call.arguments, "status": "completed"})
}

/// How a reply's response ends: `incomplete` when the answer stopped at the output cap.
fn ended(extra: Option<&ReplyExtra>) -> &'static str {
    if extra.is_some_and(|e| e.cut) {
        "incomplete"
    } else {
        "completed"
    }
}

/// A `response` object.
fn response(meta: &Meta, status: &str, reply: &str, extra: Option<&ReplyExtra>) -> Value {
    let (output, usage) = if matches!(status, "completed" | "incomplete") {
        let (input, out) = counts(meta, reply, extra);
        (
            json!(output(meta, reply, extra)),
            json!({"input_tokens": input, "output_tokens": out, "total_tokens": input + out}),
        )
    } else {
        (json!([]), Value::Null)
    };
    json!({
        "id": meta.id,
        "object": "response",
        "created_at": meta.created,
        "model": meta.model,
        "status": status,
        "output": output,
        "usage": usage,
        "error": null,
        "incomplete_details": if status == "incomplete" {
            json!({"reason": "max_output_tokens"})
        } else {
            Value::Null
        },
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
    })
}

/// A reply as Responses SSE events.
fn stream(
    meta: &Meta,
    pieces: impl Stream<Item = Piece> + Send + 'static,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let meta = meta.clone();
    let mut seq = 0u64;
    let mut event = move |kind: &str, mut data: Value| {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(seq);
        seq += 1;
        Ok(Event::default().event(kind).data(data.to_string()))
    };
    let item_id = format!("msg_{}", meta.id);
    let mut head = vec![
        event(
            "response.created",
            json!({"response": response(&meta, "in_progress", "", None)}),
        ),
        event(
            "response.in_progress",
            json!({"response": response(&meta, "in_progress", "", None)}),
        ),
        event(
            "response.output_item.added",
            json!({"output_index": 0, "item": message_item(&meta, "", "in_progress")}),
        ),
        event(
            "response.content_part.added",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}),
        ),
    ];
    let body = pieces.flat_map(move |piece| {
        let mut out = Vec::new();
        match piece {
            Piece::Text(delta) => out.push(event("response.output_text.delta", json!({
                "item_id": item_id, "output_index": 0, "content_index": 0, "delta": delta}))),
            Piece::Done(reply, extra) => {
                let part = json!({"type": "output_text", "text": reply, "annotations": []});
                out.push(event("response.output_text.done", json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": reply})));
                out.push(event("response.content_part.done", json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part})));
                let status = ended(extra.as_deref());
                out.push(event("response.output_item.done", json!({"output_index": 0, "item": message_item(&meta, &reply, status)})));
                let calls = extra.as_deref().map(|e| e.tool_calls.clone()).unwrap_or_default();
                for (n, call) in calls.iter().enumerate() {
                    let index = n + 1;
                    let item = call_item(call);
                    out.push(event("response.output_item.added", json!({"output_index": index, "item": item})));
                    out.push(event("response.function_call_arguments.delta", json!({"item_id": item["id"], "output_index": index, "delta": call.arguments})));
                    out.push(event("response.function_call_arguments.done", json!({"item_id": item["id"], "output_index": index, "arguments": call.arguments})));
                    out.push(event("response.output_item.done", json!({"output_index": index, "item": item})));
                }
                let mut done = response(&meta, status, &reply, extra.as_deref());
                // The streamed message item is always there, even when empty.
                if !calls.is_empty() && reply.is_empty() {
                    let mut items = vec![message_item(&meta, "", "completed")];
                    items.extend(calls.iter().map(call_item));
                    done["output"] = json!(items);
                }
                out.push(event(&format!("response.{status}"), json!({"response": done})));
            }
            Piece::Error(message, kind, code) => {
                out.push(event("error", json!({"error": {"type": kind, "code": code, "message": message, "param": null}})));
                let mut failed = response(&meta, "failed", "", None);
                failed["error"] = json!({"code": code, "message": message});
                out.push(event("response.failed", json!({"response": failed})));
            }
        }
        futures::stream::iter(out)
    });
    futures::stream::iter(std::mem::take(&mut head)).chain(body)
}
