//! The `router` actor: takes inbox entries from the channels, resolves their agent and
//! session (see [`resolve`]), and hands them to `session:<key>`, starting it under its
//! account's `sessions` supervisor when needed. It owns no I/O of its own.
//!
//! Once a second it also sweeps the inbox for entries still pending after a while: those
//! whose router, session, agent or turn died on the way, and after a restart of the whole
//! process, everything left unanswered. Sessions ignore an entry they already hold, so a
//! sweep never starts a second turn.

mod resolve;

use std::time::Duration;

use pincer_actors::{Scope, Timer};
use ractor::{Actor, ActorProcessingErr, ActorRef};

pub use resolve::{Route, RouteError, Tier, resolve};

use std::sync::Arc;

use pincer_config::live::View;
use pincer_store::Store;

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::channel::{Account, Accounts};
use crate::session::gate::Offer;
use crate::session::{self, SessionCtx, SessionMsg};
use crate::status::Status;
use pincer_core::now_ms;
use pincer_store::InboxEntry;

/// How often the inbox is swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// An entry is swept only once it is this old, so a message on its normal path is not
/// routed twice for nothing.
const SWEEP_MIN_AGE: Duration = Duration::from_millis(1500);

/// Entries resumed per sweep (more wait for the next one).
const SWEEP_BATCH: usize = 2000;

/// Messages of the router.
#[derive(Debug)]
pub enum RouterMsg {
    /// Route an inbox entry to its session.
    Route(Box<InboxEntry>),
    /// Look for pending inbox entries and route them again.
    Sweep,
    /// A sweep read its batch.
    Swept(Vec<InboxEntry>),
    /// Stop the reply to a message in flight in session `key` of `account` (see
    /// [`SessionMsg::Stop`]); nothing happens when that session is not running.
    Stop {
        /// The account.
        account: String,
        /// The session key.
        key: String,
        /// The message whose reply to stop.
        upstream_id: String,
    },
    /// Stop session `key` of `account` for good (its conversation is being deleted);
    /// `done` hears once it has stopped (true), or that it was not running (false).
    Close {
        /// The account.
        account: String,
        /// The session key.
        key: String,
        /// Told when the session no longer runs, and whether it ran.
        done: tokio::sync::oneshot::Sender<bool>,
    },
}

/// What the router works with.
#[derive(Debug, Clone)]
pub struct RouterCtx {
    /// The inbox it sweeps and routes.
    pub store: Store,
    /// The config in force (bindings).
    pub config: View,
    /// The accounts, with their `sessions` supervisors and outboxes.
    pub accounts: Accounts,
    /// What the sessions it starts work with (the outbox is set per account).
    pub sessions: SessionCtx,
    /// Whether the tree has started (until then there is nowhere to route to).
    pub status: Arc<Status>,
    /// What each account's sessions work with, made once per account.
    pub per_account: Arc<Mutex<HashMap<String, Arc<SessionCtx>>>>,
}

/// The router actor.
#[derive(Debug, Clone, Copy)]
pub struct Router;

/// The router's state.
#[derive(Debug)]
pub struct RouterState {
    ctx: RouterCtx,
    scope: Scope,
    sweep: Timer,
    sweeping: bool,
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = (RouterCtx, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        (ctx, scope): (RouterCtx, Scope),
    ) -> Result<RouterState, ActorProcessingErr> {
        let sweep = Timer::new(&scope, myself, || RouterMsg::Sweep);
        // The first sweep comes soon: after a restart, waiting entries are resumed at once.
        sweep.arm(Duration::from_millis(50));
        Ok(RouterState {
            ctx,
            scope,
            sweep,
            sweeping: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Route(entry) => route(&state.ctx, *entry).await,
            RouterMsg::Sweep => {
                state.sweep.arm(SWEEP_INTERVAL);
                // Until the channels are up there is nowhere to route to.
                if state.ctx.status.is_started() && !state.sweeping {
                    state.sweeping = true;
                    let store = state.ctx.store.clone();
                    let before = now_ms().saturating_sub(SWEEP_MIN_AGE.as_millis() as u64);
                    state.scope.spawn(async move {
                        let found = store
                            .pending_inbox(before, SWEEP_BATCH)
                            .await
                            .unwrap_or_default();
                        let _ = myself.cast(RouterMsg::Swept(found));
                    });
                }
            }
            RouterMsg::Stop {
                account,
                key,
                upstream_id,
            } => {
                let child = pincer_core::session_key::child_id(&key);
                if let Some(cell) = state
                    .ctx
                    .accounts
                    .get(&account)
                    .and_then(|a| a.sessions.get(&child))
                {
                    let _ =
                        ActorRef::<SessionMsg>::from(cell).cast(SessionMsg::Stop { upstream_id });
                }
            }
            RouterMsg::Close { account, key, done } => {
                let child = pincer_core::session_key::child_id(&key);
                if let Some(account) = state.ctx.accounts.get(&account) {
                    // Not awaited here: a session's shutdown must not hold up routing.
                    state.scope.spawn(async move {
                        let running = account.sessions.get(&child).is_some();
                        if running
                            && let Err(error) = account.sessions.terminate_child(&child).await
                        {
                            tracing::debug!(session = %key, %error, "Cannot stop a session being deleted.");
                        }
                        let _ = done.send(running);
                    });
                } else {
                    let _ = done.send(false);
                }
            }
            RouterMsg::Swept(entries) => {
                state.sweeping = false;
                if !entries.is_empty() {
                    tracing::debug!(entries = entries.len(), "Resuming pending inbox entries.");
                }
                for entry in entries {
                    route(&state.ctx, entry).await;
                }
            }
        }
        Ok(())
    }
}

/// What `account`'s sessions work with: one shared value per account (its sessions hold
/// it by reference), made again only when the account was replaced.
fn account_ctx(ctx: &RouterCtx, account: &Account) -> Arc<SessionCtx> {
    let mut cache = ctx.per_account.lock();
    if let Some(found) = cache.get(&account.id)
        && Arc::ptr_eq(&found.keeper, &account.keeper)
    {
        return found.clone();
    }
    let made = Arc::new(SessionCtx {
        outbox: account.outbox.clone(),
        keeper: account.keeper.clone(),
        ..ctx.sessions.clone()
    });
    cache.insert(account.id.clone(), made.clone());
    made
}

/// A new message for a session on its way out that has as many waiting as it would
/// take: refused, as the session would; kept waiting when the store cannot refuse it.
async fn refuse_held(
    sessions: &SessionCtx,
    gate: &session::gate::Gate,
    key: &str,
    entry: InboxEntry,
) {
    let (store, outbox) = (&sessions.store, &sessions.outbox);
    if let Err(entry) = session::refuse_busy(store, outbox, key, entry, session::MAX_QUEUE).await {
        gate.hold(key, entry);
    }
}

/// Hands `entry` to its session. On failure the entry stays pending for the next sweep.
async fn route(ctx: &RouterCtx, entry: InboxEntry) {
    let (agent, key) = match &entry.session_key {
        // Routed before (a resumed entry): keep its session even if bindings changed.
        Some(key) => match pincer_core::session_key::agent_of(key) {
            Some(agent) => (agent.to_string(), key.clone()),
            None => return,
        },
        None => match resolve(&ctx.config.current(), &entry.inbound) {
            Ok(route) => (route.agent, route.session_key),
            Err(error) => {
                let account = ctx.accounts.get(&entry.inbound.account);
                let outbox = account.as_ref().map(|a| &a.outbox);
                session::answer_unroutable(&ctx.store, outbox, &entry, &error.to_string()).await;
                return;
            }
        },
    };
    let Some(account) = ctx.accounts.get(&entry.inbound.account) else {
        let why = format!("account `{}` is not configured", entry.inbound.account);
        session::answer_unroutable(&ctx.store, None, &entry, &why).await;
        return;
    };
    if entry.session_key.is_none() {
        let (store, id, key) = (ctx.store.clone(), entry.id, key.clone());
        tokio::spawn(async move {
            let _ = store.route(id, &key).await;
        });
    }
    let child = pincer_core::session_key::child_id(&key);
    let sessions = account_ctx(ctx, &account);
    let channel = entry.inbound.channel.clone();
    let spec = {
        let (sessions, key, agent, account) = (
            sessions.clone(),
            key.clone(),
            agent.clone(),
            account.id.clone(),
        );
        move || session::spec(&sessions, &key, &agent, &channel, &account)
    };
    // Through the gate: a session on its way out (hibernating, expiring) holds the
    // message for its next instance instead of taking it into a mailbox about to close.
    let gate = &account.keeper.gate;
    let offer = |entry| {
        gate.offer(&key, entry, |entry| match account.sessions.get(&child) {
            Some(cell) => match ActorRef::<SessionMsg>::from(cell).cast(SessionMsg::Deliver(entry))
            {
                Ok(()) => Ok(()),
                Err(ractor::MessagingErr::SendErr(SessionMsg::Deliver(entry))) => Err(entry),
                // Not a message we sent back: nothing to keep (the inbox still has it).
                Err(_) => Ok(()),
            },
            None => Err(entry),
        })
    };
    let entry = match offer(Box::new(entry)) {
        Offer::Sent => return,
        Offer::Held { wake: false } => {
            tracing::debug!(session = %key, "A message waits for a session on its way out.");
            return;
        }
        Offer::Held { wake: true } => {
            tracing::debug!(session = %key, "A message waits for a session that died on its way out; waking it.");
            // The instance that was leaving is gone (killed): start the next one.
            account.keeper.wake(Arc::from(key.as_str()), spec);
            return;
        }
        Offer::NotRunning(entry) => entry,
        Offer::Full(entry) => return refuse_held(&sessions, gate, &key, *entry).await,
    };
    match account.sessions.get_or_start(&child, spec.clone()).await {
        Ok(_) => {
            // Through the gate again: the new instance may already be on its way out.
            match offer(entry) {
                Offer::Held { wake: true } => account.keeper.wake(Arc::from(key.as_str()), spec),
                Offer::Full(entry) => refuse_held(&sessions, gate, &key, *entry).await,
                Offer::NotRunning(_) => {
                    tracing::debug!(session = %key, "Session stopped as it started; the inbox entry waits for the next sweep.")
                }
                _ => {}
            }
        }
        Err(error) => {
            tracing::warn!(session = %key, %error, "Cannot start session; the inbox entry waits for the next sweep.");
        }
    }
}
