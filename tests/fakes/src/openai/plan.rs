//! Turning one request into a plan: either an [`ApiError`] answered before any event, or the
//! exact list of events (with pauses) to stream. Both transports share this, so SSE and
//! WebSocket mode can never disagree on what a turn looks like.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::errors::{ApiError, CONTEXT_LENGTH_EXCEEDED, CONTEXT_LENGTH_MESSAGE};
use super::state::{Shared, bump};
use super::wire::{
    default_reply, input_words, instruction_words, is_warmup, split_arguments, split_tokens,
};
use super::{Knobs, Script};

/// What a transport delivers.
#[derive(Debug, Clone)]
pub(super) enum Out {
    /// One JSON event (SSE frame or WebSocket text frame).
    Event(Value),
    /// End the connection without a terminal event; the code is the WebSocket close code
    /// (1006: drop without a close frame).
    Cut(u16),
}

/// One step of a plan.
#[derive(Debug, Clone)]
pub(super) enum Step {
    Emit(Out),
    Sleep(Duration),
    /// Never continue (until the client goes away or sockets are killed).
    Hang,
}

/// The events of one accepted request.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) steps: Vec<Step>,
    pub(super) response_id: String,
    /// Keep the id in the global store once `response.completed` is sent.
    pub(super) store: bool,
    pub(super) continuation: bool,
    pub(super) warmup: bool,
}

impl Plan {
    /// A scripted hang: nothing at all is sent, not even HTTP headers.
    pub(super) fn hangs_at_start(&self) -> bool {
        matches!(self.steps.first(), Some(Step::Hang))
    }
}

/// Decides the outcome of a `response.create` / `POST /v1/responses` body. `latest` is the
/// connection's latest response id (WebSocket only).
pub(super) fn decide(
    shared: &Shared,
    body: &Value,
    latest: Option<&str>,
) -> Result<Plan, ApiError> {
    let knobs = shared.knobs();
    let model = match body.get("model").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m,
        _ => return Err(ApiError::missing_param("model")),
    };
    let warmup = is_warmup(body);
    if !warmup && body.get("input").is_none_or(Value::is_null) {
        return Err(ApiError::missing_param("input"));
    }
    if knobs.reject_unknown_models && !knobs.models.iter().any(|m| m == model) {
        return Err(ApiError::model_not_found(model));
    }
    let previous = body.get("previous_response_id").and_then(Value::as_str);
    if let Some(id) = previous
        && latest != Some(id)
        && !shared.is_stored(id)
    {
        return Err(ApiError::previous_not_found(id));
    }
    let store = body
        .get("store")
        .and_then(Value::as_bool)
        .unwrap_or(knobs.store_by_default);
    let mut b = Builder::new(shared, &knobs, body, model);
    let continuation = previous.is_some();
    let steps = if warmup {
        b.warmup()
    } else {
        // The whole context counts, as upstream: what a continuation continues, then
        // this request's own input.
        b.input_tokens = previous.map_or(0, |id| shared.context_of(id)) + input_words(body);
        if knobs
            .context_limit
            .is_some_and(|limit| b.input_tokens > limit)
        {
            if knobs.context_limit_before_stream {
                // Counted as the error is served.
                return Err(ApiError::context_length_exceeded());
            }
            bump(&shared.counters.context_exceeded);
            let steps = b.too_long();
            return Ok(Plan {
                steps,
                response_id: b.response_id,
                store,
                continuation,
                warmup,
            });
        }
        if continuation {
            bump(&shared.counters.continuations);
        }
        match shared.pop_script(model) {
            None => b.text(&default_reply(body), End::Complete),
            Some(Script::Text(text)) => b.text(&text, End::Complete),
            Some(Script::ToolCall { name, arguments }) => b.tool_call(&name, &arguments),
            Some(Script::HttpError {
                status,
                code,
                error_type,
                message,
                headers,
            }) => {
                return Err(ApiError::scripted(
                    status,
                    code.as_deref(),
                    &error_type,
                    &message,
                    &headers,
                ));
            }
            Some(Script::StreamError {
                after_tokens,
                code,
                message,
                nested,
            }) => {
                let end = End::Error {
                    after: after_tokens,
                    code,
                    message,
                    nested,
                };
                b.text(&default_reply(body), end)
            }
            Some(Script::Close { after_tokens, code }) => {
                let end = End::Cut {
                    after: after_tokens,
                    code,
                };
                b.text(&default_reply(body), end)
            }
            // `pop_script` unwraps `ForModel`, so only a hang is left.
            Some(Script::Hang | Script::ForModel(..)) => vec![Step::Hang],
        }
    };
    Ok(Plan {
        steps,
        response_id: b.response_id,
        store,
        continuation,
        warmup,
    })
}

/// How a text turn ends.
enum End {
    Complete,
    Error {
        after: usize,
        code: String,
        message: String,
        nested: bool,
    },
    Cut {
        after: usize,
        code: u16,
    },
}

/// Builds events with consecutive sequence numbers and the response object they carry.
struct Builder<'a> {
    shared: &'a Shared,
    knobs: &'a Knobs,
    body: &'a Value,
    model: &'a str,
    response_id: String,
    created_at: u64,
    /// The request's input tokens, whole context included (0 for a warm-up).
    input_tokens: u64,
    sequence: u64,
    steps: Vec<Step>,
}

impl<'a> Builder<'a> {
    fn new(shared: &'a Shared, knobs: &'a Knobs, body: &'a Value, model: &'a str) -> Self {
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Builder {
            shared,
            knobs,
            body,
            model,
            response_id: shared.next_id("resp"),
            created_at,
            input_tokens: 0,
            sequence: 0,
            steps: Vec::new(),
        }
    }

    fn emit(&mut self, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".to_owned(), json!(kind));
        event.insert("sequence_number".to_owned(), json!(self.sequence));
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        self.sequence += 1;
        self.steps
            .push(Step::Emit(Out::Event(Value::Object(event))));
    }

    fn sleep(&mut self, pause: Duration) {
        if !pause.is_zero() {
            self.steps.push(Step::Sleep(pause));
        }
    }

    /// The `response` object, echoing the request's settings like the real one does.
    fn response(&self, status: &str, output: Vec<Value>, usage: Value, error: Value) -> Value {
        let field = |name: &str, default: Value| self.body.get(name).cloned().unwrap_or(default);
        json!({
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": null,
            "model": self.model,
            "output": output,
            "usage": usage,
            "instructions": field("instructions", Value::Null),
            "tools": field("tools", json!([])),
            "tool_choice": field("tool_choice", json!("auto")),
            "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
            "previous_response_id": field("previous_response_id", Value::Null),
            "reasoning": field("reasoning", json!({"effort": null, "summary": null})),
            "store": self.body.get("store").and_then(Value::as_bool)
                .unwrap_or(self.knobs.store_by_default),
            "text": {"format": {"type": "text"}},
            "metadata": field("metadata", json!({})),
        })
    }

    fn usage(&self, output_tokens: u64) -> Value {
        let input_tokens = self.input_tokens;
        json!({
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        })
    }

    fn start(&mut self) {
        let created = self.response("in_progress", vec![], Value::Null, Value::Null);
        self.emit("response.created", json!({ "response": created }));
        self.emit("response.in_progress", json!({ "response": created }));
    }

    fn complete(&mut self, output: Vec<Value>, output_tokens: u64) {
        // Remembered now, usable once `response.completed` is out (as the id is). A
        // continuation does not inherit `instructions` (the API's rule), so they are left
        // out.
        let context = self
            .input_tokens
            .saturating_sub(instruction_words(self.body))
            + output_tokens;
        self.shared.remember_context(&self.response_id, context);
        let usage = self.usage(output_tokens);
        let response = self.response("completed", output, usage, Value::Null);
        self.emit("response.completed", json!({ "response": response }));
    }

    /// The response ends early for `reason` (`max_output_tokens`, `content_filter`),
    /// keeping its output.
    fn incomplete(&mut self, output: Vec<Value>, output_tokens: u64, reason: &str) {
        let usage = self.usage(output_tokens);
        let mut response = self.response("incomplete", output, usage, Value::Null);
        response["incomplete_details"] = json!({ "reason": reason });
        self.emit("response.incomplete", json!({ "response": response }));
    }

    /// Warm-up: the connection is prepared, nothing is generated.
    fn warmup(&mut self) -> Vec<Step> {
        let created = self.response("in_progress", vec![], Value::Null, Value::Null);
        self.emit("response.created", json!({ "response": created }));
        let usage = json!({
            "input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 0, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        });
        let response = self.response("completed", vec![], usage, Value::Null);
        self.emit("response.completed", json!({ "response": response }));
        std::mem::take(&mut self.steps)
    }

    fn text(&mut self, text: &str, end: End) -> Vec<Step> {
        self.start();
        let item_id = self.shared.next_id("msg");
        let at = json!({"item_id": item_id, "output_index": 0, "content_index": 0});
        let with = |extra: Value| merge(&at, extra);
        let item = |status: &str, content: Vec<Value>| {
            json!({"id": item_id, "type": "message", "status": status,
                   "role": "assistant", "content": content})
        };
        self.emit(
            "response.output_item.added",
            json!({"output_index": 0, "item": item("in_progress", vec![])}),
        );
        let empty_part = json!({"type": "output_text", "text": "", "annotations": []});
        self.emit(
            "response.content_part.added",
            with(json!({"part": empty_part})),
        );

        let mut tokens = split_tokens(text);
        // `max_output_tokens` cuts the reply as the real model does: the message item and
        // the response end `incomplete`, with `incomplete_details.reason` saying why.
        let cap = self
            .body
            .get("max_output_tokens")
            .and_then(Value::as_u64)
            .filter(|&cap| matches!(end, End::Complete) && tokens.len() as u64 > cap);
        let capped = cap.is_some();
        if let Some(cap) = cap {
            tokens.truncate(cap as usize);
        }
        let kept: String = tokens.concat();
        let text = if capped { kept.as_str() } else { text };
        let sent = match &end {
            End::Complete => tokens.len(),
            End::Error { after, .. } | End::Cut { after, .. } => (*after).min(tokens.len()),
        };
        for (i, token) in tokens.iter().take(sent).enumerate() {
            self.sleep(self.pause_before(i));
            self.emit(
                "response.output_text.delta",
                with(json!({"delta": token, "logprobs": []})),
            );
        }
        match end {
            End::Complete => {
                self.emit(
                    "response.output_text.done",
                    with(json!({"text": text, "logprobs": []})),
                );
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(
                    "response.content_part.done",
                    with(json!({"part": part.clone()})),
                );
                let done = item(if capped { "incomplete" } else { "completed" }, vec![part]);
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": 0, "item": done.clone()}),
                );
                if capped {
                    self.incomplete(vec![done], tokens.len() as u64, "max_output_tokens");
                } else {
                    self.complete(vec![done], tokens.len() as u64);
                }
            }
            End::Error {
                code,
                message,
                nested,
                ..
            } => self.fail(&code, &message, nested),
            End::Cut { code, .. } => {
                // A short pause first so what was sent is on the wire before the cut (hyper
                // drops unflushed body bytes when it aborts a connection).
                self.steps.push(Step::Sleep(Duration::from_millis(20)));
                self.steps.push(Step::Emit(Out::Cut(code)));
            }
        }
        std::mem::take(&mut self.steps)
    }

    fn tool_call(&mut self, name: &str, arguments: &str) -> Vec<Step> {
        self.start();
        let item_id = self.shared.next_id("fc");
        let call_id = self.shared.next_id("call");
        let item = |status: &str, arguments: &str| {
            json!({"id": item_id, "type": "function_call", "status": status,
                   "call_id": call_id, "name": name, "arguments": arguments})
        };
        self.emit(
            "response.output_item.added",
            json!({"output_index": 0, "item": item("in_progress", "")}),
        );
        let pieces = split_arguments(arguments);
        for (i, piece) in pieces.iter().enumerate() {
            self.sleep(self.pause_before(i));
            self.emit(
                "response.function_call_arguments.delta",
                json!({"item_id": item_id, "output_index": 0, "delta": piece}),
            );
        }
        self.emit(
            "response.function_call_arguments.done",
            json!({"item_id": item_id, "output_index": 0, "name": name, "arguments": arguments}),
        );
        let done = item("completed", arguments);
        self.emit(
            "response.output_item.done",
            json!({"output_index": 0, "item": done.clone()}),
        );
        self.complete(vec![done], pieces.len() as u64);
        std::mem::take(&mut self.steps)
    }

    /// A request over the context window, as a stream answers it: the response starts,
    /// then the nested `error` event (sequence number 2, as production sends it) and
    /// `response.failed` with the same code. Nothing was generated.
    fn too_long(&mut self) -> Vec<Step> {
        self.start();
        let error = json!({"type": "invalid_request_error", "code": CONTEXT_LENGTH_EXCEEDED,
                           "message": CONTEXT_LENGTH_MESSAGE, "param": "input"});
        self.emit("error", json!({ "error": error }));
        let error = json!({"code": CONTEXT_LENGTH_EXCEEDED, "message": CONTEXT_LENGTH_MESSAGE});
        let response = self.response("failed", vec![], Value::Null, error);
        self.emit("response.failed", json!({ "response": response }));
        std::mem::take(&mut self.steps)
    }

    /// In-stream failure: the `error` event, then `response.failed` as the terminal event.
    fn fail(&mut self, code: &str, message: &str, nested: bool) {
        let error = if nested {
            json!({"error": {"type": "server_error", "code": code, "message": message,
                             "param": null}})
        } else {
            json!({"code": code, "message": message, "param": null})
        };
        self.emit("error", error);
        let error = json!({"code": code, "message": message});
        let usage = self.usage(0);
        let response = self.response("failed", vec![], usage, error);
        self.emit("response.failed", json!({ "response": response }));
    }

    fn pause_before(&self, index: usize) -> Duration {
        if index == 0 {
            self.knobs.first_token_delay
        } else {
            self.knobs.token_delay
        }
    }
}

/// `base` with the fields of `extra` added.
fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    out
}

/// The `type` of an event.
pub(super) fn event_type(event: &Value) -> Option<&str> {
    event.get("type").and_then(Value::as_str)
}
