//! The Telegram link actor: resolves the token, asks `getMe` who the bot is, attaches the
//! reply sender, then polls or serves the webhook. See the [parent module](super).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pincer_actors::{Backoff, ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{Value, json};

use pincer_channels::push;
use pincer_channels::telegram::send::Sender;
use pincer_channels::telegram::{Api, ApiError, DEFAULT_API_BASE};
use pincer_config::{TelegramAccount, TelegramMode};

use super::inbound::Ctx;
use crate::channel::{IntakeError, LinkCtx};

/// Seconds a `getUpdates` long poll waits upstream.
const POLL_TIMEOUT_SECS: u64 = 25;

/// Extra time the HTTP client gives a long poll beyond its `timeout`.
const POLL_SLACK: Duration = Duration::from_secs(10);

/// Pause before polling after a predecessor was cut off mid-poll: on its side the request
/// is gone, and this is the time the Bot API gets to see its connection closed.
const CUT_OFF_GRACE: Duration = Duration::from_millis(300);

/// Streaming previews at most this often in a private chat.
const PREVIEW_EVERY: Duration = Duration::from_secs(1);

/// Short calls (`getMe`, `setWebhook`, `deleteWebhook`).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages of the Telegram link.
#[derive(Debug)]
pub enum TelegramLinkMsg {
    /// An update posted to the webhook, with the secret header it came with.
    Webhook {
        /// `X-Telegram-Bot-Api-Secret-Token`, if sent.
        secret: Option<String>,
        /// The update.
        update: Box<Value>,
        /// Answered once the update is durable (or refused).
        reply: RpcReplyPort<Result<(), WebhookError>>,
    },
}

/// Why a webhook POST was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The secret header is missing or wrong.
    #[error("webhook secret does not match")]
    Unauthorized,
    /// The account is not in webhook mode or not ready yet: Telegram will try again.
    #[error("telegram account `{0}` is not receiving by webhook now")]
    NotReady(String),
    /// The update could not be written.
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

/// The link actor.
#[derive(Debug, Clone, Copy)]
pub struct TelegramLink;

/// Its state.
#[derive(Debug)]
pub struct TelegramLinkState {
    scope: Scope,
    /// Set once the bot is known and (in webhook mode) the webhook is set.
    webhook: Arc<OnceLock<(Arc<Ctx>, String)>>,
    account: String,
}

/// The link's child spec.
pub fn link_spec(ctx: LinkCtx) -> ChildSpec {
    ChildSpec::scoped("link", TelegramLink, ctx)
}

impl Actor for TelegramLink {
    type Msg = TelegramLinkMsg;
    type State = TelegramLinkState;
    type Arguments = (LinkCtx, Scope);

    async fn pre_start(
        &self,
        myself: ActorRef<TelegramLinkMsg>,
        (ctx, scope): (LinkCtx, Scope),
    ) -> Result<TelegramLinkState, ActorProcessingErr> {
        ctx.restart_on_rotation(&scope, myself.get_cell());
        let webhook: Arc<OnceLock<(Arc<Ctx>, String)>> = Arc::default();
        // Everything that touches the network runs in the scope, supervised by this
        // actor's life: the start stays light and cannot fail on the upstream.
        let account = ctx.account.clone();
        let (hook, inner) = (webhook.clone(), scope.clone());
        scope.spawn(async move { run(ctx, inner, hook).await });
        Ok(TelegramLinkState {
            scope,
            webhook,
            account,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<TelegramLinkMsg>,
        msg: TelegramLinkMsg,
        state: &mut TelegramLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TelegramLinkMsg::Webhook {
                secret,
                update,
                reply,
            } => {
                let Some((ctx, expected)) = state.webhook.get().cloned() else {
                    let _ = reply.send(Err(WebhookError::NotReady(state.account.clone())));
                    return Ok(());
                };
                let given = secret.unwrap_or_default();
                if !pincer_core::net::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                    let _ = reply.send(Err(WebhookError::Unauthorized));
                    return Ok(());
                }
                // Each update waits on the store's group commit; tasks let them share one.
                state.scope.spawn(async move {
                    let outcome = ctx.on_update(&update).await;
                    let _ = reply.send(outcome.map(|_| ()).map_err(WebhookError::from));
                });
            }
        }
        Ok(())
    }
}

/// The link's life: set up, then poll or serve the webhook until the scope closes.
async fn run(link: LinkCtx, scope: Scope, webhook: Arc<OnceLock<(Arc<Ctx>, String)>>) {
    let account = link.account.clone();
    let config = link.config.current();
    let Some(settings) = config
        .channels
        .telegram
        .as_ref()
        .and_then(|t| t.accounts.get(&account))
        .cloned()
    else {
        return;
    };
    let Some(token) = link.token(settings.token.as_ref()) else {
        return;
    };
    let base = settings.api_base.as_deref().unwrap_or(DEFAULT_API_BASE);
    let api = Api::new(link.http.clone(), base, &token);
    let Some((bot_id, username)) = who_am_i(&link, &api).await else {
        return;
    };
    let sender = Sender::new(api.clone(), PREVIEW_EVERY);
    push::start(link.push(), &scope, "telegram", &account, sender.clone());
    let ctx = Arc::new(Ctx::new(link, bot_id, username, sender));
    match settings.mode {
        TelegramMode::Poll => poll(&ctx, &api, bot_id).await,
        TelegramMode::Webhook => serve_webhook(&ctx, &api, &settings, &webhook).await,
    }
}

/// `getMe`, retried with backoff. `None` when the token is refused (the link then waits
/// for a config change).
async fn who_am_i(link: &LinkCtx, api: &Api) -> Option<(i64, String)> {
    let account = link.account.as_str();
    let mut attempt = 0;
    loop {
        match api.call("getMe", &json!({}), CALL_TIMEOUT).await {
            Ok(me) => {
                let id = me.get("id").and_then(Value::as_i64).unwrap_or(0);
                let username = me
                    .get("username")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                link.status.set_problem(&link.path(), None);
                return Some((id, username));
            }
            Err(
                e @ ApiError::Refused {
                    code: 401 | 404, ..
                },
            ) => {
                link.give_up(&format!("bot token refused ({e})"));
                return None;
            }
            Err(error) => {
                link.links.disconnected(account, &error.to_string());
                attempt += 1;
                tokio::time::sleep(backoff().delay(attempt)).await;
            }
        }
    }
}

/// Long polling, as the token's only poller.
async fn poll(ctx: &Ctx, api: &Api, bot_id: i64) {
    let (links, account) = (&ctx.link.links, ctx.account.as_str());
    let slot = links.poll_slot(&bot_id.to_string());
    let mut slot = slot.lock().await;
    if slot.cut_off {
        tokio::time::sleep(CUT_OFF_GRACE).await;
    }
    // Polling and a webhook exclude each other upstream; poll mode is what config says.
    if let Err(error) = api
        .call(
            "deleteWebhook",
            &json!({"drop_pending_updates": false}),
            CALL_TIMEOUT,
        )
        .await
    {
        tracing::debug!(account, %error, "deleteWebhook failed; polling anyway.");
    }
    let mut attempt = 0;
    loop {
        let body = json!({
            "offset": slot.offset,
            "timeout": POLL_TIMEOUT_SECS,
            "limit": 100,
            "allowed_updates": ["message"],
        });
        slot.cut_off = true;
        let polled = api
            .call(
                "getUpdates",
                &body,
                Duration::from_secs(POLL_TIMEOUT_SECS) + POLL_SLACK,
            )
            .await;
        slot.cut_off = false;
        let pause = match polled {
            Ok(updates) => {
                attempt = 0;
                links.connected(account, "poll");
                let updates = updates.as_array().cloned().unwrap_or_default();
                for update in &updates {
                    let Some(id) = update.get("update_id").and_then(Value::as_i64) else {
                        continue;
                    };
                    if let Err(error) = ctx.on_update(update).await {
                        // Not confirmed: the next poll gets it again.
                        tracing::warn!(account, %error, "Cannot take an update in; it will come again.");
                        break;
                    }
                    slot.offset = Some(id + 1);
                }
                continue;
            }
            Err(ApiError::Refused {
                code: 429,
                retry_after,
                ..
            }) => retry_after.unwrap_or(Duration::from_secs(5)),
            Err(
                e @ ApiError::Refused {
                    code: 401 | 404, ..
                },
            ) => {
                links.fatal(account, &format!("bot token refused ({e})"));
                Duration::from_secs(60)
            }
            Err(error) => {
                if error.code() == Some(409) {
                    tracing::warn!(account, %error, "Another client polls this bot token; backing off.");
                } else {
                    tracing::warn!(account, %error, "getUpdates failed; backing off.");
                }
                links.disconnected(account, &error.to_string());
                attempt += 1;
                backoff().delay(attempt)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// Sets the webhook, then lets the gateway port deliver updates to this link.
async fn serve_webhook(
    ctx: &Arc<Ctx>,
    api: &Api,
    settings: &TelegramAccount,
    webhook: &OnceLock<(Arc<Ctx>, String)>,
) {
    let (link, account) = (&ctx.link, ctx.account.as_str());
    let Some(url) = settings.webhook_url.clone() else {
        let why = format!(
            "channels.telegram.accounts.{account}.webhookUrl is not set (mode = \"webhook\")"
        );
        return link.give_up(&why);
    };
    let secret = match settings
        .webhook_secret
        .as_ref()
        .map(|s| link.secrets.get(s))
    {
        Some(Ok(secret)) => secret,
        Some(Err(error)) => return link.give_up(&error.to_string()),
        // Telegram echoes the secret on every POST; without one configured, a fresh one
        // per link start is as good (setWebhook tells Telegram the new one).
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let mut attempt = 0;
    loop {
        let body = json!({"url": url, "secret_token": secret, "allowed_updates": ["message"]});
        match api.call("setWebhook", &body, CALL_TIMEOUT).await {
            Ok(_) => break,
            Err(error) => {
                link.links.disconnected(account, &error.to_string());
                attempt += 1;
                tokio::time::sleep(backoff().delay(attempt)).await;
            }
        }
    }
    let _ = webhook.set((ctx.clone(), secret));
    link.links.connected(account, "webhook");
    std::future::pending::<()>().await;
}

fn backoff() -> Backoff {
    Backoff::exponential(Duration::from_secs(1), Duration::from_secs(30), 2.0).with_jitter(0.2)
}
