//! `pincer doctor`'s channel checks: does each account's token open its bot? Telegram is
//! asked `getMe`, Discord `GET /gateway/bot`: both authenticate and change nothing.

use std::time::Duration;

use serde_json::json;

use super::Finding;
use crate::channel::discord::rest::{DEFAULT_API_BASE as DISCORD_BASE, Rest};
use crate::channel::telegram::{Api, DEFAULT_API_BASE as TELEGRAM_BASE};
use pincer_config::{Config, SecretValue};

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks every Telegram and Discord account of `config` (its refs resolved in `secrets`).
pub(super) async fn all(
    config: &Config,
    secrets: &pincer_secrets::Resolved,
    http: &reqwest::Client,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let token = |value: Option<&SecretValue>| {
        value
            .map(|v| secrets.get(v).map_err(|e| e.to_string()))
            .unwrap_or_else(|| Err("token is not set".into()))
    };
    if let Some(telegram) = &config.channels.telegram {
        for (id, account) in &telegram.accounts {
            let what = format!("channel telegram account `{id}`");
            let finding = match token(account.token.as_ref()) {
                Err(e) => Finding {
                    ok: false,
                    text: format!("{what}: {e}"),
                },
                Ok(token) => {
                    let base = account.api_base.as_deref().unwrap_or(TELEGRAM_BASE);
                    let api = Api::new(http.clone(), base, &token);
                    match api.call("getMe", &json!({}), CHECK_TIMEOUT).await {
                        Ok(me) => Finding {
                            ok: true,
                            text: format!(
                                "{what}: bot @{} answers",
                                me.get("username").and_then(|u| u.as_str()).unwrap_or("?")
                            ),
                        },
                        Err(e) => Finding {
                            ok: false,
                            text: format!("{what}: {e}"),
                        },
                    }
                }
            };
            out.push(finding);
        }
    }
    if let Some(discord) = &config.channels.discord {
        for (id, account) in &discord.accounts {
            let what = format!("channel discord account `{id}`");
            let finding = match token(account.token.as_ref()) {
                Err(e) => Finding {
                    ok: false,
                    text: format!("{what}: {e}"),
                },
                Ok(token) => {
                    let base = account.api_base.as_deref().unwrap_or(DISCORD_BASE);
                    let rest = Rest::new(http.clone(), base, &token);
                    match tokio::time::timeout(CHECK_TIMEOUT, rest.gateway_url()).await {
                        Ok(Ok(_)) => Finding {
                            ok: true,
                            text: format!("{what}: the bot token opens the gateway"),
                        },
                        Ok(Err(e)) => Finding {
                            ok: false,
                            text: format!("{what}: {e}"),
                        },
                        Err(_) => Finding {
                            ok: false,
                            text: format!("{what}: no answer within {} s", CHECK_TIMEOUT.as_secs()),
                        },
                    }
                }
            };
            out.push(finding);
        }
    }
    out
}
