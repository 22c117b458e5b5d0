//! Channels: each account is a supervisor of its `link` (the surface that takes messages
//! in and sends replies out) and its `sessions` (a dynamic supervisor of `session:<key>`).
//!
//! Taking a message in is the same for every channel ([`intake`]): write it to the inbox,
//! then hand it to the router. A reply goes out through the account's [`Outbox`]; for the
//! channels served on the gateway's own port (web chat, HTTP API) that is whoever waits for
//! the message's upstream id.

pub mod check;
pub mod discord;
pub mod http;
mod links;
mod outbox;
pub mod pace;
pub mod pairing;
pub mod push;
pub mod split;
pub mod telegram;
pub mod web;

use std::time::Duration;

use pincer_actors::{Backoff, ChildSpec, Intensity, Restart, Strategy, SupervisorSpec};

pub use links::{DiscordResume, LinkStatus, Links, PollSlot};
pub use outbox::{Delivery, HandedTo, Outbox, Push, Waiter};

use crate::gateway::{Account, Gateway};
use crate::router::RouterMsg;
use pincer_core::Inbound;
use pincer_store::{Accepted, InboxEntry, InboxState, StoreError};

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

/// Writes `inbound` to the inbox and, unless it was answered before, hands it to the
/// router. Returns once the message is durable: that is when it may be acknowledged.
pub async fn intake(gw: &Gateway, inbound: Inbound) -> Result<Accepted, IntakeError> {
    if gw.is_draining() {
        return Err(IntakeError::Draining);
    }
    let channel = inbound.channel.clone();
    let accepted = gw.store().accept(inbound.clone()).await?;
    if !accepted.duplicate {
        gw.stats().message_in(&channel);
    }
    if accepted.state == InboxState::Pending {
        let entry = InboxEntry {
            id: accepted.id,
            inbound,
            state: accepted.state,
            session_key: None,
            reply: None,
        };
        // A router that is down now finds the entry on its next sweep of the inbox.
        if let Some(router) = gw.actor::<RouterMsg>(&pincer_core::paths::top("router")) {
            let _ = router.cast(RouterMsg::Route(Box::new(entry)));
        }
    }
    Ok(accepted)
}

/// The child spec of account `id` of channel `kind`, registering the account in `gw`.
pub fn account_spec(gw: &Gateway, kind: &'static str, id: &str) -> Option<ChildSpec> {
    let link = match kind {
        "web" => web::link_spec(gw),
        "http" => http::link_spec(gw),
        "telegram" => telegram::link_spec(gw, id),
        "discord" => discord::link_spec(gw, id),
        _ => return None,
    };
    // Sessions are independent conversations: one crashing often must not end the others,
    // so their supervisor tolerates many restarts.
    let (sessions_spec, sessions) = SupervisorSpec::dynamic(MAX_SESSIONS)
        .intensity(Intensity::new(1000, Duration::from_secs(10)))
        .into_child_spec("sessions");
    gw.set_account(Account {
        kind,
        id: id.to_string(),
        sessions,
        outbox: Outbox::default(),
    });
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
        .into_child_spec(format!("channel:{kind}:{id}"));
    // A whole account that gave up waits before its next try, so readiness shows it.
    Some(spec.restart(Restart::Permanent).backoff(account_backoff()))
}

fn account_backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30), 2.0)
        .with_jitter(0.1)
        .with_reset_after(Duration::from_secs(60))
}

/// A link that cannot run until its config changes (no token, a token refused, a fatal
/// close): its status and readiness say why, and it does not retry.
pub fn give_up(gw: &Gateway, kind: &str, account: &str, why: &str) {
    tracing::error!(
        account,
        channel = kind,
        reason = why,
        "Channel account cannot run until its config changes."
    );
    gw.links().fatal(account, why);
    gw.set_problem(
        &pincer_core::paths::link(kind, account),
        Some(why.to_string()),
    );
}

/// Resolves an account's bot `token`; gives up (see [`give_up`]) and returns `None` when
/// it is not set or cannot be resolved. The reason names the key or the ref, never a value.
pub fn account_token(
    gw: &Gateway,
    kind: &str,
    account: &str,
    token: Option<&pincer_config::SecretValue>,
) -> Option<String> {
    let secrets = gw.secret_handle(pincer_secrets::refs::account_owner(kind, account));
    match token.map(|t| secrets.get(t)) {
        Some(Ok(token)) if !token.trim().is_empty() => Some(token),
        // Not a config problem: `secrets` retries, and the link restarts when it resolves.
        Some(Err(error @ pincer_secrets::SecretError::Unresolved { .. })) => {
            let why = format!("waiting for its token: {error}");
            gw.links().fatal(account, &why);
            gw.set_problem(&pincer_core::paths::link(kind, account), Some(why));
            None
        }
        Some(Err(error)) => {
            give_up(gw, kind, account, &error.to_string());
            None
        }
        _ => {
            let why = format!("channels.{kind}.accounts.{account}.token is not set");
            give_up(gw, kind, account, &why);
            None
        }
    }
}

/// Restarts the link `link` of an account when one of its secrets (token, webhook
/// secret) changes value, so it reconnects with the new one; a link waiting for its
/// token starts when the token resolves. Runs in the link's scope.
pub fn restart_on_rotation(
    gw: &Gateway,
    scope: &pincer_actors::Scope,
    link: ractor::ActorCell,
    kind: &'static str,
    account: &str,
) {
    let (gw, account) = (gw.clone(), account.to_string());
    let mut changes = gw.secrets().changes();
    scope.spawn(async move {
        let current = || {
            let config = gw.config();
            let owner = pincer_secrets::refs::account_owner(kind, &account);
            let secrets = gw.secret_handle(owner.clone());
            pincer_secrets::refs::uses(&config)
                .into_iter()
                .filter(|u| u.owner == owner)
                .map(|u| secrets.get(&u.value).ok().map(|v| pincer_secrets::digest(&v)))
                .collect::<Vec<_>>()
        };
        let before = current();
        while changes.changed().await.is_ok() {
            if current() != before {
                tracing::info!(account = %account, channel = kind, "A secret of the account changed; the link reconnects with it.");
                link.stop(Some("secret rotated".into()));
                return;
            }
        }
    });
}
