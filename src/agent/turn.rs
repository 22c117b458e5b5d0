//! `turn:<uuid>`: one turn of an agent, a temporary child of `agent:<id>`.
//!
//! It reads the agent's settings, calls the provider, and streams [`TurnEvent`]s to the
//! session that asked for it. Its events channel is its only link to the session: when a
//! turn dies (killed, or with its agent or provider), the channel closes without a final
//! event, and the session starts the turn again.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use pincer_actors::{ChildSpec, Restart, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use crate::provider::{self, DispatchError, Providers};
use pincer_config::TopicConfig;
use pincer_config::live::View;
use pincer_config::{AgentConfig, ModelConfig, ThinkingMode};
use pincer_core::Role;
use pincer_providers::{
    ApiKey, ChatMessage, ErrorKind, Item, ProviderError, ProviderEvent, ProviderRequest,
};
use pincer_secrets::{Handle, Secrets};

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
    /// The Telegram topic it came from: its prompt over the agent's, its skills narrowing
    /// the agent's tools.
    pub topic: Option<TopicConfig>,
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

/// What a turn works with: the config in force (its agent's settings), the providers it
/// calls, and the secrets its agent's own key may come from.
#[derive(Debug, Clone)]
pub struct TurnCtx {
    /// The config in force.
    pub config: View,
    /// Where model calls go.
    pub providers: Providers,
    /// Resolved secrets (read through the agent's own handle).
    pub secrets: Arc<Secrets>,
    /// The clients tool calls keep between turns.
    pub toolbox: crate::tool::Toolbox,
    /// `$PINCER_HOME`.
    pub home: std::path::PathBuf,
}

/// The turn actor.
#[derive(Debug)]
pub struct Turn;

/// What a turn starts with.
#[derive(Debug)]
pub struct TurnArgs {
    ctx: TurnCtx,
    request: TurnRequest,
    events: mpsc::Sender<TurnEvent>,
    scope: Scope,
}

/// The child spec of one turn. The request and the events sender move into the turn when
/// it starts: nothing keeps the sender alive once the turn is gone.
pub fn spec(ctx: &TurnCtx, request: TurnRequest, events: mpsc::Sender<TurnEvent>) -> ChildSpec {
    let id = format!("turn:{}", uuid::Uuid::new_v4());
    let parts = Arc::new(Mutex::new(Some((ctx.clone(), request, events))));
    ChildSpec::new(id, move |start| {
        let args = parts.lock().take().map(|(ctx, request, events)| TurnArgs {
            ctx,
            request,
            events,
            scope: start.scope().clone(),
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
            ctx,
            request,
            events,
            scope,
        }) = args
        else {
            return Err("a turn cannot be started twice".into());
        };
        scope.spawn(async move {
            run_within_deadline(&ctx, request, &events).await;
            myself.stop(None);
        });
        Ok(())
    }
}

/// Tool rounds per turn when the agent sets no `adaptiveThinking.maxSteps`.
const DEFAULT_MAX_ROUNDS: u32 = 8;

/// The same call with the same arguments this many times in a turn ends it: the model is
/// looping, and more rounds would only cost.
const LOOP_LIMIT: u32 = 3;

/// Runs the turn within its agent's `turnTimeout`: past it, the user gets an error reply
/// naming the model being tried and the timeout, and the session moves on.
async fn run_within_deadline(
    ctx: &TurnCtx,
    request: TurnRequest,
    events: &mpsc::Sender<TurnEvent>,
) {
    let config = ctx.config.current();
    let Some(limit) = config.agents.get(&request.agent).map(|a| a.turn_timeout) else {
        return run(ctx, request, events, &Mutex::default()).await;
    };
    let agent = request.agent.clone();
    let trying = Mutex::new(String::new());
    if tokio::time::timeout(limit, run(ctx, request, events, &trying))
        .await
        .is_err()
    {
        let model = std::mem::take(&mut *trying.lock());
        let why = format!(
            "{model} did not answer within {} (agents.{agent}.turnTimeout)",
            pincer_config::duration::format_duration(limit)
        );
        tracing::warn!(agent = %agent, "{why}");
        let _ = events.send(TurnEvent::Failed(why)).await;
    }
}

async fn run(
    ctx: &TurnCtx,
    request: TurnRequest,
    events: &mpsc::Sender<TurnEvent>,
    trying: &Mutex<String>,
) {
    let config = ctx.config.current();
    let Some(agent) = config.agents.get(&request.agent) else {
        let why = format!("agent `{}` is not configured", request.agent);
        let _ = events.send(TurnEvent::Failed(why)).await;
        return;
    };
    let with_topic;
    let agent = match &request.topic {
        Some(topic) => {
            let mut a = agent.clone();
            if let Some(prompt) = &topic.system_prompt {
                a.system_prompt = Some(prompt.clone());
            }
            with_topic = a;
            &with_topic
        }
        None => agent,
    };
    let tools = crate::tool::set_of(
        agent,
        request.topic.as_ref().and_then(|t| t.skills.as_deref()),
    );
    let tool_ctx = crate::tool::Context {
        config: config.clone(),
        toolbox: ctx.toolbox.clone(),
        agent: request.agent.clone(),
        home: ctx.home.clone(),
        approver: crate::tool::Approver::nobody(),
    };
    let mut items: Vec<Item> = request.context.into_iter().map(Item::Message).collect();
    items.push(Item::Message(ChatMessage {
        role: Role::User,
        content: request.text,
    }));
    let mut turn = Reply::default();
    let mut last_error = String::from("no model is configured");
    for (n, (provider_name, model)) in models(agent).into_iter().enumerate() {
        *trying.lock() = format!("{provider_name}/{model}");
        if !provider::is_configured(&config, &provider_name) {
            last_error = format!(
                "provider `{provider_name}` of agent `{}` is not configured",
                request.agent
            );
            tracing::warn!(agent = %request.agent, "{last_error}");
            continue;
        }
        // The agent's own key is for its own model; fallbacks use their providers' keys.
        let own_key = match agent.model.as_ref().and_then(|m| m.api_key.as_ref()) {
            Some(value) if n == 0 => {
                let owner = pincer_secrets::refs::agent_owner(&request.agent);
                let handle = Handle::new(ctx.secrets.clone(), ctx.config.clone(), owner);
                match handle.get(value) {
                    Ok(key) => Some(ApiKey(key)),
                    Err(error) => {
                        last_error = format!("agent `{}`: {error}", request.agent);
                        tracing::warn!(agent = %request.agent, "{last_error}");
                        continue;
                    }
                }
            }
            _ => None,
        };
        let call = Call {
            providers: &ctx.providers,
            agent,
            tools: &tools,
            tool_ctx: &tool_ctx,
            provider: &provider_name,
            model: &model,
            own_key,
        };
        match call.run(items.clone(), &mut turn, events).await {
            Outcome::Answered => {
                let thinking = (!turn.thinking.is_empty()).then_some(turn.thinking);
                let _ = events
                    .send(TurnEvent::Done {
                        reply: turn.text,
                        thinking,
                    })
                    .await;
                return;
            }
            // The provider is restarting or the session went away: end without a final
            // event; the session tries again.
            Outcome::Lost => return,
            Outcome::Failed(error) if turn.sent || error.kind == ErrorKind::Broken => {
                let _ = events.send(TurnEvent::Failed(error.message)).await;
                return;
            }
            Outcome::Failed(error) => {
                tracing::warn!(agent = %request.agent, provider = %provider_name, model = %model, "model failed, trying the next in the chain: {error}");
                last_error = format!("{provider_name}/{model}: {error}");
            }
        }
    }
    let _ = events.send(TurnEvent::Failed(last_error)).await;
}

/// The agent's model, then its fallbacks, as `(provider, model)`.
pub fn models(agent: &AgentConfig) -> Vec<(String, String)> {
    let primary = agent.model.clone().unwrap_or_default();
    let fallbacks = primary.fallbacks.iter().map(|f| ModelConfig::from_text(f));
    std::iter::once(primary.clone())
        .chain(fallbacks)
        .map(|m| m.resolved())
        .collect()
}

/// What the turn has produced so far, across models and tool rounds.
#[derive(Debug, Default)]
struct Reply {
    text: String,
    thinking: String,
    /// Whether any text went to the session (then no other model may take over).
    sent: bool,
    /// Shown thinking was the last thing sent: the answer starts a new paragraph.
    quoting: bool,
}

/// Thinking text as a quote (`> ` at each line start) for agents with `showThinking`.
fn quote(text: &str, at_start: bool) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    if at_start {
        out.push_str("> ");
    }
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push_str("\n> ");
        }
        out.push_str(line);
    }
    out
}

/// How one model's attempt ended.
enum Outcome {
    Answered,
    Lost,
    Failed(ProviderError),
}

/// One model's attempt at the turn, with its tool rounds.
struct Call<'a> {
    providers: &'a Providers,
    agent: &'a AgentConfig,
    /// The tools it may call: the agent's set, narrowed by the topic's skills.
    tools: &'a BTreeSet<&'static str>,
    /// What its tool calls run with.
    tool_ctx: &'a crate::tool::Context,
    provider: &'a str,
    model: &'a str,
    own_key: Option<ApiKey>,
}

impl Call<'_> {
    async fn run(
        &self,
        mut items: Vec<Item>,
        turn: &mut Reply,
        events: &mpsc::Sender<TurnEvent>,
    ) -> Outcome {
        let thinking = self.thinking_mode();
        let tools = crate::tool::specs(self.tools);
        let max_rounds = self
            .agent
            .adaptive_thinking
            .map_or(DEFAULT_MAX_ROUNDS, |a| a.max_steps.max(1));
        // Each call and how often the model made it: the same call with the same arguments
        // LOOP_LIMIT times ends the turn rather than looping to the round cap.
        let mut made: HashMap<(String, String), u32> = HashMap::new();
        for round in 0..=max_rounds {
            let call = ProviderRequest {
                request_id: uuid::Uuid::new_v4().to_string(),
                model: self.model.to_string(),
                system_prompt: self.agent.system_prompt.clone(),
                items: items.clone(),
                // The last round has no tools: the model must answer in words.
                tools: if round < max_rounds {
                    tools.clone()
                } else {
                    Vec::new()
                },
                thinking,
                api_key: self.own_key.clone(),
            };
            let mut rx = match self.providers.dispatch(self.provider, call).await {
                Ok(rx) => rx,
                Err(DispatchError::Unavailable(_)) => return Outcome::Lost,
                Err(e @ DispatchError::Unknown(_)) => {
                    return Outcome::Failed(ProviderError::new(ErrorKind::Rejected, e.to_string()));
                }
            };
            let (mut calls, mut blocks, mut said) = (Vec::new(), Vec::new(), String::new());
            loop {
                match rx.recv().await {
                    Some(ProviderEvent::Delta(mut text)) => {
                        if std::mem::take(&mut turn.quoting) {
                            text.insert_str(0, "\n\n");
                        }
                        turn.text.push_str(&text);
                        said.push_str(&text);
                        turn.sent = true;
                        if events.send(TurnEvent::Delta(text)).await.is_err() {
                            return Outcome::Lost;
                        }
                    }
                    Some(ProviderEvent::Thinking(text)) => {
                        turn.thinking.push_str(&text);
                        if self.agent.show_thinking {
                            let shown = quote(&text, turn.text.is_empty());
                            turn.text.push_str(&shown);
                            turn.quoting = true;
                            turn.sent = true;
                            if events.send(TurnEvent::Delta(shown)).await.is_err() {
                                return Outcome::Lost;
                            }
                        }
                    }
                    Some(ProviderEvent::ToolCall(call)) => calls.push(call),
                    Some(ProviderEvent::Reasoning(block)) => blocks.push(block),
                    Some(ProviderEvent::Done) => break,
                    Some(ProviderEvent::Error(error)) => return Outcome::Failed(error),
                    None => return Outcome::Lost,
                }
            }
            if calls.is_empty() {
                return Outcome::Answered;
            }
            for call in &calls {
                let times = made.entry(crate::tool::fingerprint(call)).or_default();
                *times += 1;
                if *times >= LOOP_LIMIT {
                    let note = format!(
                        "{}(Stopped: the same `{}` call came {LOOP_LIMIT} times with the same arguments, so it was not run again. Ask differently, or give me more to go on.)",
                        if turn.text.is_empty() { "" } else { "\n\n" },
                        call.name
                    );
                    turn.text.push_str(&note);
                    turn.sent = true;
                    if events.send(TurnEvent::Delta(note)).await.is_err() {
                        return Outcome::Lost;
                    }
                    return Outcome::Answered;
                }
            }
            // The assistant's turn as the provider gave it (thinking, text, calls), then
            // every result: parallel calls answer together.
            items.extend(blocks.into_iter().map(Item::Reasoning));
            if !said.is_empty() {
                items.push(Item::Message(ChatMessage {
                    role: Role::Assistant,
                    content: said,
                }));
            }
            let mut outputs = Vec::with_capacity(calls.len());
            for call in &calls {
                let output = crate::tool::run(call, self.tools, self.tool_ctx).await;
                outputs.push(Item::ToolOutput {
                    call_id: call.call_id.clone(),
                    output,
                });
            }
            items.extend(calls.into_iter().map(Item::ToolCall));
            items.extend(outputs);
        }
        Outcome::Answered
    }

    /// The agent's thinking mode: `model.thinking.mode`, or adaptive when the seed's
    /// `adaptiveThinking.enabled` is set; `None` lets the model family decide.
    fn thinking_mode(&self) -> Option<ThinkingMode> {
        let configured = self
            .agent
            .model
            .as_ref()
            .and_then(|m| m.thinking)
            .map(|t| t.mode);
        configured.or_else(|| {
            self.agent
                .adaptive_thinking
                .filter(|a| a.enabled)
                .map(|_| ThinkingMode::Adaptive)
        })
    }
}
