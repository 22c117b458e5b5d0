//! The Anthropic Messages API over SSE (protocols.md), with adaptive thinking on Claude
//! 4.6 by default (see [`thinking`](crate::thinking)). [`wire`] is its JSON.

pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use pincer_config::Config;
use pincer_core::metrics::catalog::ProviderMetrics;
use serde_json::Value;

use self::wire::{Decoder, Step};
use crate::call::{self, ErrorShape, Target};
use crate::emit::{Emitter, Gone};
use crate::sse;
use crate::{ErrorKind, Lease, ProviderError, ProviderRequest};

/// The provider's name in config.
pub const NAME: &str = "anthropic";

/// Anthropic error bodies carry their kind at `error.type`; a request too long for the
/// model is told by its message (see [`is_context_length`]).
pub const SHAPE: ErrorShape = ErrorShape {
    code: |body| {
        body.pointer("/error/type")
            .and_then(Value::as_str)
            .map(str::to_string)
    },
    too_long: |_, body| {
        let field = |pointer: &str| body.pointer(pointer).and_then(Value::as_str);
        match (field("/error/type"), field("/error/message")) {
            (Some(kind), Some(message)) => is_context_length(kind, message),
            _ => false,
        }
    },
};

/// Whether an error of type `kind` with `message` says the request is larger than the
/// model's context window. The API has no code for it: an `invalid_request_error` (HTTP
/// 400) whose message reads "prompt is too long: 210345 tokens > 200000 maximum", or, from
/// models that count `max_tokens` into the window, "input length and \`max_tokens\` exceed
/// context limit: 189136 + 20000 > 204648, ...". (`413 request_too_large` is the request's
/// size in bytes, and `stop_reason: model_context_window_exceeded` is a normal stop: the
/// reply filled the window; neither is this.)
pub fn is_context_length(kind: &str, message: &str) -> bool {
    let message = message.trim_start().to_ascii_lowercase();
    kind == "invalid_request_error"
        && (message.starts_with("prompt is too long")
            || message.starts_with("input length and `max_tokens` exceed context limit"))
}

/// The settings one call runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `…/v1/messages`.
    pub messages_url: String,
    /// `anthropic-version`.
    pub version: String,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// Tokens per pushed delta.
    pub chunk_size: usize,
    /// `streamOptions.latencyThreshold`.
    pub latency_threshold: Duration,
    /// How long a reply may go without a byte (`readTimeout`).
    pub read_timeout: Duration,
    /// The API keys, resolved.
    pub keys: Vec<String>,
}

impl Settings {
    /// The settings in `config`, if `[providers.anthropic]` is there, with its API keys
    /// resolved (`keys`).
    pub fn from_config(config: &Config, keys: Vec<String>) -> Option<Self> {
        let a = config.providers.anthropic.as_ref()?;
        Some(Self {
            messages_url: format!("{}/v1/messages", a.base_url.trim_end_matches('/')),
            version: a.version.clone(),
            max_tokens: a.max_tokens,
            chunk_size: a.stream_options.chunk_size.get(),
            latency_threshold: a.stream_options.latency_threshold,
            read_timeout: a.read_timeout,
            keys,
        })
    }
}

/// Runs one call to the end of its stream (`metrics` counts its retries and pace).
pub async fn run(
    metrics: Arc<ProviderMetrics>,
    settings: Settings,
    request: Box<ProviderRequest>,
    emitter: Emitter,
    lease: Lease,
) {
    let body = wire::body(&request, settings.max_tokens);
    let pool = lease.pool();
    let own_key = request.api_key.as_ref().map(|k| k.0.as_str());
    let target = Target {
        provider: NAME,
        shape: SHAPE,
        pool,
        metrics: &metrics,
        read_timeout: settings.read_timeout,
    };
    let sent = call::post(target, &request.request_id, own_key, |key| {
        pool.http
            .post(&settings.messages_url)
            .header("x-api-key", key)
            .header("anthropic-version", &settings.version)
            .header("x-client-request-id", &request.request_id)
            .json(&body)
    })
    .await;
    stream_reply(sent, emitter, settings.read_timeout, &request.request_id).await;
}

/// Streams the reply of a sent call (`sent`: the POST's outcome) to `emitter`, giving up
/// after `read_timeout` without a byte.
pub async fn stream_reply(
    sent: Result<reqwest::Response, ProviderError>,
    emitter: Emitter,
    read_timeout: Duration,
    request_id: &str,
) {
    let decoder = SseDecoder {
        decoder: Decoder::default(),
        request_id: request_id.to_string(),
    };
    sse::stream(sent, decoder, emitter, read_timeout, NAME, request_id).await;
}

/// Messages events, as the turn needs them.
#[derive(Debug)]
struct SseDecoder {
    decoder: Decoder,
    request_id: String,
}

impl sse::Decode for SseDecoder {
    async fn event(&mut self, event: &Value, emitter: &mut Emitter) -> Result<sse::Flow, Gone> {
        match self.decoder.step(event) {
            Step::Nothing => {}
            Step::Delta(text) => emitter.delta(&text).await?,
            Step::Thinking(text) => emitter.thinking(&text).await?,
            Step::ToolCall(call) => emitter.tool_call(call).await?,
            Step::Reasoning(block) => emitter.reasoning(block).await?,
            Step::Stopped => {
                // `model_context_window_exceeded` is a normal stop too: the reply filled
                // the window and is kept as it came (the next call's input is then too
                // long, and that refusal is the one classified).
                match self.decoder.stop_reason() {
                    Some("refusal") => {
                        tracing::info!(provider = NAME, request_id = %self.request_id, "the model refused");
                    }
                    Some("model_context_window_exceeded") => {
                        tracing::info!(provider = NAME, request_id = %self.request_id, "the reply filled the model's context window");
                    }
                    Some("max_tokens") => emitter.cut().await?,
                    _ => {}
                }
                if let Some(usage) = self.decoder.usage() {
                    emitter.usage(usage).await?;
                }
                return Ok(sse::Flow::Done);
            }
            Step::Error(kind, message) => {
                let error = stream_error(&kind, &message, emitter.started());
                return Ok(sse::Flow::Failed(error));
            }
        }
        Ok(sse::Flow::More)
    }
}

/// The provider error for an `error` event of type `kind`.
fn stream_error(kind: &str, message: &str, started: bool) -> ProviderError {
    // Overload and server trouble mean "not this model now"; anything else is about
    // the request.
    let kind_of = if is_context_length(kind, message) {
        ErrorKind::ContextLength
    } else if started {
        ErrorKind::Broken
    } else if matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error") {
        ErrorKind::Exhausted
    } else {
        ErrorKind::Rejected
    };
    ProviderError::new(kind_of, format!("{kind}: {message}"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pincer_core::metrics::catalog::Transport;
    use tokio::sync::mpsc;

    use super::*;
    use crate::ProviderEvent;

    /// A Messages stream as protocols.md gives it, split across chunks anywhere.
    const STREAM: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
        event: ping\ndata: {\"type\":\"ping\"}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
        event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n\
        event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
        event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
        event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /// The client side of a call, built from parts alone: no gateway, no listener, no
    /// socket (the upstream's answer is a canned response).
    #[tokio::test]
    async fn a_reply_streams_from_a_canned_answer_without_a_gateway() {
        let metrics = Arc::new(ProviderMetrics::detached());
        let (events, mut rx) = mpsc::channel(16);
        let emitter =
            Emitter::new(metrics.clone(), events, NAME, "req-1").pacing(1, Duration::ZERO);
        let answer = http::Response::builder()
            .status(200)
            .header("content-type", "text/event-stream")
            .body(STREAM)
            .expect("a response");
        stream_reply(
            Ok(reqwest::Response::from(answer)),
            emitter,
            Duration::from_secs(5),
            "req-1",
        )
        .await;
        let mut got = Vec::new();
        while let Some(event) = rx.recv().await {
            got.push(event);
        }
        assert_eq!(
            got,
            vec![
                ProviderEvent::Delta("Hello".into()),
                ProviderEvent::Delta(" there".into()),
                ProviderEvent::Usage(crate::Usage {
                    input_tokens: 9,
                    output_tokens: 2,
                }),
                ProviderEvent::Done,
            ]
        );
        assert_eq!(metrics.first_token(Transport::Sse).count(), 1);
    }

    #[tokio::test]
    async fn an_error_event_fails_the_call_and_a_cut_stream_ends_without_a_final_event() {
        let run = |body: &'static str| async move {
            let (events, mut rx) = mpsc::channel(16);
            let emitter = Emitter::new(Arc::new(ProviderMetrics::detached()), events, NAME, "r");
            let answer = http::Response::builder()
                .status(200)
                .body(body)
                .expect("response");
            stream_reply(
                Ok(reqwest::Response::from(answer)),
                emitter,
                Duration::from_secs(5),
                "r",
            )
            .await;
            let mut got = Vec::new();
            while let Some(event) = rx.recv().await {
                got.push(event);
            }
            got
        };
        let overloaded = run("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n").await;
        assert_eq!(
            overloaded,
            vec![ProviderEvent::Error(ProviderError::new(
                ErrorKind::Exhausted,
                "overloaded_error: Overloaded"
            ))]
        );
        // A prompt too long, should it come as an event: its own kind, even after text.
        let too_long = run("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"prompt is too long: 210345 tokens > 200000 maximum\"}}\n\n").await;
        assert_eq!(
            too_long.last(),
            Some(&ProviderEvent::Error(ProviderError::new(
                ErrorKind::ContextLength,
                "invalid_request_error: prompt is too long: 210345 tokens > 200000 maximum"
            )))
        );
        // Cut after a delta: no Done, no Error (the session tries the turn again).
        let cut = run("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n").await;
        assert_eq!(cut, vec![ProviderEvent::Delta("Hel".into())]);
    }

    #[test]
    fn a_prompt_too_long_is_told_by_type_and_message() {
        let body = |kind: &str, message: &str| serde_json::json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"});
        let yes = [
            "prompt is too long: 210345 tokens > 200000 maximum",
            "Prompt is too long",
            "input length and `max_tokens` exceed context limit: 189136 + 20000 > 204648, decrease input length or `max_tokens` and try again",
        ];
        for message in yes {
            assert!(
                (SHAPE.too_long)(400, &body("invalid_request_error", message)),
                "{message}"
            );
        }
        let no = [
            (
                "invalid_request_error",
                "max_tokens: 10000 > 4096, which is the maximum allowed number of output tokens",
            ),
            (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes",
            ),
            ("overloaded_error", "prompt is too long"),
        ];
        for (kind, message) in no {
            assert!(
                !(SHAPE.too_long)(400, &body(kind, message)),
                "{kind}: {message}"
            );
        }
        assert!(!(SHAPE.too_long)(400, &serde_json::Value::Null));
    }
}
