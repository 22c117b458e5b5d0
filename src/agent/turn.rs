//! `turn:<uuid>`: one turn of an agent, a temporary child of `agent:<id>`.
//!
//! It reads the agent's settings, calls the provider, and streams [`TurnEvent`]s to the
//! session that asked for it. Its events channel is its only link to the session: when a
//! turn dies (killed, or with its agent or provider), the channel closes without a final
//! event, and the session starts the turn again.

use std::sync::Arc;

use parking_lot::Mutex;
use pincer_actors::{ChildSpec, Restart, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use crate::gateway::Gateway;
use crate::provider::{self, ChatMessage, ProviderEvent, ProviderMsg, ProviderRequest};
use crate::store::Role;

/// What a session asks of a turn.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// The agent.
    pub agent: String,
    /// The session asking (for logs).
    pub session_key: String,
    /// The inbox entry answered.
    pub inbox_id: i64,
    /// The conversation so far, oldest first.
    pub context: Vec<ChatMessage>,
    /// The new user message.
    pub text: String,
}

/// What a turn sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// Reply text, streamed.
    Delta(String),
    /// The reply is complete.
    Done {
        /// The whole reply.
        reply: String,
        /// The model's thinking, if any.
        thinking: Option<String>,
    },
    /// No reply can be had; the text says why (the session answers with it).
    Failed(String),
}

/// The turn actor.
#[derive(Debug)]
pub struct Turn;

/// What a turn starts with.
#[derive(Debug)]
pub struct TurnArgs {
    gw: Gateway,
    request: TurnRequest,
    events: mpsc::Sender<TurnEvent>,
    scope: Scope,
}

/// The child spec of one turn. The request and the events sender move into the turn when
/// it starts: nothing keeps the sender alive once the turn is gone.
pub fn spec(gw: &Gateway, request: TurnRequest, events: mpsc::Sender<TurnEvent>) -> ChildSpec {
    let id = format!("turn:{}", uuid::Uuid::new_v4());
    let parts = Arc::new(Mutex::new(Some((gw.clone(), request, events))));
    ChildSpec::new(id, move |ctx| {
        let args = parts.lock().take().map(|(gw, request, events)| TurnArgs {
            gw,
            request,
            events,
            scope: ctx.scope().clone(),
        });
        (Turn, args)
    })
    .restart(Restart::Temporary)
}

impl Actor for Turn {
    type Msg = ();
    type State = ();
    type Arguments = Option<TurnArgs>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        args: Option<TurnArgs>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(TurnArgs {
            gw,
            request,
            events,
            scope,
        }) = args
        else {
            return Err("a turn cannot be started twice".into());
        };
        scope.spawn(async move {
            run(&gw, request, &events).await;
            myself.stop(None);
        });
        Ok(())
    }
}

async fn run(gw: &Gateway, request: TurnRequest, events: &mpsc::Sender<TurnEvent>) {
    let config = gw.config();
    let Some(agent) = config.agents.get(&request.agent) else {
        let why = format!("agent `{}` is not configured", request.agent);
        let _ = events.send(TurnEvent::Failed(why)).await;
        return;
    };
    let model = agent.model.as_ref();
    let provider_name = model
        .and_then(|m| m.provider_name())
        .unwrap_or_else(|| provider::echo::NAME.to_string());
    if !provider::is_built(&provider_name) {
        let why = format!(
            "provider `{provider_name}` of agent `{}` is not available in this build",
            request.agent
        );
        let _ = events.send(TurnEvent::Failed(why)).await;
        return;
    }
    // Not running (restarting): end without a final event; the session tries again.
    let Some(provider) = gw.actor::<ProviderMsg>(&provider::provider_path(&provider_name)) else {
        return;
    };
    let mut messages = request.context;
    messages.push(ChatMessage {
        role: Role::User,
        content: request.text,
    });
    let call = ProviderRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        model: model
            .and_then(|m| m.name.clone())
            .unwrap_or_else(|| provider_name.clone()),
        system_prompt: agent.system_prompt.clone(),
        messages,
    };
    let (tx, mut rx) = mpsc::channel(64);
    let stream = ProviderMsg::Stream {
        request: Box::new(call),
        events: tx,
    };
    if provider.cast(stream).is_err() {
        return;
    }
    let (mut reply, mut thinking) = (String::new(), String::new());
    while let Some(event) = rx.recv().await {
        match event {
            ProviderEvent::Delta(text) => {
                reply.push_str(&text);
                if events.send(TurnEvent::Delta(text)).await.is_err() {
                    return;
                }
            }
            ProviderEvent::Thinking(text) => thinking.push_str(&text),
            ProviderEvent::Done => {
                let thinking = (!thinking.is_empty()).then_some(thinking);
                let _ = events.send(TurnEvent::Done { reply, thinking }).await;
                return;
            }
            ProviderEvent::Error(why) => {
                let _ = events.send(TurnEvent::Failed(why)).await;
                return;
            }
        }
    }
}
