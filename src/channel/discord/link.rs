//! The Discord link actor: resolves the token, attaches the reply sender, and keeps one
//! gateway connection up, resuming its session across reconnects and across its own
//! restarts. See the [parent module](super).

use std::sync::Arc;
use std::time::Duration;

use pincer_actors::{Backoff, ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use pincer_channels::discord::rest::{DEFAULT_API_BASE, Rest};
use pincer_channels::discord::send::Sender;
use pincer_channels::discord::socket::{self, End};
use pincer_channels::push;

use super::inbound::Ctx;
use crate::channel::LinkCtx;

/// The link actor.
#[derive(Debug, Clone, Copy)]
pub struct DiscordLink;

/// The link's child spec.
pub fn link_spec(ctx: LinkCtx) -> ChildSpec {
    ChildSpec::scoped("link", DiscordLink, ctx)
}

impl Actor for DiscordLink {
    type Msg = ();
    type State = ();
    type Arguments = (LinkCtx, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        (ctx, scope): (LinkCtx, Scope),
    ) -> Result<(), ActorProcessingErr> {
        ctx.restart_on_rotation(&scope, myself.get_cell());
        // The socket runs in the scope: it ends (dropped, no close frame, so the session
        // stays resumable) before any replacement link starts.
        let inner = scope.clone();
        scope.spawn(async move { run(ctx, inner).await });
        Ok(())
    }
}

async fn run(link: LinkCtx, scope: Scope) {
    let account = link.account.clone();
    // A new start is a new try: an earlier fatal reason shows again if it still holds.
    link.status.set_problem(&link.path(), None);
    let Some(settings) = link
        .config
        .current()
        .channels
        .discord
        .as_ref()
        .and_then(|d| d.accounts.get(&account))
        .cloned()
    else {
        return;
    };
    let Some(token) = link.token(settings.token.as_ref()) else {
        return;
    };
    let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    let rest = Arc::new(Rest::new(link.http.clone(), base, &token));
    let sender = Sender { rest: rest.clone() };
    push::start(link.push(), &scope, "discord", &account, sender);
    let links = link.links.clone();
    let ctx = Ctx::new(link, rest.clone());
    let mut attempt = 0u32;
    loop {
        let resume = links.resume(&account);
        let url = match &resume {
            Some(r) if !r.resume_url.is_empty() => r.resume_url.clone(),
            _ => match rest.gateway_url().await {
                Ok(url) => url,
                Err(error) if error.status == Some(401) => {
                    return ctx.link.give_up(&format!("bot token refused: {error}"));
                }
                Err(error) => {
                    links.disconnected(&account, &error.to_string());
                    attempt += 1;
                    tokio::time::sleep(backoff().delay(attempt)).await;
                    continue;
                }
            },
        };
        let started = tokio::time::Instant::now();
        match socket::connect(&ctx, &links, &account, &token, &url).await {
            End::Fatal(why) => return ctx.link.give_up(&why),
            End::Reconnect { resume, why } => {
                tracing::info!(account = %account, reason = %why, resume, "Discord gateway connection ended.");
                links.disconnected(&account, &why);
                if !resume {
                    links.set_resume(&account, None);
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
