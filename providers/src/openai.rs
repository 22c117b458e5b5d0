//! The OpenAI Responses API, WebSocket first (protocols.md).
//!
//! A connection slot keeps one socket ([`socket`]) with at most one response in flight,
//! warms it up for the models marked in `[response.openaiWsWarmup]`, continues a session's
//! conversation with `previous_response_id` when the session's next call lands on the
//! socket that holds its last response, and replaces the socket before the upstream's
//! 60-minute limit. `transport = "auto"` sends a call over SSE ([`http`]) when the socket
//! cannot take it (not connected, or the send failed before dispatch); `"sse"` never opens
//! a socket. [`wire`] is the JSON both carry.

pub mod http;
pub mod socket;
pub mod wire;

use std::time::Duration;

use pincer_config::{Config, StreamMode, Transport};

use crate::emit::Emitter;
use crate::{Lease, ProviderRequest};

/// The provider's name in config.
pub const NAME: &str = "openai";

/// Calls one WebSocket carries at once.
pub const SOCKET_CAPACITY: usize = 1;

/// The `error.code` of a request larger than the model's context window: in an HTTP 400
/// body before a stream, in the `error` event and `response.failed` of a stream, and in a
/// WebSocket error frame.
pub const CONTEXT_LENGTH_CODE: &str = "context_length_exceeded";

/// Whether error code `code` says the request is larger than the model's context window.
pub fn is_context_length(code: Option<&str>) -> bool {
    code == Some(CONTEXT_LENGTH_CODE)
}

/// The settings one call runs with, read from the config in force when it starts (an
/// edited key or threshold applies from the next call).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `…/responses` over HTTP.
    pub responses_url: String,
    /// `ws(s)://…/responses`.
    pub socket_url: String,
    /// `[response] transport`.
    pub transport: Transport,
    /// Models to warm a new socket up for.
    pub warmups: Vec<String>,
    /// Tokens per pushed delta.
    pub chunk_size: usize,
    /// `streamOptions.latencyThreshold` (zero: off).
    pub latency_threshold: Duration,
    /// When an idle socket is replaced.
    pub socket_max_age: Duration,
    /// How long a reply may go without a byte (`readTimeout`).
    pub read_timeout: Duration,
    /// The API keys, resolved.
    pub keys: Vec<String>,
}

impl Settings {
    /// The settings in `config`, if `[providers.openai]` is there, with its API keys
    /// resolved (`keys`).
    pub fn from_config(config: &Config, keys: Vec<String>) -> Option<Self> {
        let openai = config.providers.openai.as_ref()?;
        let base = openai.base_url.trim_end_matches('/');
        let chunk_size = match openai.mode {
            Some(StreamMode::Batch) => usize::MAX,
            _ => openai.stream_options.chunk_size.get(),
        };
        Some(Self {
            responses_url: format!("{base}/responses"),
            socket_url: socket_url(base),
            transport: config.response.transport,
            warmups: config
                .response
                .openai_ws_warmup
                .iter()
                .filter(|(_, on)| **on)
                .map(|(model, _)| model.clone())
                .collect(),
            chunk_size,
            latency_threshold: openai.stream_options.latency_threshold,
            socket_max_age: openai.socket_max_age,
            read_timeout: openai.read_timeout,
            keys,
        })
    }
}

/// The WebSocket URL for API base `base`: http becomes ws, https wss, plus `/responses`.
pub fn socket_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let socket_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{socket_base}/responses")
}

/// One call on its way to the socket.
#[derive(Debug)]
pub struct Job {
    /// The call.
    pub request: Box<ProviderRequest>,
    /// Its stream.
    pub emitter: Emitter,
    /// Its pool slot.
    pub lease: Lease,
    /// Send the whole context (a continuation was refused, or the socket is new).
    pub full: bool,
    /// Tries so far on sockets.
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn socket_urls_follow_the_base_url() {
        let cases = [
            (
                "https://api.openai.com/v1",
                "wss://api.openai.com/v1/responses",
            ),
            ("http://127.0.0.1:9/v1/", "ws://127.0.0.1:9/v1/responses"),
        ];
        for (base, want) in cases {
            assert_eq!(super::socket_url(base), want);
        }
    }
}
