//! `session:<key>`: one conversation, a transient child of its account's `sessions`.
//!
//! The session takes its inbox entries one at a time: it answers `/session ...` commands
//! itself ([`commands`]) and asks its agent for a turn otherwise. The user's message, the
//! reply and the inbox entry's "answered" mark are committed in one transaction, so a
//! message is answered once even if the session, its turn, the agent or the provider dies
//! on the way: a dead turn is started again, and a dead session's entries come back
//! through the router's sweep.
//!
//! Two deadlines end the conversation's context: idle (reset by every message) and max age
//! (from the context's start; 0 = off). The session then stops; its row and transcript stay
//! in the store, and the next message starts a fresh context.
//!
//! A session quiet for `sessions.hibernateAfter` with nothing in hand (no turn, no queued
//! message, no question waiting for `/approve`, no compaction) hibernates: its row is
//! saved as hibernated and the actor stops; its next message starts it again from the
//! row (context, turns, timers). Its deadlines are kept by its account's [`keeper`], not
//! by a timer of its own; the [`gate`] makes the stop safe against a racing message.

pub mod commands;
mod compact;
pub mod context;
pub mod gate;
pub mod keeper;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_actors::{ChildSpec, Restart, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::mpsc;

use pincer_config::live::View;
use pincer_core::metrics::Counter;
use pincer_core::metrics::catalog::Catalog;
use pincer_core::{Outcome, Role, ToolRecord, TranscriptEntry, now_ms};
use pincer_store::{CommitTurn, InboxEntry, InboxState, Rest, SessionRow, Store};

use context::{Context, Summary};
use keeper::Keeper;

use crate::agent::turn::{Approval, Step, TurnCtx};
use crate::agent::{self, Agents, TurnEvent, TurnRequest};
use crate::channel::{Delivery, HandedTo, Outbox};
use crate::tool::Decision;
use pincer_channels::{CallerCall, ReplyExtra};
use pincer_providers::{Caller, CallerItem, ToolCall};

/// New messages a session holds behind the one it answers; more are refused ("busy, try
/// again"): a session answers one message at a time, so a deeper queue only means longer
/// waits for everyone behind.
pub const MAX_QUEUE: usize = 64;

/// Questions of tools open at once; more are denied unasked (a turn runs its calls one at
/// a time, so more than one open question means something is wrong).
const MAX_OPEN_QUESTIONS: usize = 4;

/// Tries of one turn before the session answers with an error.
const MAX_ATTEMPTS: u32 = 6;

/// First pause before a turn is tried again; doubled each time.
const RETRY_DELAY: Duration = Duration::from_millis(25);

/// A busy session whose deadline came looks again this much later (its work ends first).
const BUSY_RECHECK: Duration = Duration::from_secs(1);

/// Messages of a session.
#[derive(Debug)]
pub enum SessionMsg {
    /// An inbox entry for this session.
    Deliver(Box<InboxEntry>),
    /// An event of the turn started as `attempt`.
    Turn {
        /// Which turn it belongs to: the session numbers the turns it starts, so the
        /// leftovers of a stopped turn never reach the next message's.
        turn: u64,
        /// Which attempt it belongs to (stale attempts are ignored).
        attempt: u32,
        /// The event; `None` when the turn's channel closed.
        event: Option<TurnEvent>,
    },
    /// Try the current turn again.
    Retry {
        /// The turn that was lost (a stopped turn is not tried again).
        turn: u64,
        /// The attempt to start.
        attempt: u32,
    },
    /// Its next deadline came (idle, max age or hibernation): the keeper says so.
    Due,
    /// The last step of hibernating or expiring, sent to itself behind every message that
    /// was in its mailbox when its gate closed.
    Close,
    /// A compaction ended: the summary of the context up to `through`, or why not.
    Compacted {
        /// The last sequence number summarized.
        through: i64,
        /// The summary, or why there is none.
        summary: Result<String, String>,
    },
    /// The person stopped the reply to the message with this upstream id: the turn in
    /// flight is stopped (its provider stream dropped), what it streamed is kept as the
    /// reply, marked stopped, and the next message is taken at once.
    Stop {
        /// The message whose reply to stop (a later one is not stopped by mistake).
        upstream_id: String,
    },
    /// A tool's question had no answer in time.
    ApprovalDue {
        /// The question's id.
        id: String,
    },
}

/// Why a session is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Quiet for `sessions.hibernateAfter`: it rests in the store.
    Hibernate,
    /// Its context ended (idle or max age).
    Expired,
}

impl std::fmt::Display for Closing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Closing::Hibernate => "hibernating",
            Closing::Expired => "context ended",
        })
    }
}

/// What a session works with: the store, the config in force, the agents it asks for
/// turns, its account's outbox, and the metrics of replies and turns.
#[derive(Debug, Clone)]
pub struct SessionCtx {
    /// Where its transcript and inbox entries are.
    pub store: Store,
    /// The config in force (timers, topics).
    pub config: View,
    /// The agents' turn supervisors.
    pub agents: Agents,
    /// What its turns work with.
    pub turns: TurnCtx,
    /// Where its replies go: its account's outbox.
    pub outbox: Outbox,
    /// Metrics.
    pub catalog: Catalog,
    /// Its account's deadlines, gate and count of hibernated sessions.
    pub keeper: Arc<Keeper>,
}

/// The session actor.
#[derive(Debug)]
pub struct Session;

/// What a session starts from.
#[derive(Debug)]
pub struct SessionArgs {
    ctx: Arc<SessionCtx>,
    who: Arc<Who>,
    scope: Scope,
}

/// Whose session it is: kept once, shared by its child spec and each start.
#[derive(Debug)]
struct Who {
    key: String,
    agent: String,
    channel: String,
    account: String,
}

/// A session's state.
#[derive(Debug)]
pub struct SessionState {
    /// Shared by all of its account's sessions (one allocation, not one per session).
    ctx: Arc<SessionCtx>,
    scope: Scope,
    /// `pincer_turns_total` of its agent.
    turns_total: Counter,
    row: SessionRow,
    /// The current context, for the model: the summary and what follows it.
    context: Context,
    /// A compaction is running (at most one at a time).
    compacting: bool,
    /// When the last compaction failed: the next waits a while.
    compact_failed: Option<Instant>,
    /// A note for the web chat that the context was summarized, said with the next reply.
    summary_notice: Option<String>,
    queue: VecDeque<InboxEntry>,
    /// Inbox ids queued or in progress: a swept duplicate is ignored.
    known: HashSet<i64>,
    /// Boxed: an entry is a few hundred bytes that an idle session would carry for nothing.
    current: Option<Box<Current>>,
    /// Sequence number the next transcript entry gets.
    next_seq: i64,
    /// Tools' questions waiting for `/approve`, by id.
    questions: HashMap<String, Question>,
    /// Itself, for the keeper to tell when its deadline comes.
    me: ActorRef<SessionMsg>,
    /// Its key, as the keeper's queue and the gate hold it.
    key: Arc<str>,
    /// On its way out: every message now waits in the gate for the next instance.
    closing: Option<Closing>,
    /// Inbox ids of queued messages whose sender stopped them before they ran (at most
    /// the queue's length): each is answered as stopped, empty, when its turn comes, and
    /// never reaches a model. Answering it then keeps the transcript in message order.
    stops_asked: Vec<i64>,
    /// Turns started so far: the number of the next one.
    turns_started: u64,
}

/// The entry being answered.
#[derive(Debug)]
struct Current {
    entry: InboxEntry,
    attempt: u32,
    started: Instant,
    /// The tool calls of the current attempt that have ended, for the transcript.
    steps: Vec<Step>,
    /// The model refused the turn as too long: a compaction runs, then the turn is tried
    /// once more (`Some(false)`: waiting; `Some(true)`: retried).
    too_long: Option<bool>,
    /// What the reply carries for an API caller besides its text.
    extra: Option<Box<ReplyExtra>>,
    /// The number of the turn running for it (0: none yet).
    turn: u64,
    /// The turn's actor, once started (stopped by [`SessionMsg::Stop`]).
    turn_actor: Option<ractor::ActorCell>,
    /// The text the current attempt has streamed: the reply kept if the person stops it.
    partial: String,
    /// The person stopped the reply.
    stopped: bool,
}

/// The child spec of a session; `ctx` is its account's.
pub fn spec(
    ctx: &Arc<SessionCtx>,
    key: &str,
    agent: &str,
    channel: &str,
    account: &str,
) -> ChildSpec {
    let session = ctx.clone();
    let who = Arc::new(Who {
        key: key.to_string(),
        agent: agent.to_string(),
        channel: channel.to_string(),
        account: account.to_string(),
    });
    ChildSpec::new(pincer_core::session_key::child_id(key), move |start| {
        let args = SessionArgs {
            ctx: session.clone(),
            who: who.clone(),
            scope: start.scope().clone(),
        };
        (Session, args)
    })
    .restart(Restart::Transient)
}

impl Actor for Session {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let store = &args.ctx.store;
        let who = &args.who;
        let limits = args.ctx.config.current().session_limits(
            &who.channel,
            &who.account,
            who.key.contains(":thread:"),
        );
        let now = now_ms();
        let last_seq = store.last_seq(&who.key).await?;
        let found = store.session_at_rest(&who.key).await?;
        if let Some((_, Rest::Hibernated)) = &found {
            // Woken: its row is live again, and the count follows what the store did (an
            // expiry pass may have ended it first).
            let (store, key, keeper) = (store.clone(), who.key.clone(), args.ctx.keeper.clone());
            tokio::spawn(async move {
                if let Ok(true) = store.set_rest(&key, Rest::Hibernated, Rest::Live).await {
                    keeper.woke();
                }
            });
        }
        let row = match found.map(|(row, _)| row) {
            Some(row) if !expired(&row, now) => row,
            // A new session, or one whose context ended while it was stopped.
            found => SessionRow {
                key: who.key.clone(),
                agent: who.agent.clone(),
                channel: who.channel.clone(),
                account: who.account.clone(),
                created_at_ms: now,
                last_active_ms: now,
                idle_ms: millis(limits.idle_hours),
                max_age_ms: millis(limits.max_age_hours),
                context_from: match found {
                    Some(_) => last_seq + 1,
                    None => 1,
                },
                turns: 0,
                summary_seq: 0,
                bytes_per_1k_tokens: 0,
            },
        };
        let mut context = load_context(store, &row).await?;
        context.resume_ratio(row.bytes_per_1k_tokens);
        // A summary committed after the last reply has not been announced yet (the
        // session hibernated or restarted before its next reply): it is, with that reply.
        let summary_notice = context
            .summary()
            .filter(|s| s.seq == last_seq)
            .and_then(|s| compact::summary_notice(&row.channel, s.through));
        let key: Arc<str> = Arc::from(who.key.as_str());
        // Messages that came while its previous instance was leaving.
        let held = args.ctx.keeper.gate.reopen(&key);
        let mut state = SessionState {
            turns_total: args.ctx.catalog.turns_of(&row.agent),
            ctx: args.ctx,
            scope: args.scope,
            row,
            context,
            compacting: false,
            compact_failed: None,
            summary_notice,
            queue: VecDeque::new(),
            known: HashSet::new(),
            current: None,
            next_seq: last_seq + 1,
            questions: HashMap::new(),
            me: myself,
            key,
            closing: None,
            stops_asked: Vec::new(),
            turns_started: 0,
        };
        for entry in held {
            if state.known.insert(entry.id) {
                state.queue.push_back(entry);
            }
        }
        state.arm_timers();
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        if !state.queue.is_empty() {
            state.row.last_active_ms = now_ms();
            state.arm_timers();
            // Boxed for the reason `handle` is.
            Box::pin(state.next(&myself)).await;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SessionMsg>,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        // A turn is its agent's child, not the session's: one still running when its
        // session stops (the chat deleted) would answer no one, so it stops too.
        if let Some(actor) = state.current.as_mut().and_then(|c| c.turn_actor.take()) {
            actor.stop(Some("its session stopped".into()));
        }
        let keeper = &state.ctx.keeper;
        // Its deadline, unless a newer instance set one already.
        if keeper
            .deadlines
            .get(&state.key)
            .is_some_and(|(_, at)| at.get_id() == state.me.get_id())
        {
            keeper.deadlines.remove(&state.key);
        }
        if state.closing.is_some() && keeper.gate.claim_wake(&state.key) {
            let spec = state.respawn();
            keeper.wake(state.key.clone(), spec);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed: ractor keeps the future of a call in the actor's own future for the
        // actor's whole life, and this one is kilobytes (every await of every message
        // kind); boxed, it is allocated only while a message is handled.
        Box::pin(handle(myself, msg, state)).await
    }
}

/// A tool's question waiting for `/approve`, and the sender of the message its turn
/// answers (`None` where a conversation is one person's): only they may answer it.
#[derive(Debug)]
struct Question {
    approval: Approval,
    of: Option<String>,
}

/// One message of a session (see [`Session`]'s `handle`).
async fn handle(
    myself: ActorRef<SessionMsg>,
    msg: SessionMsg,
    state: &mut SessionState,
) -> Result<(), ActorProcessingErr> {
    match msg {
        SessionMsg::Deliver(entry) if state.closing.is_some() => {
            // Cast before the gate closed: it waits for the next instance.
            tracing::debug!(session = %state.row.key, closing = %state.closing.map(|c| c.to_string()).unwrap_or_default(), inbox = entry.id, "A message came as the session closed; it waits for the next instance.");
            state.ctx.keeper.gate.hold(&state.key, *entry);
        }
        SessionMsg::Deliver(entry) => {
            // A new message beyond the queue's bound is refused: its sender hears
            // "busy" and may try again. Messages resumed from the inbox (routed
            // before) always queue: they were taken in long ago.
            if is_fresh(&entry)
                && state.queue.len() >= MAX_QUEUE
                && !state.known.contains(&entry.id)
            {
                state.refuse(*entry).await;
                return Ok(());
            }
            // A command that cannot wait for the turn (the turn may be waiting for it).
            let command = commands::parse(&entry.inbound.text).filter(|c| c.mid_turn());
            if let Some(command) = command
                && state.current.is_some()
                && entry.state == InboxState::Pending
                && !state.known.contains(&entry.id)
            {
                state.aside(&myself, *entry, command).await;
                return Ok(());
            }
            if state.known.insert(entry.id) {
                state.queue.push_back(*entry);
                state.row.last_active_ms = now_ms();
                state.arm_timers();
                if state.current.is_none() {
                    state.next(&myself).await;
                }
            }
        }
        SessionMsg::Turn {
            turn,
            attempt,
            event,
        } => {
            let current = state.current.as_ref().map(|c| (c.attempt, c.turn));
            if current != Some((attempt, turn)) {
                return Ok(()); // an earlier attempt's or a stopped turn's leftovers
            }
            match event {
                Some(TurnEvent::Delta(text)) => {
                    if let Some(current) = state.current.as_mut() {
                        current.partial.push_str(&text);
                    }
                    state.deliver(Delivery::Delta { attempt, text })
                }
                Some(TurnEvent::Step(step)) => state.step(attempt, step),
                Some(TurnEvent::Approval(approval)) => state.ask(&myself, attempt, approval).await,
                Some(TurnEvent::Done {
                    reply,
                    thinking,
                    measured,
                    usage,
                    caller_calls,
                    cut,
                }) => {
                    if let Some(m) = measured {
                        state.context.calibrate(m.bytes, m.input_tokens);
                        state.row.bytes_per_1k_tokens = state.context.per_1k_tokens();
                    }
                    if let Some(current) = state.current.as_mut() {
                        current.extra = Some(Box::new(reply_extra(usage, caller_calls, cut)));
                    }
                    state.finish_turn(reply, thinking, false).await;
                    state.maybe_compact(&myself, compact::Why::Grown);
                    state.next(&myself).await;
                    state.stop_if_one_off(&myself);
                }
                Some(TurnEvent::TooLong(why)) => state.too_long(&myself, why).await,
                Some(TurnEvent::Failed(why)) => {
                    state.finish_turn(failure_text(&why), None, true).await;
                    state.next(&myself).await;
                    state.stop_if_one_off(&myself);
                }
                // After a refusal as too long the turn has ended on purpose: the
                // compaction it waits for tries it again.
                None if state
                    .current
                    .as_ref()
                    .is_some_and(|c| c.too_long == Some(false)) => {}
                None => state.turn_lost(&myself, turn, attempt),
            }
        }
        SessionMsg::Retry { turn, attempt } => {
            if state
                .current
                .as_ref()
                .is_some_and(|c| c.attempt + 1 == attempt && c.turn == turn)
            {
                state.start_turn(&myself, attempt).await;
            }
        }
        SessionMsg::Compacted { through, summary } => {
            state.compacted(&myself, through, summary).await
        }
        SessionMsg::Stop { upstream_id } => state.stop_turn(&myself, &upstream_id).await,
        SessionMsg::ApprovalDue { id } => {
            if let Some(Question { approval, .. }) = state.questions.remove(&id) {
                approval.answer.send(Decision::TimedOut);
                let text = format!(
                    "No answer to approval {id} in time: `{}` was not run.",
                    approval.ask.action
                );
                state.notice(text, None);
            }
        }
        SessionMsg::Due => state.due(&myself),
        SessionMsg::Close => state.close(&myself).await,
    }
    Ok(())
}

// === impl SessionState ===

impl SessionState {
    /// Starts on the next queued entry, answering stored replies and commands directly.
    async fn next(&mut self, myself: &ActorRef<SessionMsg>) {
        while self.current.is_none() {
            let Some(entry) = self.queue.pop_front() else {
                // Drained: give back the buffers, which would stay for the session's life
                // (a queue of entries holds a kilobyte or more once it has held a few).
                if self.queue.capacity() > 0 {
                    self.queue = VecDeque::new();
                }
                if self.known.is_empty() && self.known.capacity() > 0 {
                    self.known = HashSet::new();
                }
                self.stops_asked = Vec::new();
                // And the finished turn's forwarder, which its scope keeps until reaped.
                self.scope.task_count();
                return;
            };
            if entry.state != InboxState::Pending {
                // Answered before (by an earlier incarnation): send that reply again.
                let reply = entry.reply.clone().unwrap_or_default();
                self.send_done(&entry, reply, false, None);
                self.known.remove(&entry.id);
                continue;
            }
            if entry.session_key.is_some() && self.answered_since(&entry).await {
                // Resumed by the router's sweep from a read made before this session (or
                // an earlier instance) answered it: already answered and sent, once.
                self.known.remove(&entry.id);
                continue;
            }
            if let Some(reason) = self.ctx.store.health().refusal() {
                // No reply could be saved: spend nothing on a model. The entry stays
                // pending; the router's sweep brings it back once the store writes.
                self.unavailable(&entry, &reason);
                continue;
            }
            let entry_id = entry.id;
            self.current = Some(Box::new(Current {
                entry,
                attempt: 0,
                started: Instant::now(),
                steps: Vec::new(),
                too_long: None,
                extra: None,
                turn: 0,
                turn_actor: None,
                partial: String::new(),
                stopped: false,
            }));
            if let Some(at) = self.stops_asked.iter().position(|id| *id == entry_id) {
                self.stops_asked.swap_remove(at);
                if let Some(current) = self.current.as_mut() {
                    current.stopped = true;
                    current.extra = Some(Box::new(ReplyExtra {
                        stopped: true,
                        ..ReplyExtra::default()
                    }));
                }
                self.finish_turn(String::new(), None, false).await;
                continue;
            }
            let text = self.current_entry().inbound.text.clone();
            match commands::parse(&text) {
                Some(command) => {
                    let reply = self.run_command(command, myself).await;
                    if let Err(error) = self.commit(text, reply, None, Role::System, false).await {
                        self.store_failed(&error);
                    }
                }
                None => self.start_turn(myself, 1).await,
            }
        }
    }

    /// Whether a resumed entry was answered after the read that resumed it.
    async fn answered_since(&self, entry: &InboxEntry) -> bool {
        matches!(
            self.ctx.store.inbox_state(entry.id).await,
            Ok(Some(state)) if state != InboxState::Pending
        )
    }

    fn current_entry(&self) -> &InboxEntry {
        // Only called while `current` is set.
        &self.current.as_ref().expect("a current entry").entry
    }

    async fn start_turn(&mut self, myself: &ActorRef<SessionMsg>, attempt: u32) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        current.attempt = attempt;
        current.steps.clear(); // a new attempt runs its calls again
        current.partial.clear(); // and streams from the start
        self.turns_started += 1;
        let turn = self.turns_started;
        current.turn = turn;
        current.turn_actor = None;
        if let Some(text) = self.summary_notice.take() {
            self.notice(text, None);
        }
        let Some(current) = self.current.as_mut() else {
            return;
        };
        self.questions.clear(); // and asks its questions again
        let request = TurnRequest {
            agent: self.row.agent.clone(),
            session_key: self.row.key.clone(),
            inbox_id: current.entry.id,
            context: self.context.messages(),
            summary: self.context.summary().map(|s| s.text.clone()),
            bytes_per_token: self.context.ratio(),
            text: current.entry.inbound.text.clone(),
            caller: current
                .entry
                .inbound
                .api
                .as_deref()
                .and_then(Caller::from_json),
            topic: self
                .ctx
                .config
                .current()
                .topic(
                    &current.entry.inbound.channel,
                    current.entry.inbound.topic.as_deref(),
                )
                .cloned(),
        };
        let configured = self
            .ctx
            .config
            .current()
            .agents
            .contains_key(&self.row.agent);
        let Some(agent) = self.ctx.agents.get(&self.row.agent).filter(|_| configured) else {
            let why = format!("agent `{}` is not configured", self.row.agent);
            self.finish_turn(failure_text(&why), None, true).await;
            return;
        };
        let (tx, mut rx) = mpsc::channel(64);
        let me = myself.clone();
        self.scope.spawn(async move {
            while let Some(event) = rx.recv().await {
                let _ = me.cast(SessionMsg::Turn {
                    turn,
                    attempt,
                    event: Some(event),
                });
            }
            let _ = me.cast(SessionMsg::Turn {
                turn,
                attempt,
                event: None,
            });
        });
        match agent
            .start_child(agent::turn::spec(&self.ctx.turns, request, tx))
            .await
        {
            Ok(cell) => {
                if let Some(current) = self.current.as_mut() {
                    current.turn_actor = Some(cell);
                }
            }
            // The channel closed with the spec: the forwarder reports the turn lost.
            Err(error) => {
                tracing::debug!(session = %self.row.key, %error, "Cannot start a turn.");
            }
        }
    }

    /// The person stopped the reply to `upstream_id`: if that is the turn in flight, its
    /// actor stops (which drops its provider stream and its tool calls), what it streamed
    /// is committed as the reply, marked stopped, and the next message starts at once.
    /// Events of the stopped turn still on their way are dropped by its number.
    async fn stop_turn(&mut self, myself: &ActorRef<SessionMsg>, upstream_id: &str) {
        let running = self
            .current
            .as_ref()
            .is_some_and(|c| c.entry.inbound.upstream_id == upstream_id);
        if !running {
            // A message that still waits: it will not run.
            if let Some(entry) = self
                .queue
                .iter()
                .find(|e| e.inbound.upstream_id == upstream_id)
                && !self.stops_asked.contains(&entry.id)
            {
                tracing::debug!(session = %self.row.key, inbox = entry.id, "A waiting message was stopped; it will not run.");
                self.stops_asked.push(entry.id);
            }
            return;
        }
        let Some(current) = self.current.as_mut() else {
            return;
        };
        // attempt 0: a command, answered without a turn.
        if current.attempt == 0 {
            return;
        }
        if let Some(actor) = current.turn_actor.take() {
            actor.stop(Some("stopped by the person in the chat".into()));
        }
        current.turn = 0;
        current.stopped = true;
        current.extra = Some(Box::new(ReplyExtra {
            stopped: true,
            ..ReplyExtra::default()
        }));
        let partial = std::mem::take(&mut current.partial);
        tracing::debug!(session = %self.row.key, "Turn stopped by the person.");
        self.finish_turn(partial, None, false).await;
        self.next(myself).await;
    }

    /// The turn died before its reply: try again after a pause, or give up.
    fn turn_lost(&mut self, myself: &ActorRef<SessionMsg>, turn: u64, attempt: u32) {
        if attempt >= MAX_ATTEMPTS {
            let why = format!("the turn failed {attempt} times");
            let me = myself.clone();
            // Answered from a message so the commit is not awaited inside this call.
            let _ = me.cast(SessionMsg::Turn {
                turn,
                attempt,
                event: Some(TurnEvent::Failed(why)),
            });
            return;
        }
        self.ctx.catalog.turns().retried.inc();
        let delay = RETRY_DELAY * 2u32.saturating_pow(attempt - 1);
        let me = myself.clone();
        self.scope.spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(SessionMsg::Retry {
                turn,
                attempt: attempt + 1,
            });
        });
    }

    async fn finish_turn(&mut self, reply: String, thinking: Option<String>, failed: bool) {
        let text = self.current_entry().inbound.text.clone();
        if let Err(error) = self
            .commit(text, reply, thinking, Role::Assistant, failed)
            .await
        {
            self.store_failed(&error);
        }
    }

    /// Commits the current entry's user message and `reply`, then sends the reply.
    async fn commit(
        &mut self,
        text: String,
        reply: String,
        thinking: Option<String>,
        reply_role: Role,
        failed: bool,
    ) -> Result<(), pincer_store::StoreError> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        if reply_role == Role::Assistant {
            self.questions.clear(); // the turn is over: nothing waits for an answer
        }
        let now = now_ms();
        let mut row = self.row.clone();
        row.last_active_ms = now;
        let is_turn = reply_role == Role::Assistant && !failed;
        if is_turn {
            row.turns += 1;
        }
        let inbox_id = Some(current.entry.id);
        // A session without history takes the request's as its start (see the README's
        // OpenAI API section); a stateless request's history stays its own.
        let seed = match current
            .entry
            .inbound
            .api
            .as_deref()
            .and_then(Caller::from_json)
        {
            Some(caller) if is_turn && !caller.stateless && self.context.messages().is_empty() => {
                seed_entries(
                    caller.history,
                    current.entry.inbound.received_at_ms,
                    inbox_id,
                )
            }
            _ => Vec::new(),
        };
        let mut entries = seed;
        entries.push(TranscriptEntry {
            role: Role::User,
            content: text.clone(),
            at_ms: current.entry.inbound.received_at_ms,
            thinking: None,
            inbox_id,
            tool: None,
            summary_through: None,
            outcome: None,
        });
        entries.extend(current.steps.iter().map(|step| tool_entry(step, inbox_id)));
        let outcome = match (current.stopped, failed) {
            (true, _) => Some(Outcome::Stopped),
            (false, true) => Some(Outcome::Failed),
            (false, false) => None,
        };
        entries.push(TranscriptEntry {
            role: reply_role,
            content: reply.clone(),
            at_ms: now,
            thinking,
            inbox_id,
            tool: None,
            summary_through: None,
            outcome,
        });
        let count = entries.len() as i64;
        let kept = is_turn.then(|| entries.clone());
        let committed = self
            .ctx
            .store
            .commit_turn(CommitTurn {
                inbox_id: Some(current.entry.id),
                session: Some(row.clone()),
                entries,
                reply: Some(reply.clone()),
                reply_extra: current.extra.as_deref().and_then(ReplyExtra::encode),
            })
            .await;
        let committed = match committed {
            Ok(c) => c,
            Err(e) => {
                self.current = Some(current);
                return Err(e);
            }
        };
        self.known.remove(&current.entry.id);
        let reply = match committed.already_answered {
            Some(earlier) => earlier,
            None => {
                if let Some(seq) = committed.first_seq {
                    self.next_seq = seq + count;
                }
                if let (Some(entries), Some(first)) = (kept, committed.first_seq) {
                    for (seq, entry) in (first..).zip(entries) {
                        self.context.push_entry(seq, entry);
                    }
                }
                if is_turn {
                    self.turns_total.inc();
                    let turns = self.ctx.catalog.turns();
                    turns.seconds.observe_duration(current.started.elapsed());
                } else if failed {
                    self.ctx.catalog.turns().failed.inc();
                }
                self.row = row;
                reply
            }
        };
        self.send_done(&current.entry, reply, failed, current.extra);
        Ok(())
    }

    /// A store that cannot write: the entry stays pending (the sweep brings it back once
    /// the store recovers); this incarnation stops holding it.
    fn store_failed(&mut self, error: &pincer_store::StoreError) {
        tracing::warn!(session = %self.row.key, %error, "Cannot commit a reply; the message stays pending.");
        if let Some(current) = self.current.take() {
            self.unavailable(&current.entry, &error.to_string());
        }
    }

    /// `entry` cannot be answered now (the store refuses writes): its waiter, if any,
    /// hears so at once; the entry stays pending for the router's sweep.
    fn unavailable(&mut self, entry: &InboxEntry, reason: &str) {
        self.known.remove(&entry.id);
        let delivery = Delivery::Unavailable {
            inbox_id: entry.id,
            reason: format!("the reply cannot be saved now ({reason})"),
        };
        self.ctx
            .outbox
            .hand_over(entry.id, &entry.inbound, delivery);
    }

    /// Refuses a new message while [`MAX_QUEUE`] wait: its inbox row is removed (nothing of
    /// it is kept) and its sender is told to try again.
    async fn refuse(&mut self, entry: InboxEntry) {
        let (store, outbox) = (&self.ctx.store, &self.ctx.outbox);
        if let Err(entry) = refuse_busy(store, outbox, &self.row.key, entry, self.queue.len()).await
            && self.known.insert(entry.id)
        {
            // Cannot remove it: better late than never, it waits its turn.
            self.queue.push_back(entry);
        }
    }

    fn send_done(
        &self,
        entry: &InboxEntry,
        reply: String,
        failed: bool,
        extra: Option<Box<ReplyExtra>>,
    ) {
        let delivery = Delivery::Done {
            inbox_id: entry.id,
            reply,
            failed,
            extra,
        };
        let channel = &entry.inbound.channel;
        let latency = Duration::from_millis(now_ms().saturating_sub(entry.inbound.received_at_ms));
        if let Some(metrics) = self.ctx.catalog.channel(channel) {
            metrics.messages_out.inc();
            metrics.reply_seconds.observe_duration(latency);
        }
        if self
            .ctx
            .outbox
            .hand_over(entry.id, &entry.inbound, delivery)
            == HandedTo::Waiter
        {
            let (store, id) = (self.ctx.store.clone(), entry.id);
            tokio::spawn(async move {
                let _ = store.mark_delivered(id).await;
            });
        }
    }

    /// A tool call of the current attempt started or ended: the chat hears of it, and an
    /// ended one is kept for the transcript.
    fn step(&mut self, attempt: u32, step: Step) {
        self.deliver(Delivery::Step {
            attempt,
            step: Box::new(pincer_channels::Step {
                n: step.n,
                tool: step.tool.clone(),
                status: step.status.to_string(),
                summary: step.summary.clone(),
                arguments: step
                    .arguments
                    .chars()
                    .take(pincer_channels::STEP_ARGUMENTS_CHARS)
                    .collect(),
                end: step.end.as_ref().map(|e| (e.ok, e.ms)),
            }),
        });
        if let (Some(current), Some(_)) = (self.current.as_mut(), &step.end) {
            current.steps.push(step);
        }
    }

    /// Answers `entry`, a command, while the turn goes on: it is committed and answered
    /// on its own, ahead of the turn's entries.
    async fn aside(
        &mut self,
        myself: &ActorRef<SessionMsg>,
        entry: InboxEntry,
        command: commands::Command,
    ) {
        self.known.insert(entry.id);
        let text = entry.inbound.text.clone();
        let turn = self.current.replace(Box::new(Current {
            entry,
            attempt: 0,
            started: Instant::now(),
            steps: Vec::new(),
            too_long: None,
            extra: None,
            turn: 0,
            turn_actor: None,
            partial: String::new(),
            stopped: false,
        }));
        let reply = self.run_command(command, myself).await;
        if let Err(error) = self.commit(text, reply, None, Role::System, false).await {
            self.store_failed(&error);
        }
        self.current = turn;
    }

    /// A tool of the turn asks before it acts: answered at once when its agent has a
    /// standing approval for it (or no one can be asked here), else asked in the chat.
    async fn ask(&mut self, myself: &ActorRef<SessionMsg>, attempt: u32, approval: Approval) {
        let Some(current) = &self.current else {
            return approval.answer.send(Decision::Unavailable);
        };
        // The HTTP API has no person to ask (its client would have to be one).
        if current.entry.inbound.channel == "http" {
            return approval.answer.send(Decision::Unavailable);
        }
        let ask = &approval.ask;
        match self
            .ctx
            .store
            .approved(&self.row.agent, ask.tool, &ask.key)
            .await
        {
            Ok(true) => return approval.answer.send(Decision::Always),
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(session = %self.row.key, %error, "Cannot read standing approvals; asking.")
            }
        }
        if self.questions.len() >= MAX_OPEN_QUESTIONS {
            return approval.answer.send(Decision::Deny);
        }
        let id = question_id();
        let timeout = self.ctx.config.current().tools.exec.approval_timeout;
        let text = format!(
            "Approval needed: {tool} wants to run\n{action}\n\nAnswer /approve {id} once, /approve {id} always (lets {agent} run {key} from now on without asking) or /approve {id} deny. No answer within {wait} means no.",
            tool = ask.tool,
            action = ask.action,
            agent = self.row.agent,
            key = ask.key,
            wait = commands::human(timeout),
        );
        let prompt = pincer_channels::ApprovalPrompt {
            id: id.clone(),
            tool: ask.tool.to_string(),
            action: ask.action.clone(),
        };
        let _ = attempt;
        self.notice(text, Some(prompt));
        let of = current.entry.inbound.sender.clone();
        self.questions.insert(id.clone(), Question { approval, of });
        let me = myself.clone();
        self.scope.spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = me.cast(SessionMsg::ApprovalDue { id });
        });
    }

    /// `/approve <id> <decision>`: answers the question, keeping an `always`.
    pub(super) async fn answer(&mut self, id: &str, decision: Decision) -> String {
        let Some(Question {
            approval: question,
            of,
        }) = self.questions.remove(id)
        else {
            return format!(
                "No approval `{id}` is waiting (it was answered, timed out, or its turn ended)."
            );
        };
        // In a group, the person whose message the tool acts for answers, not whoever
        // reads the question first. (`current` is the `/approve` message now.)
        let by = self
            .current
            .as_ref()
            .and_then(|c| c.entry.inbound.sender.clone());
        if of.is_some() && by != of {
            let action = question.ask.action.clone();
            self.questions.insert(
                id.to_string(),
                Question {
                    approval: question,
                    of,
                },
            );
            return format!(
                "Only the person whose message asked for `{action}` can answer approval `{id}`; it still waits."
            );
        }
        let ask = &question.ask;
        if decision == Decision::Always
            && let Err(error) = self
                .ctx
                .store
                .approve(&self.row.agent, ask.tool, &ask.key)
                .await
        {
            // Not kept: this once only, and the person hears why.
            question.answer.send(Decision::Once);
            return format!(
                "Approved once: {} (it could not be kept for next time: {error}).",
                ask.action
            );
        }
        question.answer.send(decision);
        match decision {
            Decision::Always => format!(
                "Approved: {} runs now, and {} may run {} from now on without asking.",
                ask.action, self.row.agent, ask.key
            ),
            Decision::Once => format!("Approved once: {}", ask.action),
            _ => format!("Denied: {} will not run.", ask.action),
        }
    }

    /// Says `text` in the conversation of the entry being answered, apart from its reply.
    fn notice(&self, text: String, approval: Option<pincer_channels::ApprovalPrompt>) {
        let attempt = self.current.as_ref().map_or(0, |c| c.attempt);
        self.deliver(Delivery::Notice {
            attempt,
            notice: Box::new(pincer_channels::Notice { text, approval }),
        });
    }

    fn deliver(&self, delivery: Delivery) {
        if let Some(current) = &self.current {
            let entry = &current.entry;
            self.ctx
                .outbox
                .hand_over(entry.id, &entry.inbound, delivery);
        }
    }

    /// A stateless API request's session (a key of its own, never reused) stops once it
    /// has answered: one-off sessions do not pile up as idle actors.
    fn stop_if_one_off(&self, myself: &ActorRef<SessionMsg>) {
        if self.current.is_none()
            && self.queue.is_empty()
            && pincer_core::session_key::is_one_off(&self.row.key)
        {
            self.ctx.keeper.deadlines.remove(&self.key);
            myself.stop(Some("one-off session answered".into()));
        }
    }

    /// Sets its next deadline in the keeper's queue: the earliest of idle, max age and
    /// hibernation.
    fn arm_timers(&self) {
        let at = self.row.expires_at_ms().min(self.rests_at());
        self.arm_at(at);
    }

    fn arm_at(&self, at_ms: u64) {
        let after = Duration::from_millis(at_ms.saturating_sub(now_ms()));
        self.ctx
            .keeper
            .deadlines
            .set(self.key.clone(), Instant::now() + after, self.me.clone());
    }

    /// When it may hibernate if nothing happens before.
    fn rests_at(&self) -> u64 {
        let after = millis(self.ctx.config.current().sessions.hibernate_after);
        self.row.last_active_ms.saturating_add(after)
    }

    /// Whether it has something in hand that its actor must keep.
    fn busy(&self) -> bool {
        self.current.is_some()
            || !self.queue.is_empty()
            || !self.questions.is_empty()
            || self.compacting
    }

    /// Its deadline came: it ends, rests, looks again once its work is done, or (the
    /// deadline moved by a message or an extension) waits for the new one.
    fn due(&mut self, myself: &ActorRef<SessionMsg>) {
        if self.closing.is_some() {
            return;
        }
        let now = now_ms();
        if self.busy() {
            // A long turn does not end or rest its own conversation: it looks again soon
            // after (its work may end without a message that would set a deadline).
            self.arm_at(now.saturating_add(millis(BUSY_RECHECK)));
            return;
        }
        let why = if expired(&self.row, now) {
            Closing::Expired
        } else if now >= self.rests_at() {
            Closing::Hibernate
        } else {
            return self.arm_timers();
        };
        // From here on the router holds its messages in the gate; those already in the
        // mailbox come before `Close` and are moved there too.
        self.closing = Some(why);
        self.ctx.keeper.deadlines.remove(&self.key);
        self.ctx
            .keeper
            .gate
            .close(self.key.clone(), myself.get_cell());
        let _ = myself.cast(SessionMsg::Close);
    }

    /// The last step out: the row is saved in the state it rests in, then the actor stops
    /// (its `post_stop` wakes the next instance if a message came meanwhile).
    async fn close(&mut self, myself: &ActorRef<SessionMsg>) {
        let Some(why) = self.closing else {
            return;
        };
        let rest = match why {
            Closing::Hibernate => Rest::Hibernated,
            Closing::Expired => Rest::Ended,
        };
        match self.ctx.store.save_session_as(self.row.clone(), rest).await {
            Ok(()) => {
                if why == Closing::Hibernate {
                    self.ctx.keeper.rested(self.row.expires_at_ms());
                }
                tracing::debug!(session = %self.row.key, why = %why, "Session stops.");
                myself.stop(Some(why.to_string()));
            }
            Err(error) if why == Closing::Hibernate => {
                // It cannot rest: it stays, with what came meanwhile, and tries later.
                tracing::warn!(session = %self.row.key, %error, "Cannot hibernate; the session stays live.");
                self.closing = None;
                for entry in self.ctx.keeper.gate.reopen(&self.key) {
                    if self.known.insert(entry.id) {
                        self.queue.push_back(entry);
                    }
                }
                self.arm_at(now_ms().saturating_add(millis(BUSY_RECHECK)));
                self.next(myself).await;
            }
            // Ended either way: its time is past, whatever the row says.
            Err(_) => myself.stop(Some(why.to_string())),
        }
    }

    /// How to start its next instance.
    fn respawn(&self) -> impl FnOnce() -> ChildSpec + Send + 'static {
        let (ctx, row) = (self.ctx.clone(), self.row.clone());
        move || spec(&ctx, &row.key, &row.agent, &row.channel, &row.account)
    }
}

/// The context of `row` from the store: its summary, if it has one in the current
/// context, and the entries after what it covers; never the whole transcript.
async fn load_context(
    store: &Store,
    row: &SessionRow,
) -> Result<Context, pincer_store::StoreError> {
    let summary = if row.summary_seq >= row.context_from && row.summary_seq > 0 {
        store
            .transcript_entry(&row.key, row.summary_seq)
            .await?
            .and_then(|e| {
                e.summary_through.map(|through| Summary {
                    seq: row.summary_seq,
                    through,
                    text: e.content,
                    at_ms: e.at_ms,
                })
            })
    } else {
        None
    };
    let from = summary
        .as_ref()
        .map_or(row.context_from, |s| s.through + 1)
        .max(row.context_from);
    let entries = store.transcript_from(&row.key, from).await?;
    Ok(Context::load(summary, entries))
}

/// Whether a session's context has ended at `now`.
pub fn expired(row: &SessionRow, now: u64) -> bool {
    let idle = now >= row.last_active_ms.saturating_add(row.idle_ms);
    let aged = row.max_age_ms > 0 && now >= row.created_at_ms.saturating_add(row.max_age_ms);
    idle || aged
}

/// A short id for a question: easy to type, unlikely to repeat within a session.
fn question_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[..6]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The transcript entry of an ended tool call: its result, with the call.
fn tool_entry(step: &Step, inbox_id: Option<i64>) -> TranscriptEntry {
    let end = step.end.clone().unwrap_or(crate::agent::turn::StepEnd {
        output: String::new(),
        ok: false,
        ms: 0,
    });
    TranscriptEntry {
        role: Role::Tool,
        content: end.output,
        at_ms: now_ms(),
        thinking: None,
        inbox_id,
        tool: Some(ToolRecord {
            name: step.tool.clone(),
            call_id: step.call_id.clone(),
            arguments: step.arguments.clone(),
            ok: end.ok,
            ms: end.ms,
        }),
        summary_through: None,
        outcome: None,
    }
}

/// A turn's token counts, calls of the caller's tools and whether the answer stopped at
/// the output cap, as a reply carries them.
fn reply_extra(
    usage: Option<pincer_providers::Usage>,
    calls: Vec<ToolCall>,
    cut: bool,
) -> ReplyExtra {
    ReplyExtra {
        cut,
        stopped: false,
        usage: usage.map(|u| (u.input_tokens, u.output_tokens)),
        tool_calls: calls
            .into_iter()
            .map(|c| CallerCall {
                id: c.call_id,
                name: c.name,
                arguments: c.arguments,
            })
            .collect(),
    }
}

/// The messages of a request's history as the transcript's start (tool calls and their
/// results are the caller's, not the conversation's).
fn seed_entries(
    history: Vec<CallerItem>,
    at_ms: u64,
    inbox_id: Option<i64>,
) -> Vec<TranscriptEntry> {
    history
        .into_iter()
        .filter_map(|item| match item {
            CallerItem::Message { role, content } => Some(TranscriptEntry {
                role,
                content,
                at_ms,
                thinking: None,
                inbox_id,
                tool: None,
                summary_through: None,
                outcome: None,
            }),
            _ => None,
        })
        .collect()
}

fn failure_text(why: &str) -> String {
    format!("Sorry, I could not answer: {why}.")
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `entry` is a new message (not one resumed from the inbox, which was taken in
/// long ago and always waits its turn).
pub fn is_fresh(entry: &InboxEntry) -> bool {
    entry.session_key.is_none() && entry.state == InboxState::Pending
}

/// Refuses a new message for session `key`, which has `waiting` messages already: the
/// entry leaves the inbox and its sender hears "busy" and may try again. Gives the entry
/// back when the store cannot remove it.
pub async fn refuse_busy(
    store: &Store,
    outbox: &Outbox,
    key: &str,
    entry: InboxEntry,
    waiting: usize,
) -> Result<(), InboxEntry> {
    match store.refuse(entry.id).await {
        Ok(()) => {
            tracing::info!(session = %key, inbox = entry.id, waiting, "Session busy; a new message was refused.");
            let reason = format!(
                "this conversation is busy ({waiting} messages are waiting); try again in a moment"
            );
            let delivery = Delivery::Refused {
                inbox_id: entry.id,
                reason,
            };
            outbox.hand_over(entry.id, &entry.inbound, delivery);
            Ok(())
        }
        Err(error) => {
            tracing::warn!(session = %key, %error, "Cannot refuse a message; it waits its turn.");
            Err(entry)
        }
    }
}

/// Answers an entry that has no session to go to (its agent or account is gone): the
/// reply says why, and the entry is done; `outbox` is its account's, if the account runs.
pub async fn answer_unroutable(
    store: &Store,
    outbox: Option<&Outbox>,
    entry: &InboxEntry,
    why: &str,
) {
    let reply = failure_text(why);
    let committed = store
        .commit_turn(CommitTurn {
            inbox_id: Some(entry.id),
            session: None,
            entries: Vec::new(),
            reply: Some(reply.clone()),
            reply_extra: None,
        })
        .await;
    match committed {
        Ok(c) => {
            let reply = c.already_answered.unwrap_or(reply);
            if let Some(outbox) = outbox {
                let done = Delivery::Done {
                    inbox_id: entry.id,
                    reply,
                    failed: true,
                    extra: None,
                };
                outbox.hand_over(entry.id, &entry.inbound, done);
            }
        }
        Err(error) => {
            tracing::warn!(inbox = entry.id, %error, "Cannot answer an unroutable message.")
        }
    }
}
