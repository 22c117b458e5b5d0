//! The Discord link actor: resolves the token, attaches the reply sender, and keeps one
//! gateway connection up, resuming its session across reconnects and across its own
//! restarts. See the [parent module](super).

use std::sync::Arc;
use std::time::Duration;

use pincer_actors::{Backoff, ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::inbound::Ctx;
use super::rest::{DEFAULT_API_BASE, Rest};
use super::send::Sender;
use super::socket::{self, End};
use crate::channel::push;
use crate::gateway::Gateway;

/// The link actor.
#[derive(Debug, Clone)]
pub struct DiscordLink {
    account: String,
}

/// The link's child spec.
pub fn link_spec(gw: &Gateway, account: &str) -> ChildSpec {
    let link = DiscordLink {
        account: account.to_string(),
    };
    crate::gateway::child(gw, "link", link)
}

impl Actor for DiscordLink {
    type Msg = ();
    type State = ();
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<(), ActorProcessingErr> {
        crate::channel::restart_on_rotation(
            &gw,
            &scope,
            myself.get_cell(),
            "discord",
            &self.account,
        );
        // The socket runs in the scope: it ends (dropped, no close frame, so the session
        // stays resumable) before any replacement link starts.
        let (account, inner) = (self.account.clone(), scope.clone());
        scope.spawn(async move { run(gw, inner, account).await });
        Ok(())
    }
}

async fn run(gw: Gateway, scope: Scope, account: String) {
    // A new start is a new try: an earlier fatal reason shows again if it still holds.
    gw.set_problem(&pincer_core::paths::link("discord", &account), None);
    let Some(settings) = gw
        .config()
        .channels
        .discord
        .as_ref()
        .and_then(|d| d.accounts.get(&account))
        .cloned()
    else {
        return;
    };
    let Some(token) =
        crate::channel::account_token(&gw, "discord", &account, settings.token.as_ref())
    else {
        return;
    };
    let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    let rest = Arc::new(Rest::new(crate::provider::http_client(), base, &token));
    push::start(
        &gw,
        &scope,
        "discord",
        &account,
        Sender { rest: rest.clone() },
    );
    let ctx = Ctx::new(gw.clone(), account.clone(), rest.clone());
    let mut attempt = 0u32;
    loop {
        let resume = gw.links().resume(&account);
        let url = match &resume {
            Some(r) if !r.resume_url.is_empty() => r.resume_url.clone(),
            _ => match rest.gateway_url().await {
                Ok(url) => url,
                Err(error) if error.status == Some(401) => {
                    return crate::channel::give_up(
                        &gw,
                        "discord",
                        &account,
                        &format!("bot token refused: {error}"),
                    );
                }
                Err(error) => {
                    gw.links().disconnected(&account, &error.to_string());
                    attempt += 1;
                    tokio::time::sleep(backoff().delay(attempt)).await;
                    continue;
                }
            },
        };
        let started = tokio::time::Instant::now();
        match socket::connect(&ctx, &token, &url).await {
            End::Fatal(why) => return crate::channel::give_up(&gw, "discord", &account, &why),
            End::Reconnect { resume, why } => {
                tracing::info!(account = %account, reason = %why, resume, "Discord gateway connection ended.");
                gw.links().disconnected(&account, &why);
                if !resume {
                    gw.links().set_resume(&account, None);
                }
                // A connection that lived a while starts the backoff over.
                if started.elapsed() > Duration::from_secs(60) {
                    attempt = 0;
                }
                attempt += 1;
                let pause = if attempt == 1 {
                    Duration::from_millis(fastrand::u64(100..500))
                } else {
                    backoff().delay(attempt - 1)
                };
                tokio::time::sleep(pause).await;
            }
        }
    }
}

fn backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(60), 2.0).with_jitter(0.2)
}
