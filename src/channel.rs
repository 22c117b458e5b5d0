//! Channels: each account is a supervisor of its `link` (the surface that takes messages
//! in and sends replies out) and its `sessions` (a dynamic supervisor of `session:<key>`).
//!
//! Taking a message in is the same for every channel ([`Intake`]): write it to the inbox,
//! then hand it to the router. A reply goes out through the account's [`Outbox`]; for the
//! channels served on the gateway's own port (web chat, HTTP API) that is whoever waits for
//! the message's upstream id. The channels' APIs and reply sending live in
//! `pincer_channels`; the links here run them in their scopes.

pub mod discord;
pub mod http;
pub mod telegram;
pub mod web;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use pincer_actors::{
    Addr, Backoff, ChildSpec, Intensity, Restart, Scope, Strategy, SupervisorHandle, SupervisorSpec,
};
use pincer_config::SecretValue;
use pincer_config::live::View;
use pincer_core::Inbound;
use pincer_core::metrics::catalog::Catalog;
use pincer_core::paths;
use pincer_secrets::{Handle, SecretError, Secrets, refs};
use pincer_store::{Accepted, InboxEntry, InboxState, Store, StoreError};

pub use pincer_channels::{Delivery, HandedTo, Links, Outbox, Waiter};

use crate::readiness::Probe;
use crate::router::RouterMsg;
use crate::session::keeper::{self, Keeper};
use crate::status::Status;

/// Sessions one account may hold at once.
pub const MAX_SESSIONS: usize = 100_000;

/// Why a message was not taken in. Nothing was written in either case.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntakeError {
    /// The gateway is shutting down.
    #[error("the gateway is shutting down")]
    Draining,
    /// The store could not write the message.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account's link is not running (it is being restarted).
    #[error("channel link `{0}` is restarting")]
    LinkDown(String),
}

/// Where inbound messages go: the inbox, then the router. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Intake {
    /// The inbox.
    pub store: Store,
    /// The router, which a new entry is handed to.
    pub router: Addr<RouterMsg>,
    /// Whether the gateway still takes input.
    pub status: Arc<Status>,
    /// `pincer_messages_in_total`.
    pub catalog: Catalog,
}

impl Intake {
    /// Writes `inbound` to the inbox and, unless it was answered before, hands it to the
    /// router. Returns once the message is durable: that is when it may be acknowledged.
    pub async fn take(&self, inbound: Inbound) -> Result<Accepted, IntakeError> {
        if self.status.is_draining() {
            return Err(IntakeError::Draining);
        }
        let channel = inbound.channel.clone();
        let accepted = self.store.accept(inbound.clone()).await?;
        if !accepted.duplicate
            && let Some(metrics) = self.catalog.channel(&channel)
        {
            metrics.messages_in.inc();
        }
        if accepted.state == InboxState::Pending {
            let entry = InboxEntry {
                id: accepted.id,
                inbound,
                state: accepted.state,
                session_key: None,
                reply: None,
                reply_extra: None,
            };
            // A router that is down now finds the entry on its next sweep of the inbox.
            if let Some(router) = self.router.get() {
                let _ = router.cast(RouterMsg::Route(Box::new(entry)));
            }
        }
        Ok(accepted)
    }
}

/// One running channel account: where its sessions run and where its replies go.
#[derive(Clone, Debug)]
pub struct Account {
    /// Channel kind: `web`, `http`, `telegram`, `discord`.
    pub kind: &'static str,
    /// Account id.
    pub id: String,
    /// Its `sessions` supervisor.
    pub sessions: SupervisorHandle,
    /// Where replies for this account go.
    pub outbox: Outbox,
    /// Its sessions' deadlines, gate and count of hibernated ones (kept by the
    /// `deadlines` child of `sessions`).
    pub keeper: Arc<Keeper>,
}

/// The running accounts, by id. Filled by whoever starts accounts (the tree at start,
/// reconciliation after an edit); read by the router, the routes and the links.
#[derive(Debug, Clone, Default)]
pub struct Accounts(Arc<RwLock<HashMap<String, Account>>>);

impl Accounts {
    /// Account `id`.
    pub fn get(&self, id: &str) -> Option<Account> {
        self.0.read().get(id).cloned()
    }

    /// Every running account.
    pub fn all(&self) -> Vec<Account> {
        self.0.read().values().cloned().collect()
    }

    /// Records `account`.
    pub fn insert(&self, account: Account) {
        self.0.write().insert(account.id.clone(), account);
    }
}

/// What every account's link is built from.
#[derive(Debug, Clone)]
pub struct ChannelsCtx {
    /// Where messages go in.
    pub intake: Intake,
    /// The config in force.
    pub config: View,
    /// What outlives the links.
    pub links: Arc<Links>,
    /// Where a link that cannot run says why.
    pub status: Arc<Status>,
    /// Resolved secrets (each account reads its own through its handle).
    pub secrets: Arc<Secrets>,
    /// The store (topics, thread parents, pairings, replies to send again).
    pub store: Store,
    /// The HTTP client.
    pub http: reqwest::Client,
    /// Readiness, which the web chat shows.
    pub probe: Probe,
}

/// What one account's link works with.
#[derive(Debug, Clone)]
pub struct LinkCtx {
    /// Channel kind.
    pub kind: &'static str,
    /// Account id.
    pub account: String,
    /// Where messages go in.
    pub intake: Intake,
    /// The config in force.
    pub config: View,
    /// The account's outbox.
    pub outbox: Outbox,
    /// What outlives the links.
    pub links: Arc<Links>,
    /// Where a link that cannot run says why.
    pub status: Arc<Status>,
    /// The account's secrets (its token, its webhook secret).
    pub secrets: Handle,
    /// The store.
    pub store: Store,
    /// The HTTP client.
    pub http: reqwest::Client,
}

/// The child spec of account `id` of channel `kind`, and the account it runs (the caller
/// records it in [`Accounts`] once it starts). `None` for an unknown kind.
pub fn account_spec(
    ctx: &ChannelsCtx,
    kind: &'static str,
    id: &str,
) -> Option<(ChildSpec, Account)> {
    let outbox = Outbox::default();
    let link = LinkCtx {
        kind,
        account: id.to_string(),
        intake: ctx.intake.clone(),
        config: ctx.config.clone(),
        outbox: outbox.clone(),
        links: ctx.links.clone(),
        status: ctx.status.clone(),
        secrets: Handle::new(
            ctx.secrets.clone(),
            ctx.config.clone(),
            refs::account_owner(kind, id),
        ),
        store: ctx.store.clone(),
        http: ctx.http.clone(),
    };
    let link = match kind {
        "web" => web::link_spec(link, ctx.probe.clone()),
        "http" => http::link_spec(link.intake),
        "telegram" => telegram::link_spec(link),
        "discord" => discord::link_spec(link),
        _ => return None,
    };
    // Sessions are independent conversations: one crashing often must not end the others,
    // so their supervisor tolerates many restarts.
    let (sessions_spec, sessions) = SupervisorSpec::dynamic(MAX_SESSIONS)
        .intensity(Intensity::new(1000, Duration::from_secs(10)))
        .into_child_spec("sessions");
    // Beside them, one actor keeps the deadlines of them all (one task, not two timers
    // each) and ends hibernated ones in the store.
    let keeper = Keeper::new(id);
    keeper.set_sessions(sessions.clone());
    // A link that dies (a chaos kill, a panic on upstream garbage) comes back at once at
    // first, then a little later each time, so a crash loop cannot spin; the account
    // tolerates that many link restarts without restarting its sessions.
    let link = link.backoff(
        Backoff::exponential(Duration::from_millis(5), Duration::from_millis(250), 2.0)
            .with_jitter(0.1)
            .with_reset_after(Duration::from_secs(1)),
    );
    let (spec, _) = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(Intensity::new(100, Duration::from_secs(10)))
        .child(link)
        .child(sessions_spec)
        .child(keeper::spec(&keeper, &ctx.store))
        .into_child_spec(paths::account_id(kind, id));
    // A whole account that gave up waits before its next try, so readiness shows it.
    let spec = spec.restart(Restart::Permanent).backoff(account_backoff());
    let account = Account {
        kind,
        id: id.to_string(),
        sessions,
        outbox,
        keeper,
    };
    Some((spec, account))
}

fn account_backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30), 2.0)
        .with_jitter(0.1)
        .with_reset_after(Duration::from_secs(60))
}

// === impl LinkCtx ===

impl LinkCtx {
    /// The registry path of this link.
    pub fn path(&self) -> String {
        paths::link(self.kind, &self.account)
    }

    /// A link that cannot run until its config changes (no token, a token refused, a fatal
    /// close): its status and readiness say why, and it does not retry.
    pub fn give_up(&self, why: &str) {
        tracing::error!(
            account = %self.account,
            channel = self.kind,
            reason = why,
            "Channel account cannot run until its config changes."
        );
        self.links.fatal(&self.account, why);
        self.status.set_problem(&self.path(), Some(why.to_string()));
    }

    /// Resolves the account's bot `token`; gives up (see [`give_up`](Self::give_up)) and
    /// returns `None` when it is not set or cannot be resolved. The reason names the key or
    /// the ref, never a value.
    pub fn token(&self, token: Option<&SecretValue>) -> Option<String> {
        match token.map(|t| self.secrets.get(t)) {
            Some(Ok(token)) if !token.trim().is_empty() => Some(token),
            // Not a config problem: `secrets` retries, and the link restarts when it resolves.
            Some(Err(error @ SecretError::Unresolved { .. })) => {
                let why = format!("waiting for its token: {error}");
                self.links.fatal(&self.account, &why);
                self.status.set_problem(&self.path(), Some(why));
                None
            }
            Some(Err(error)) => {
                self.give_up(&error.to_string());
                None
            }
            _ => {
                let why = format!(
                    "channels.{}.accounts.{}.token is not set",
                    self.kind, self.account
                );
                self.give_up(&why);
                None
            }
        }
    }

    /// Stops the link `link` when one of the account's secrets (token, webhook secret)
    /// changes value, so it comes back with the new one; a link waiting for its token
    /// starts when the token resolves. Runs in the link's scope.
    pub fn restart_on_rotation(&self, scope: &Scope, link: ractor::ActorCell) {
        let ctx = self.clone();
        let mut changes = self.secrets.secrets().changes();
        scope.spawn(async move {
            let current = || {
                let config = ctx.config.current();
                let owner = ctx.secrets.owner();
                refs::uses(&config)
                    .into_iter()
                    .filter(|u| u.owner == owner)
                    .map(|u| {
                        ctx.secrets
                            .get(&u.value)
                            .ok()
                            .map(|v| pincer_secrets::digest(&v))
                    })
                    .collect::<Vec<_>>()
            };
            let before = current();
            while changes.changed().await.is_ok() {
                if current() != before {
                    tracing::info!(account = %ctx.account, channel = ctx.kind, "A secret of the account changed; the link reconnects with it.");
                    link.stop(Some("secret rotated".into()));
                    return;
                }
            }
        });
    }

    /// What sending this account's replies needs.
    pub fn push(&self) -> pincer_channels::push::PushCtx {
        pincer_channels::push::PushCtx {
            store: self.store.clone(),
            links: self.links.clone(),
            outbox: self.outbox.clone(),
        }
    }
}
