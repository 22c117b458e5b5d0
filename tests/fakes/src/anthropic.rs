//! A fake of the Anthropic Messages API (`POST /v1/messages`, SSE streaming) and of the
//! model list (`GET /v1/models`), for offline tests and benches.
//!
//! It is written from the wire notes, not from Pincer's client: it checks what the real
//! API checks (auth, `anthropic-version`, required fields, thinking modes per model
//! family, role alternation, `tool_use`/`tool_result` pairing) and answers in the real
//! shapes (`message_start`, `ping`, per-block start/delta/stop, `message_delta`,
//! `message_stop`; JSON errors with `request_id`). Failures are injected through a FIFO
//! of [`Script`]s and latency through [`Knobs`].
//!
//! ## Token counts and the context window
//!
//! The fake has no tokenizer: a request's input tokens are the bytes of its body
//! re-serialized as compact JSON, divided by 4 (rounded down, at least 1). `usage` reports
//! that number as `input_tokens` (in `message_start` and again, cumulatively, in
//! `message_delta`, with `cache_creation_input_tokens` and `cache_read_input_tokens` at 0);
//! output tokens are the streamed deltas (one per word of text or thinking, one per
//! `input_json_delta` piece). [`Knobs::context_limit`] compares the same input count.
//!
//! A request over the window is refused before any event, streaming or not (confirmed
//! from public reports, not protocols.md, which does not cover it: anthropics/claude-code
//! issues show it for streamed calls, e.g. #59696, #62560): HTTP 400
//! `{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long:
//! 210345 tokens > 200000 maximum"},"request_id":"req_..."}`. The API gives no code: the
//! message is the tell. (Older models counted `max_tokens` in and said "input length and
//! \`max_tokens\` exceed context limit: 189136 + 20000 > 204648, decrease input length or
//! \`max_tokens\` and try again" (anthropics/claude-code#408); the fake sends the newer
//! one.) The newer `stop_reason: "model_context_window_exceeded"` (platform.claude.com,
//! "Stop reasons") is a successful reply that filled the window, not this error; script
//! it with [`Script::Stop`].
//!
//! ```no_run
//! use pincer_fakes::anthropic::{AnthropicFake, Script};
//!
//! let fake = AnthropicFake::start();
//! fake.script(Script::rate_limited(2));
//! // point the client at fake.base_url() with key "sk-ant-test" ...
//! assert_eq!(fake.counters().rate_limited, 0);
//! ```

mod model;
mod reply;
mod server;
mod state;
mod validate;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::state::Shared;
use crate::serve::{Listener, Runtime, Server};

/// The key the fake accepts by default (`x-api-key`).
pub const TEST_KEY: &str = "sk-ant-test";

/// Runtime-adjustable behaviour of the fake. Change it with [`AnthropicFake::set`].
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Wait before every `content_block_delta` after the first (the model "typing").
    pub token_delay: Duration,
    /// Wait between `message_start`/`ping` and the first content block (time to first
    /// token).
    pub first_token_delay: Duration,
    /// Wait before answering each `POST /v1/messages` at all (connection setup, queueing).
    pub handshake_delay: Duration,
    /// When set, a `ping` event is sent whenever the stream has been silent this long
    /// (inside the delays above), as the real API does on slow turns.
    pub ping_interval: Option<Duration>,
    /// Keys accepted in `x-api-key`. Default `["sk-ant-test"]`.
    pub valid_keys: Vec<String>,
    /// Keys that authenticate but are always answered 429 `rate_limit_error`.
    pub rate_limited_keys: Vec<String>,
    /// `retry-after` (seconds) sent with the 429s for `rate_limited_keys`.
    pub rate_limit_retry_after: u64,
    /// Model ids listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// Larger request bodies get 413 `request_too_large` (the real limit is 32 MB).
    pub max_body_bytes: usize,
    /// The model's context window in the fake's tokens (see the module docs: body bytes
    /// / 4). A valid request whose input count is larger gets 400 `invalid_request_error`
    /// "prompt is too long: N tokens > LIMIT maximum" and consumes no script. Default
    /// `None` (no limit).
    pub context_limit: Option<u64>,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            token_delay: Duration::ZERO,
            first_token_delay: Duration::ZERO,
            handshake_delay: Duration::ZERO,
            ping_interval: None,
            valid_keys: vec![TEST_KEY.to_owned()],
            rate_limited_keys: Vec::new(),
            rate_limit_retry_after: 1,
            models: ["claude-opus-4-6", "claude-sonnet-4-6", "claude-haiku-4-5"]
                .map(str::to_owned)
                .to_vec(),
            max_body_bytes: 32 * 1024 * 1024,
            context_limit: None,
        }
    }
}

/// One scripted outcome, consumed by the next `POST /v1/messages` that passes auth and
/// validation (a request rejected with 400/401/413/429-by-key does not consume one).
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// Reply with this text (thinking block still per the request's thinking mode).
    Text(String),
    /// Reply with a thinking block (whatever the request asked) followed by the text.
    Thinking {
        /// Text of the thinking block.
        thinking: String,
        /// Text of the answer block.
        text: String,
    },
    /// Reply with an optional text block, then a `tool_use` block whose input is
    /// streamed as `input_json_delta` pieces; `stop_reason` is `tool_use`.
    ToolUse {
        /// Optional preamble text block before the tool call.
        text: Option<String>,
        /// Tool name.
        name: String,
        /// Tool input (an object, as the API requires).
        input: Value,
    },
    /// Reply with this text and end with the given `stop_reason` (e.g. `pause_turn`,
    /// `refusal`, `max_tokens`).
    Stop {
        /// Text of the answer block.
        text: String,
        /// The `stop_reason` to report.
        stop_reason: String,
    },
    /// Answer with an HTTP error: `{"type":"error","error":{"type","message"},
    /// "request_id"}` plus the extra headers (e.g. `retry-after`, `x-should-retry`).
    HttpError {
        /// HTTP status (429, 500, 529, ...).
        status: u16,
        /// `error.type` (`rate_limit_error`, `api_error`, `overloaded_error`, ...).
        error_type: String,
        /// `error.message`.
        message: String,
        /// Extra response headers.
        headers: Vec<(String, String)>,
    },
    /// Stream the normal reply up to `after_tokens` delta events, then an `event: error`
    /// and the end of the body. A non-streaming request gets the matching HTTP error.
    StreamError {
        /// How many `content_block_delta` events precede the error.
        after_tokens: usize,
        /// `error.type`, e.g. `overloaded_error`.
        error_type: String,
        /// `error.message`.
        message: String,
    },
    /// Stream the normal reply up to `after_tokens` delta events, then drop the
    /// connection mid-body (no `message_stop`, no chunked terminator).
    Cut {
        /// How many `content_block_delta` events precede the cut.
        after_tokens: usize,
    },
    /// Send the response headers (200), then nothing, until the client gives up.
    Hang,
}

impl Script {
    /// A plain text reply.
    pub fn text(text: impl Into<String>) -> Script {
        Script::Text(text.into())
    }

    /// A tool call with no preamble text.
    pub fn tool_use(name: impl Into<String>, input: Value) -> Script {
        Script::ToolUse {
            text: None,
            name: name.into(),
            input,
        }
    }

    /// An HTTP error with no extra headers.
    pub fn http_error(status: u16, error_type: &str, message: &str) -> Script {
        Script::HttpError {
            status,
            error_type: error_type.to_owned(),
            message: message.to_owned(),
            headers: Vec::new(),
        }
    }

    /// A 429 `rate_limit_error` with `retry-after: secs`.
    pub fn rate_limited(secs: u64) -> Script {
        Script::HttpError {
            status: 429,
            error_type: "rate_limit_error".to_owned(),
            message: "Number of request tokens has exceeded your per-minute rate limit".to_owned(),
            headers: vec![("retry-after".to_owned(), secs.to_string())],
        }
    }

    /// A 529 `overloaded_error`, as the API sends when it is out of capacity.
    pub fn overloaded() -> Script {
        Script::http_error(529, "overloaded_error", "Overloaded")
    }

    /// Adds a response header to an [`Script::HttpError`] (no effect on other variants).
    pub fn with_header(mut self, name: &str, value: &str) -> Script {
        if let Script::HttpError { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// A snapshot of what the fake has served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// `POST /v1/messages` requests received (whatever their outcome).
    pub requests: u64,
    /// Of those, how many got a 200 `text/event-stream` answer.
    pub streamed: u64,
    /// `GET /v1/models` (and `/v1/models/{id}`) calls: the token-free "doctor" path.
    pub models_list: u64,
    /// 429 responses served, from any cause.
    pub rate_limited: u64,
    /// Every HTTP error status served (>= 400, any route) and how often.
    pub errors_by_status: BTreeMap<u16, u64>,
    /// In-stream `event: error`s sent.
    pub stream_errors: u64,
    /// Bodies cut off mid-stream ([`Script::Cut`]).
    pub cuts: u64,
    /// Responses left hanging ([`Script::Hang`]).
    pub hangs: u64,
    /// Requests refused as larger than [`Knobs::context_limit`].
    pub context_exceeded: u64,
}

impl Counters {
    /// How many responses with this HTTP status were served.
    pub fn errors(&self, status: u16) -> u64 {
        self.errors_by_status.get(&status).copied().unwrap_or(0)
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method, upper case.
    pub method: String,
    /// Request path without the query, e.g. `/v1/messages`.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// Headers, names lower-cased; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON; `Value::Null` when empty or not JSON.
    pub body: Value,
    /// When the request arrived.
    pub at: Instant,
    /// The HTTP status answered.
    pub status: u16,
}

impl Recorded {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A running fake Anthropic API on `127.0.0.1`. Dropping it stops the server and drops
/// every open connection.
#[derive(Debug)]
pub struct AnthropicFake {
    server: Server,
    shared: Arc<Shared>,
}

impl AnthropicFake {
    /// Starts a fake with default [`Knobs`]; returns once the port is bound.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start() -> AnthropicFake {
        AnthropicFake::start_with(Knobs::default())
    }

    /// Starts a fake with the given knobs; returns once the port is bound.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start_with(knobs: Knobs) -> AnthropicFake {
        let shared = Arc::new(Shared::new(knobs));
        let routes = server::routes(Arc::clone(&shared));
        let server = Listener::bind("anthropic").serve(Runtime::CurrentThread, routes);
        AnthropicFake { server, shared }
    }

    /// The base URL to give a client: `http://127.0.0.1:PORT` (no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes the knobs; applies to requests that arrive afterwards.
    pub fn set<F: FnOnce(&mut Knobs)>(&self, f: F) {
        f(&mut self.shared.lock().knobs);
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// Queues an outcome for a later `POST /v1/messages` (FIFO).
    pub fn script(&self, s: Script) {
        self.shared.lock().scripts.push_back(s);
    }

    /// How many scripted outcomes are still queued.
    pub fn pending_scripts(&self) -> usize {
        self.shared.lock().scripts.len()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().records.clone()
    }

    /// Only the `POST /v1/messages` requests, in the order they were answered.
    pub fn message_requests(&self) -> Vec<Recorded> {
        self.shared
            .lock()
            .records
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/v1/messages")
            .cloned()
            .collect()
    }
}
