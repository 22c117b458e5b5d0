//! `turn:<uuid>`: one turn of an agent, a temporary child of `agent:<id>`.
//!
//! It reads the agent's settings, calls the provider, runs the model's tool calls, and
//! streams [`TurnEvent`]s to the session that asked for it. Its events channel is its only
//! link to the session: when a turn dies (killed, or with its agent or provider), the
//! channel closes without a final event, and the session starts the turn again.
//!
//! A turn is a dynamic supervisor whose work is a task in its scope
//! ([`ChildSpec::with_task`]): each tool call runs as its temporary child
//! `tool:<name>:<n>` ([`crate::tool::call`]), so a call can be seen, killed and timed out
//! on its own, and whatever ends the turn ends its calls.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use parking_lot::Mutex;
use pincer_actors::{ChildSpec, Restart, SupervisorHandle, SupervisorSpec};
use tokio::sync::mpsc;

use crate::provider::{self, DispatchError, Providers};
use pincer_config::TopicConfig;
use pincer_config::live::View;
use pincer_config::{AgentConfig, ThinkingMode};
use pincer_core::Role;
use pincer_providers::{
    ApiKey, Caller, ChatMessage, ErrorKind, Item, ProviderError, ProviderEvent, ProviderRequest,
    ToolCall, Usage,
};
use pincer_secrets::{Handle, Secrets};

use crate::tool::approval::{Answer, Approver, Ask, Decision};

/// What a session asks of a turn.
#[derive(Debug, Clone)]
pub struct TurnRequest {
    /// The agent.
    pub agent: String,
    /// The session asking (for logs).
    pub session_key: String,
    /// The inbox entry answered.
    pub inbox_id: i64,
    /// The conversation so far, oldest first: the turn keeps as many of the newest as fit
    /// in the agent's budget (`agents.<id>.context`).
    pub context: Vec<ChatMessage>,
    /// The summary of what came before `context`, added to the system prompt.
    pub summary: Option<String>,
    /// Bytes per token of this session, for fitting `context` into the budget.
    pub bytes_per_token: f64,
    /// The new user message.
    pub text: String,
    /// The Telegram topic it came from: its prompt over the agent's, its skills narrowing
    /// the agent's tools.
    pub topic: Option<TopicConfig>,
    /// What a caller of the OpenAI-compatible API brings: its history (which replaces
    /// `context` when it is stateless), system messages, options and tools.
    pub caller: Option<Caller>,
}

/// What a turn sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// Reply text, streamed.
    Delta(String),
    /// A tool call started, or ended.
    Step(Step),
    /// A tool call asks the person in the chat before it acts; the session sends the
    /// answer.
    Approval(Approval),
    /// The reply is complete.
    Done {
        /// The whole reply.
        reply: String,
        /// The model's thinking, if any.
        thinking: Option<String>,
        /// The size of the turn's first model request, and the provider's count of it.
        measured: Option<Measured>,
        /// The tokens of all the turn's model calls, as the providers counted them.
        usage: Option<Usage>,
        /// Calls of the caller's own tools: the turn ended for the caller to run them.
        caller_calls: Vec<ToolCall>,
        /// The answer stopped at the model's output cap (`max_tokens`).
        cut: bool,
    },
    /// No reply can be had; the text says why (the session answers with it).
    Failed(String),
    /// The model refused the request as larger than its context window: the session
    /// compacts and tries the turn once more.
    TooLong(String),
}

/// One tool call of a turn: sent when it starts (`end` is `None`) and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its number in the turn, from 1 (its actor is `tool:<name>:<n>`).
    pub n: u32,
    /// The tool.
    pub tool: String,
    /// The model's id for the call.
    pub call_id: String,
    /// Its arguments, as the model gave them.
    pub arguments: String,
    /// What a chat shows while it runs ("Searching the web…").
    pub status: &'static str,
    /// A short detail for a person ("example.org").
    pub summary: String,
    /// How it ended, once it has.
    pub end: Option<StepEnd>,
}

/// A model request's size in bytes (system prompt, messages, tool definitions) and the
/// input tokens the provider counted for it: the session learns its bytes per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Bytes of the request's text.
    pub bytes: usize,
    /// Input tokens the provider reported.
    pub input_tokens: u64,
}

/// The summary's place in the system prompt.
const SUMMARY_HEADER: &str = "Summary of the earlier conversation (older messages were condensed into it; the messages after it are verbatim):";

/// A question for the person in the chat, and where its answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The question.
    pub ask: Ask,
    /// Where the answer goes.
    pub answer: Answer,
}

/// How a tool call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEnd {
    /// What the model got (capped at `tools.maxResultChars`).
    pub output: String,
    /// Whether the tool succeeded.
    pub ok: bool,
    /// How long it ran, in ms.
    pub ms: u64,
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

/// The child spec of one turn: a dynamic supervisor of its tool calls, running the turn
/// as its task and stopping when the turn is done. The request and the events sender move
/// into the task when it starts: nothing keeps the sender alive once the turn is gone.
pub fn spec(ctx: &TurnCtx, request: TurnRequest, events: mpsc::Sender<TurnEvent>) -> ChildSpec {
    let request_id = uuid::Uuid::new_v4();
    let id = format!("turn:{request_id}");
    // Every line the turn logs carries its id, agent and session (JSON logs: `spans`).
    let span = tracing::info_span!(
        "turn",
        request_id = %request_id,
        agent = %request.agent,
        session = %request.session_key
    );
    let (spec, calls) = SupervisorSpec::dynamic(MAX_CALLS_PER_ROUND).into_child_spec(id);
    let parts = Arc::new(Mutex::new(Some((ctx.clone(), request, events))));
    spec.restart(Restart::Temporary)
        .with_task(move |_start, started| {
            let (parts, calls, me) = (parts.lock().take(), calls.clone(), started.cell().clone());
            let span = span.clone();
            let request_id = request_id.to_string();
            async move {
                if let Some((ctx, request, events)) = parts {
                    tracing::debug!("Turn started.");
                    run_within_deadline(&ctx, &calls, request, &request_id, &events).await;
                    tracing::debug!("Turn ended.");
                }
                me.stop(None);
            }
            .instrument(span)
        })
}

/// Tool calls one model reply may make; more are answered with an error, unrun (a reply
/// of a thousand calls would otherwise run a thousand).
pub const MAX_CALLS_PER_ROUND: usize = 16;

/// Tool rounds per turn when the agent sets no `adaptiveThinking.maxSteps`.
const DEFAULT_MAX_ROUNDS: u32 = 8;

/// The same call with the same arguments this many times in a turn ends it: the model is
/// looping, and more rounds would only cost.
const LOOP_LIMIT: u32 = 3;

/// Runs the turn within its agent's `turnTimeout`: past it, the user gets an error reply
/// naming the model being tried and the timeout, and the session moves on.
async fn run_within_deadline(
    ctx: &TurnCtx,
    calls: &SupervisorHandle,
    request: TurnRequest,
    request_id: &str,
    events: &mpsc::Sender<TurnEvent>,
) {
    let config = ctx.config.current();
    let approver = approver(events);
    let Some(limit) = config.agents.get(&request.agent).map(|a| a.turn_timeout) else {
        return run(
            ctx,
            calls,
            &approver,
            request,
            request_id,
            events,
            &Mutex::default(),
        )
        .await;
    };
    let agent = request.agent.clone();
    let trying = Mutex::new(String::new());
    // Time waiting for a person's approval does not count against the turn.
    let work = run(ctx, calls, &approver, request, request_id, events, &trying);
    if approver.within(limit, work).await.is_none() {
        let model = std::mem::take(&mut *trying.lock());
        let why = format!(
            "{model} did not answer within {} (agents.{agent}.turnTimeout)",
            pincer_config::duration::format_duration(limit)
        );
        tracing::warn!(agent = %agent, "{why}");
        let _ = events.send(TurnEvent::Failed(why)).await;
    }
}

/// The approver of a turn's tool calls: each question goes to the session as
/// [`TurnEvent::Approval`], which asks the person and times the question out
/// (`tools.exec.approvalTimeout`); the wait here is only a backstop.
fn approver(events: &mpsc::Sender<TurnEvent>) -> Approver {
    /// Past the session's own timeout: only a session that never answers meets it.
    const BACKSTOP: Duration = Duration::from_secs(24 * 3600);
    let events = events.clone();
    Approver::new(move |ask| {
        let events = events.clone();
        Box::pin(async move {
            let (answer, rx) = Answer::channel();
            if events
                .send(TurnEvent::Approval(Approval { ask, answer }))
                .await
                .is_err()
            {
                return Decision::Unavailable;
            }
            match tokio::time::timeout(BACKSTOP, rx).await {
                Ok(Ok(decision)) => decision,
                Ok(Err(_)) => Decision::Unavailable,
                Err(_) => Decision::TimedOut,
            }
        })
    })
}

async fn run(
    ctx: &TurnCtx,
    calls: &SupervisorHandle,
    approver: &Approver,
    request: TurnRequest,
    request_id: &str,
    events: &mpsc::Sender<TurnEvent>,
    trying: &Mutex<String>,
) {
    let config = ctx.config.current();
    let Some(agent) = config.agents.get(&request.agent) else {
        let why = format!("agent `{}` is not configured", request.agent);
        let _ = events.send(TurnEvent::Failed(why)).await;
        return;
    };
    // The topic's prompt over the agent's, and the session's summary under it.
    let mut agent = agent.clone();
    if let Some(prompt) = request.topic.as_ref().and_then(|t| t.system_prompt.clone()) {
        agent.system_prompt = Some(prompt);
    }
    let caller = request.caller.unwrap_or_default();
    // A stateless request's context is its own: the session's summary is not part of it.
    if let Some(summary) = request.summary.as_ref().filter(|_| !caller.stateless) {
        let prompt = agent.system_prompt.take().unwrap_or_default();
        let sep = if prompt.is_empty() { "" } else { "\n\n" };
        agent.system_prompt = Some(format!("{prompt}{sep}{SUMMARY_HEADER}\n{summary}"));
    }
    // A caller's system messages come after the agent's prompt: the agent's stays first.
    if let Some(system) = &caller.system {
        let prompt = agent.system_prompt.take().unwrap_or_default();
        let sep = if prompt.is_empty() { "" } else { "\n\n" };
        agent.system_prompt = Some(format!("{prompt}{sep}{system}"));
    }
    let agent = &agent;
    let tools = crate::tool::set_of(
        agent,
        request.topic.as_ref().and_then(|t| t.skills.as_deref()),
    );
    let tool_ctx = crate::tool::Context {
        config: config.clone(),
        toolbox: ctx.toolbox.clone(),
        agent: request.agent.clone(),
        home: ctx.home.clone(),
        approver: approver.clone(),
    };
    let fixed = agent.system_prompt.as_ref().map_or(0, String::len)
        + pincer_providers::tool_bytes(&crate::tool::specs(&tools))
        + request.text.len();
    let limits = agent.context();
    let room = (f64::from(limits.budget) * request.bytes_per_token) as usize;
    let mut items: Vec<Item> = if caller.stateless || request.context.is_empty() {
        // A stateless request's history is its whole context (the caller keeps it); a
        // session without history may be seeded with the request's.
        caller.history.into_iter().map(Item::from).collect()
    } else {
        fit(request.context, room.saturating_sub(fixed))
            .into_iter()
            .map(Item::Message)
            .collect()
    };
    items.push(Item::Message(ChatMessage {
        role: Role::User,
        content: request.text.into(),
    }));
    items.extend(caller.after.into_iter().map(Item::from));
    if let Some(name) = caller
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .find(|name| tools.contains(name))
    {
        let why = format!(
            "the caller's tool `{name}` has the name of one of agent `{}`'s own tools; rename it",
            request.agent
        );
        let _ = events.send(TurnEvent::Failed(why)).await;
        return;
    }
    let mut turn = Reply::default();
    let mut last_error = String::from("no model is configured");
    let chain = models(agent);
    let last = chain.len().saturating_sub(1);
    for (n, (provider_name, model)) in chain.into_iter().enumerate() {
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
            calls,
            agent,
            tools: &tools,
            tool_ctx: &tool_ctx,
            caller_tools: &caller.tools,
            options: &caller.options,
            provider: &provider_name,
            model: &model,
            own_key,
            request_id,
        };
        // The last model of the chain takes the items; the others work on copies.
        let items = if n == last {
            std::mem::take(&mut items)
        } else {
            items.clone()
        };
        match call.run(items, &mut turn, events).await {
            Outcome::Answered => {
                let thinking = (!turn.thinking.is_empty()).then_some(turn.thinking);
                let _ = events
                    .send(TurnEvent::Done {
                        reply: turn.text,
                        thinking,
                        measured: turn.measured,
                        usage: turn.usage,
                        caller_calls: turn.caller_calls,
                        cut: turn.cut,
                    })
                    .await;
                return;
            }
            // The provider is restarting or the session went away: end without a final
            // event; the session tries again.
            Outcome::Lost => return,
            Outcome::Failed(error) if error.kind == ErrorKind::ContextLength && !turn.sent => {
                let _ = events.send(TurnEvent::TooLong(error.message)).await;
                return;
            }
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

/// The newest of `context` (oldest first) whose text fits in `room` bytes, whole turns
/// only: a reply is never sent without the message it answers.
fn fit(mut context: Vec<ChatMessage>, room: usize) -> Vec<ChatMessage> {
    let mut used = 0;
    let mut keep_from = context.len();
    for (i, message) in context.iter().enumerate().rev() {
        used += message.content.len();
        if used > room {
            break;
        }
        if message.role == Role::User {
            keep_from = i;
        }
    }
    context.drain(..keep_from);
    context
}

/// The agent's model, then its fallbacks, as `(provider, model)`.
pub fn models(agent: &AgentConfig) -> Vec<(String, String)> {
    agent.model_chain()
}

/// What the turn has produced so far, across models and tool rounds.
#[derive(Debug, Default)]
struct Reply {
    text: String,
    thinking: String,
    /// Tool calls so far (they are numbered across rounds and models).
    calls: u32,
    /// The first model request's size and count.
    measured: Option<Measured>,
    /// The tokens of the turn's model calls so far, when the providers counted them.
    usage: Option<Usage>,
    /// Calls of the caller's tools that ended the turn.
    caller_calls: Vec<ToolCall>,
    /// The answer stopped at the model's output cap.
    cut: bool,
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
    /// The turn's supervisor, whose children the tool calls are.
    calls: &'a SupervisorHandle,
    agent: &'a AgentConfig,
    /// The tools it may call: the agent's set, narrowed by the topic's skills.
    tools: &'a BTreeSet<&'static str>,
    /// What its tool calls run with.
    tool_ctx: &'a crate::tool::Context,
    /// The caller's own tools, offered next to the agent's.
    caller_tools: &'a [pincer_providers::ToolSpec],
    /// What the caller asked of each model call.
    options: &'a pincer_providers::Options,
    provider: &'a str,
    model: &'a str,
    own_key: Option<ApiKey>,
    /// The turn's id: every model call of the turn logs it (`request_id`).
    request_id: &'a str,
}

impl Call<'_> {
    async fn run(
        &self,
        mut items: Vec<Item>,
        turn: &mut Reply,
        events: &mpsc::Sender<TurnEvent>,
    ) -> Outcome {
        let thinking = self.thinking_mode();
        let mut tools = crate::tool::specs(self.tools);
        tools.extend(self.caller_tools.iter().cloned());
        let max_rounds = self
            .agent
            .adaptive_thinking
            .map_or(DEFAULT_MAX_ROUNDS, |a| a.max_steps.max(1));
        // Each call and how often the model made it: the same call with the same arguments
        // LOOP_LIMIT times ends the turn rather than looping to the round cap.
        let mut made: HashMap<(String, String), u32> = HashMap::new();
        for round in 0..=max_rounds {
            let call = ProviderRequest {
                request_id: self.request_id.to_string(),
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
                options: self.options.clone(),
            };
            // The turn's first request, measured against the provider's count of it.
            let bytes = (turn.measured.is_none() && round == 0)
                .then(|| pincer_providers::text_bytes(&call));
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
                    // Token counts: the session's context accounting will read them.
                    Some(ProviderEvent::Usage(usage)) => {
                        let total = turn.usage.get_or_insert_default();
                        total.input_tokens += usage.input_tokens;
                        total.output_tokens += usage.output_tokens;
                        if let Some(bytes) = bytes {
                            turn.measured = Some(Measured {
                                bytes,
                                input_tokens: usage.input_tokens,
                            });
                        }
                    }
                    Some(ProviderEvent::Cut) => turn.cut = true,
                    Some(ProviderEvent::Done) => break,
                    Some(ProviderEvent::Error(error)) => return Outcome::Failed(error),
                    None => return Outcome::Lost,
                }
            }
            if calls.is_empty() {
                return Outcome::Answered;
            }
            // A call of the caller's tool ends the turn: the caller runs it and continues
            // with its result. The agent's own calls of that reply are not run.
            let theirs: Vec<ToolCall> = calls
                .iter()
                .filter(|c| self.caller_tools.iter().any(|t| t.name == c.name))
                .cloned()
                .collect();
            if !theirs.is_empty() {
                turn.caller_calls = theirs;
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
                    content: said.into(),
                }));
            }
            let mut outputs = Vec::with_capacity(calls.len());
            for (i, call) in calls.iter().enumerate() {
                turn.calls += 1;
                let Some(output) = self.run_tool(turn.calls, call, i, events).await else {
                    return Outcome::Lost;
                };
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

    /// Runs the `i`th call of a model reply as the turn's `n`th, telling the session as it
    /// starts and ends; `None` when the session is gone.
    async fn run_tool(
        &self,
        n: u32,
        call: &pincer_providers::ToolCall,
        i: usize,
        events: &mpsc::Sender<TurnEvent>,
    ) -> Option<String> {
        let (status, summary) = crate::tool::describe(call);
        let mut step = Step {
            n,
            tool: call.name.clone(),
            call_id: call.call_id.clone(),
            arguments: call.arguments.clone(),
            status,
            summary,
            end: None,
        };
        events.send(TurnEvent::Step(step.clone())).await.ok()?;
        let ran = if i < MAX_CALLS_PER_ROUND {
            crate::tool::call::run(self.calls, n, call, self.tools, self.tool_ctx).await
        } else {
            crate::tool::call::Ran {
                output: format!(
                    "error: not run: a reply may make at most {MAX_CALLS_PER_ROUND} tool calls"
                ),
                ok: false,
                elapsed: Duration::ZERO,
            }
        };
        step.end = Some(StepEnd {
            output: ran.output.clone(),
            ok: ran.ok,
            ms: u64::try_from(ran.elapsed.as_millis()).unwrap_or(u64::MAX),
        });
        events.send(TurnEvent::Step(step)).await.ok()?;
        Some(ran.output)
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
