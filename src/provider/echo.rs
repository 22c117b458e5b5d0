//! `provider:echo`: the built-in offline model. It answers `echo: <the user's message>`,
//! streamed in chunks of `[providers.echo] chunkSize` characters, each after
//! `chunkDelayMs`. Deterministic, free, and what the gateway runs on with no API keys.

use std::time::Duration;

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use super::{ProviderEvent, ProviderMsg, ProviderRequest};
use crate::gateway::Gateway;

/// The provider's name in config (`provider = "echo"`).
pub const NAME: &str = "echo";

/// The echo provider actor.
#[derive(Debug, Clone, Copy)]
pub struct Echo;

/// Its state.
#[derive(Debug)]
pub struct EchoState {
    gw: Gateway,
    scope: Scope,
}

/// The child spec of `provider:echo`.
pub fn spec(gw: &Gateway) -> ChildSpec {
    crate::gateway::child(gw, format!("provider:{NAME}"), Echo)
}

/// The reply the echo model gives to `request`.
pub fn reply_to(request: &ProviderRequest) -> String {
    let last = super::last_user_text(&request.items);
    if last.trim().is_empty() {
        "echo: (empty message)".to_string()
    } else {
        format!("echo: {last}")
    }
}

impl Actor for Echo {
    type Msg = ProviderMsg;
    type State = EchoState;
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<ProviderMsg>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<EchoState, ActorProcessingErr> {
        Ok(EchoState { gw, scope })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ProviderMsg>,
        msg: ProviderMsg,
        state: &mut EchoState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProviderMsg::Stream {
                request, events, ..
            } => {
                let config = state.gw.config().providers.echo.clone();
                let reply = reply_to(&request);
                let chunk = config.chunk_size.get();
                let delay = config.chunk_delay_ms;
                // Streaming runs in the provider's scope: killing the provider ends it, and
                // the turn sees its stream close.
                state
                    .scope
                    .spawn(async move { stream(reply, chunk, delay, events).await });
            }
        }
        Ok(())
    }
}

async fn stream(reply: String, chunk: usize, delay: Duration, events: mpsc::Sender<ProviderEvent>) {
    let chars: Vec<char> = reply.chars().collect();
    for piece in chars.chunks(chunk) {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let text: String = piece.iter().collect();
        if events.send(ProviderEvent::Delta(text)).await.is_err() {
            return;
        }
    }
    let _ = events.send(ProviderEvent::Done).await;
}
