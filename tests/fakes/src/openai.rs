//! Fake of the OpenAI Responses API: `POST /v1/responses` answered as Server-Sent Events,
//! `GET /v1/responses` upgraded to WebSocket mode, and `GET /v1/models`.
//!
//! The fake streams the same event sequence the real service does (`response.created` …
//! `response.completed`, each with `type` and an increasing `sequence_number`), keeps the
//! per-connection "latest response" that WebSocket continuations rely on, and replays a FIFO
//! of [`Script`]s to inject tool calls, HTTP errors, in-stream errors, dropped connections and
//! hangs. Without a script the reply is deterministic: `"openai: <last user text>"`, or
//! `"tool said: <output>"` when the last input item is a `function_call_output`.
//!
//! ## Token counts and the context window
//!
//! The fake has no tokenizer: a request's input "tokens" are the **words** (runs of
//! non-whitespace) in every string of `instructions` and of `input` (message `content`
//! and content parts' `text`, tool `output`), plus, for a continuation
//! (`previous_response_id`), the context of the response it continues (its input less its
//! `instructions`, which the API does not carry over, plus its output), as the real API
//! counts the whole context. Output tokens are the reply's streamed deltas
//! (one per word; about three for a tool call's arguments). `response.usage` reports
//! exactly these numbers (`input_tokens`, `output_tokens`, `total_tokens`), and
//! [`Knobs::context_limit`] compares the same input count, so a test can predict both.
//!
//! A request over the window, as the real API answers it (confirmed from public reports,
//! not protocols.md, which does not cover it):
//! - the error object is `{"message": "Your input exceeds the context window of this
//!   model. Please adjust your input and try again.", "type": "invalid_request_error",
//!   "param": "input", "code": "context_length_exceeded"}` (same text over HTTP and in
//!   streams: openai/codex#2921, dyad-sh/dyad#1672);
//! - a streamed request (`stream: true`, and WebSocket mode, which carries the same
//!   events) is answered 200 with `response.created`, `response.in_progress`, then the
//!   `error` event `{"type":"error","sequence_number":2,"error":{...}}` (dyad-sh/dyad#1672
//!   shows exactly this frame; maximhq/bifrost#4413 reports the streaming path ends in an
//!   error event while the non-streaming path returns the HTTP error), then, as for every
//!   stream error, `response.failed` with `response.error: {code, message}` (openai/codex
//!   classifies `context_length_exceeded` from `response.failed`'s error);
//! - refused up front (a non-streaming request; [`Knobs::context_limit_before_stream`]
//!   picks this for streams too, for clients that must handle both): HTTP 400 with
//!   `{"error": {...}}`, or on a socket the error frame `{"type":"error","status":400,
//!   "error":{...}}`.
//!
//! Every instance runs on its own thread with its own tokio runtime, so the same fake serves
//! `#[tokio::test]` (either flavour) and plain synchronous tests that spawn the real binary.
//! Dropping the [`OpenAiFake`] stops the server and closes every connection.
//!
//! ```no_run
//! # async fn demo() {
//! use pincer_fakes::openai::{OpenAiFake, Script};
//! let fake = OpenAiFake::start().await;
//! fake.script(Script::tool_call("get_weather", r#"{"city":"Paris"}"#));
//! // point a client at fake.base_url() with key "sk-test" ...
//! assert_eq!(fake.counters().sse_requests, 0);
//! # }
//! ```

mod errors;
mod http;
mod plan;
mod player;
mod state;
mod wire;
mod ws;

/// The fake's count of the input tokens a request body itself carries: the words of its
/// `instructions` and of its `input` texts (a continuation also counts what its earlier
/// response carried; this does not).
pub fn input_tokens(body: &serde_json::Value) -> u64 {
    wire::input_words(body)
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{Listener, Runtime, Server};
use state::Shared;

/// Behaviour switches of the fake. Change them at runtime with [`OpenAiFake::set`]; a new
/// value applies to the next request (and wakes open sockets so age limits re-arm).
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    /// Keys accepted in `Authorization: Bearer KEY`. Default `["sk-test"]`.
    pub valid_keys: Vec<String>,
    /// Keys that authenticate but always get 429 `rate_limit_exceeded` (SSE: with a
    /// `retry-after-ms` header; WebSocket: an error frame with `status: 429`).
    pub rate_limited_keys: Vec<String>,
    /// Value of `retry-after-ms` sent to [`Knobs::rate_limited_keys`]. Default 1000.
    pub retry_after_ms: u64,
    /// Pause between two deltas. Default zero.
    pub token_delay: Duration,
    /// Pause before the first delta (time to first token). Default zero.
    pub first_token_delay: Duration,
    /// Pause before answering a WebSocket upgrade and before answering every
    /// `POST /v1/responses`: the cost of a fresh connection, which SSE pays per request and
    /// WebSocket mode once per socket. Default zero.
    pub handshake_delay: Duration,
    /// When set, upgrade requests are answered with this HTTP status and an error JSON
    /// instead of `101`, like a proxy or account without WebSocket mode. Default `None`.
    pub refuse_websocket: Option<u16>,
    /// Maximum socket lifetime (the real service: 60 minutes). Past it, the socket gets an
    /// error frame `websocket_connection_limit_reached` and a close `1000`: on the next
    /// `response.create`, or as soon as it is idle. Default 60 minutes.
    pub max_connection_age: Option<Duration>,
    /// Model ids listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// Answer 400 `model_not_found` for models not in [`Knobs::models`]. Default `false`.
    pub reject_unknown_models: bool,
    /// Whether a request without `store` is stored (retrievable by `previous_response_id`
    /// from any connection). The real API defaults to `true`. Default `true`.
    pub store_by_default: bool,
    /// The model's context window in the fake's tokens (see the module docs: words, plus
    /// the context a continuation continues). A generating request whose input count is
    /// larger fails with `context_length_exceeded`, in the stream (the default) or before
    /// it ([`Knobs::context_limit_before_stream`]), and consumes no script. Default `None`
    /// (no limit).
    pub context_limit: Option<u64>,
    /// Refuse a request over [`Knobs::context_limit`] before any event (SSE: HTTP 400;
    /// WebSocket: an error frame with `status: 400`), as the real API does a non-streaming
    /// request, instead of inside the stream. Default `false`.
    pub context_limit_before_stream: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            valid_keys: vec!["sk-test".to_owned()],
            rate_limited_keys: Vec::new(),
            retry_after_ms: 1000,
            token_delay: Duration::ZERO,
            first_token_delay: Duration::ZERO,
            handshake_delay: Duration::ZERO,
            refuse_websocket: None,
            max_connection_age: Some(Duration::from_secs(60 * 60)),
            models: ["gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4o"]
                .map(str::to_owned)
                .to_vec(),
            reject_unknown_models: false,
            store_by_default: true,
            context_limit: None,
            context_limit_before_stream: false,
        }
    }
}

/// One scripted outcome. The queue is FIFO and each generating request (not a warm-up, not
/// a request rejected before planning) consumes one entry; an empty queue means the default
/// text reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// Stream this text as the reply.
    Text(String),
    /// Stream one `function_call` output item with these arguments (split in ~3 deltas).
    ToolCall {
        /// Function name.
        name: String,
        /// JSON arguments, as a string, exactly as the model would produce them.
        arguments: String,
    },
    /// SSE: a non-2xx JSON error before the stream. WebSocket: an error frame carrying
    /// `status` and the error object; the socket stays open.
    HttpError {
        /// HTTP status, e.g. 429, 500, 503.
        status: u16,
        /// `error.code` (`null` on the wire when `None`).
        code: Option<String>,
        /// `error.type`, e.g. `server_error`, `requests`, `insufficient_quota`.
        error_type: String,
        /// `error.message`.
        message: String,
        /// Extra response headers (SSE only), e.g. `retry-after`, `x-should-retry`.
        headers: Vec<(String, String)>,
    },
    /// Stream `after_tokens` deltas, then an `error` event and `response.failed`.
    StreamError {
        /// Deltas sent before the error.
        after_tokens: usize,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
        /// `true`: `{"type":"error","error":{...}}` (what production sends); `false`: the
        /// flat `{"type":"error","code","message","param"}` shape the docs show.
        nested: bool,
    },
    /// Stream `after_tokens` deltas, then end the connection without a terminal event.
    /// WebSocket: close frame with `code`, except 1006 (never on the wire), which drops the
    /// TCP connection. SSE: the body is aborted mid-stream whatever the code.
    Close {
        /// Deltas sent before the cut.
        after_tokens: usize,
        /// WebSocket close code.
        code: u16,
    },
    /// Accept the request and never answer (SSE: not even the status line).
    Hang,
    /// The inner script, consumed only by a request for this model; requests for other
    /// models skip over it in the queue.
    ForModel(String, Box<Script>),
}

impl Script {
    /// [`Script::Text`].
    pub fn text(text: impl Into<String>) -> Script {
        Script::Text(text.into())
    }

    /// [`Script::ToolCall`].
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Script {
        Script::ToolCall {
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// [`Script::HttpError`] with the error type the real API uses for that status, a
    /// generic message and no extra headers.
    pub fn http_error(status: u16, code: Option<&str>) -> Script {
        let error_type = match (status, code) {
            (429, Some("insufficient_quota")) => "insufficient_quota",
            (429, _) => "requests",
            (401, _) | (400, _) | (404, _) => "invalid_request_error",
            _ => "server_error",
        };
        Script::HttpError {
            status,
            code: code.map(str::to_owned),
            error_type: error_type.to_owned(),
            message: format!("Scripted error (HTTP {status})."),
            headers: Vec::new(),
        }
    }

    /// Adds a response header to a [`Script::HttpError`]; other scripts are unchanged.
    pub fn with_header(mut self, name: &str, value: &str) -> Script {
        if let Script::HttpError { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// [`Script::StreamError`] in the nested shape production sends.
    pub fn stream_error(after_tokens: usize, code: impl Into<String>) -> Script {
        Script::StreamError {
            after_tokens,
            code: code.into(),
            message: "The server had an error while processing your request.".to_owned(),
            nested: true,
        }
    }

    /// [`Script::Close`].
    pub fn close(after_tokens: usize, code: u16) -> Script {
        Script::Close { after_tokens, code }
    }

    /// [`Script::ForModel`].
    pub fn for_model(model: impl Into<String>, script: Script) -> Script {
        Script::ForModel(model.into(), Box::new(script))
    }
}

/// Snapshot of what the fake has counted since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// WebSocket connections upgraded, in total.
    pub sockets_opened: u64,
    /// WebSocket connections open right now.
    pub sockets_open: u64,
    /// Upgrade requests answered with an HTTP error (refusal knob or bad key).
    pub upgrades_refused: u64,
    /// Warm-ups (`generate: false`) answered, over either transport.
    pub warmups: u64,
    /// Generating `response.create` frames received on sockets, whatever their outcome.
    pub ws_requests: u64,
    /// Generating `POST /v1/responses` with a valid key, whatever their outcome.
    pub sse_requests: u64,
    /// Generating requests whose `previous_response_id` was accepted.
    pub continuations: u64,
    /// `GET /v1/models` calls (including unauthorized ones).
    pub models_calls: u64,
    /// 429 answers served (HTTP statuses and WebSocket error frames).
    pub rate_limited: u64,
    /// 401 answers served (HTTP and refused upgrades).
    pub unauthorized: u64,
    /// `previous_response_not_found` errors served.
    pub previous_not_found: u64,
    /// `response_already_in_flight` errors served.
    pub already_in_flight: u64,
    /// Requests refused as larger than [`Knobs::context_limit`], in either shape.
    pub context_exceeded: u64,
    /// Responses whose client went away before their end (the transport dropped the
    /// stream while the fake still had events or pauses to play).
    pub abandoned: u64,
}

/// How a recorded request reached the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A text frame on a WebSocket (`headers` are the upgrade request's).
    Ws,
    /// A WebSocket upgrade request, accepted or refused (`body` is `null`).
    Upgrade,
    /// `POST /v1/responses`.
    Sse,
    /// `GET /v1/models`.
    Models,
    /// Any other route (answered 404).
    Other,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Transport and route.
    pub transport: Transport,
    /// HTTP method (`GET` for WebSocket frames).
    pub method: String,
    /// Request path, e.g. `/v1/responses`.
    pub path: String,
    /// Headers, names lowercased; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The JSON body or WebSocket frame; a JSON string holding the raw text when it is not
    /// JSON; `null` when empty.
    pub body: Value,
    /// WebSocket connection id (for [`Transport::Ws`] and accepted [`Transport::Upgrade`]).
    pub connection: Option<u64>,
    /// When the fake received it (after any handshake delay).
    pub at: Instant,
    /// The request carried a `previous_response_id` that was accepted.
    pub continuation: bool,
    /// The request was a warm-up (`generate: false`) that was answered.
    pub warmup: bool,
}

impl Recorded {
    /// A header's value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A running fake OpenAI server on `127.0.0.1`. Dropping it stops the server.
pub struct OpenAiFake {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for OpenAiFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiFake")
            .field("addr", &self.addr())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl OpenAiFake {
    /// Starts a fake with default knobs. Usable from any async context; the server itself
    /// runs on a dedicated thread.
    pub async fn start() -> OpenAiFake {
        Self::start_blocking_with(Knobs::default())
    }

    /// Starts a fake with these knobs.
    pub async fn start_with(knobs: Knobs) -> OpenAiFake {
        Self::start_blocking_with(knobs)
    }

    /// Starts a fake with default knobs from synchronous code.
    pub fn start_blocking() -> OpenAiFake {
        Self::start_blocking_with(Knobs::default())
    }

    /// Starts a fake with these knobs from synchronous code.
    ///
    /// # Panics
    ///
    /// If `127.0.0.1:0` cannot be bound or the server thread or its runtime cannot start.
    pub fn start_blocking_with(knobs: Knobs) -> OpenAiFake {
        let shared = Arc::new(Shared::new(knobs));
        let routes = http::routes(Arc::clone(&shared));
        let server = Listener::bind("openai").serve(Runtime::TwoWorkers, routes);
        OpenAiFake { server, shared }
    }

    /// The base URL to hand to clients: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// The WebSocket endpoint: `ws://127.0.0.1:PORT/v1/responses`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/responses", self.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes knobs at runtime.
    pub fn set<F: FnOnce(&mut Knobs)>(&self, f: F) {
        self.shared.update_knobs(f);
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// Queues a scripted outcome (FIFO).
    pub fn script(&self, script: Script) {
        self.shared.push_script(script);
    }

    /// Scripts not consumed yet.
    pub fn scripts_pending(&self) -> usize {
        self.shared.scripts_pending()
    }

    /// Drops every queued script.
    pub fn clear_scripts(&self) {
        self.shared.clear_scripts();
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters.snapshot()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.records()
    }

    /// The requests recorded since the last take or clear, forgotten here: a driver that
    /// looks at each turn's requests copies only those.
    pub fn take_requests(&self) -> Vec<Recorded> {
        self.shared.take_records()
    }

    /// Forgets the recorded requests (counters are kept).
    pub fn clear_requests(&self) {
        self.shared.clear_records();
    }

    /// Abruptly drops every open WebSocket (no close frame: 1006 from the client's view)
    /// and aborts every SSE body still streaming or hanging.
    pub fn drop_all_sockets(&self) {
        self.shared.kill_all();
    }
}
