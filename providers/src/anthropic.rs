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

/// Anthropic error bodies carry their kind at `error.type`.
pub const SHAPE: ErrorShape = ErrorShape {
    code: |body| {
        body.pointer("/error/type")
            .and_then(Value::as_str)
            .map(str::to_string)
    },
};

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
    let decoder = SseDecoder {
        decoder: Decoder::default(),
        request_id: request.request_id.clone(),
    };
    sse::stream(sent, decoder, emitter, NAME, &request.request_id).await;
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
                if self.decoder.stop_reason() == Some("refusal") {
                    tracing::info!(provider = NAME, request_id = %self.request_id, "the model refused");
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
    let kind_of = if started {
        ErrorKind::Broken
    } else if matches!(kind, "overloaded_error" | "api_error" | "rate_limit_error") {
        ErrorKind::Exhausted
    } else {
        ErrorKind::Rejected
    };
    ProviderError::new(kind_of, format!("{kind}: {message}"))
}
