//! `provider:anthropic`: the Messages API over SSE (protocols.md), with adaptive thinking
//! on Claude 4.6 by default (see [`thinking`](super::thinking)).
//!
//! `provider:anthropic` supervises `poolSize` connection actors `conn:anthropic:<n>`,
//! each an HTTP client carrying many calls; a killed one ends its calls (their sessions
//! try again on another).

pub mod wire;

use std::time::Duration;

use pincer_actors::{ChildSpec, Intensity, Scope, Strategy, SupervisorSpec};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;

use self::wire::{Decoder, Step};
use super::call::{self, ErrorShape};
use super::emit::Emitter;
use super::sse::Reader;
use super::{ErrorKind, Lease, Pool, ProviderError, ProviderMsg, ProviderRequest};
use crate::gateway::Gateway;

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
    /// The settings in `gw`'s current config, if `[providers.anthropic]` is there.
    pub fn current(gw: &Gateway) -> Option<Self> {
        let config = gw.config();
        let a = config.providers.anthropic.as_ref()?;
        Some(Self {
            messages_url: format!("{}/v1/messages", a.base_url.trim_end_matches('/')),
            version: a.version.clone(),
            max_tokens: a.max_tokens,
            chunk_size: a.stream_options.chunk_size.get(),
            latency_threshold: a.stream_options.latency_threshold,
            keys: super::resolve_keys(gw, NAME, a.api_key.as_ref(), &a.api_keys),
        })
    }
}

/// The child spec of `provider:anthropic`, registering its pool in `gw`.
pub fn spec(gw: &Gateway) -> ChildSpec {
    let size = gw
        .config()
        .providers
        .anthropic
        .as_ref()
        .map_or(1, |a| a.pool_size.get());
    let paths = (0..size)
        .map(|n| pincer_core::paths::conn(NAME, n))
        .collect();
    gw.set_pool(
        NAME,
        Pool::new(paths, super::HTTP_CAPACITY, super::http_client()),
    );
    let mut spec = SupervisorSpec::new(Strategy::OneForOne).intensity(Intensity::default());
    for n in 0..size {
        spec = spec.child(crate::gateway::child(gw, format!("conn:{NAME}:{n}"), Conn));
    }
    spec.into_child_spec(format!("provider:{NAME}")).0
}

/// A connection actor.
#[derive(Debug, Clone, Copy)]
pub struct Conn;

/// Its state.
#[derive(Debug)]
pub struct ConnState {
    gw: Gateway,
    scope: Scope,
}

impl Actor for Conn {
    type Msg = ProviderMsg;
    type State = ConnState;
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProviderMsg>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<ConnState, ActorProcessingErr> {
        Ok(ConnState { gw, scope })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ProviderMsg>,
        msg: ProviderMsg,
        state: &mut ConnState,
    ) -> Result<(), ActorProcessingErr> {
        let ProviderMsg::Stream {
            request,
            events,
            lease,
        } = msg;
        let emitter = Emitter::new(&state.gw, events, NAME, &request.request_id);
        let (Some(settings), Some(lease)) = (Settings::current(&state.gw), lease) else {
            let error = ProviderError::new(
                ErrorKind::Rejected,
                "[providers.anthropic] is not configured",
            );
            state
                .scope
                .spawn(async move { emitter.fail(error).await.map_or((), |_| ()) });
            return Ok(());
        };
        lease.pool().keys.lock().set(settings.keys.clone());
        let emitter = emitter.pacing(settings.chunk_size, settings.latency_threshold);
        state
            .scope
            .spawn(run(state.gw.clone(), settings, request, emitter, lease));
        Ok(())
    }
}

/// Runs one call to the end of its stream.
async fn run(
    gw: Gateway,
    settings: Settings,
    request: Box<ProviderRequest>,
    mut emitter: Emitter,
    lease: Lease,
) {
    let body = wire::body(&request, settings.max_tokens);
    let pool = lease.pool();
    let own_key = request.api_key.as_ref().map(|k| k.0.as_str());
    let sent = call::post(
        &gw,
        pool,
        NAME,
        &request.request_id,
        SHAPE,
        own_key,
        |key| {
            pool.http
                .post(&settings.messages_url)
                .header("x-api-key", key)
                .header("anthropic-version", &settings.version)
                .header("x-client-request-id", &request.request_id)
                .json(&body)
        },
    )
    .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            let _ = emitter.fail(error).await;
            return;
        }
    };
    let mut reader = Reader::new(response.bytes_stream());
    let mut decoder = Decoder::default();
    loop {
        let value = match reader.next_json(NAME, &request.request_id).await {
            Ok(Some(value)) => value,
            Ok(None) => return,
            Err(error) => {
                let _ = emitter.fail(error).await;
                return;
            }
        };
        let sent = match decoder.step(&value) {
            Step::Nothing => Ok(()),
            Step::Delta(text) => emitter.delta(&text).await,
            Step::Thinking(text) => emitter.thinking(&text).await,
            Step::ToolCall(call) => emitter.tool_call(call).await,
            Step::Reasoning(block) => emitter.reasoning(block).await,
            Step::Stopped => {
                if decoder.stop_reason() == Some("refusal") {
                    tracing::info!(provider = NAME, request_id = %request.request_id, "the model refused");
                }
                let _ = emitter.done().await;
                return;
            }
            Step::Error(kind, message) => {
                let error = stream_error(&kind, &message, emitter.started());
                let _ = emitter.fail(error).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
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
