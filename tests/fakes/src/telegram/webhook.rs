//! Webhook delivery: one task per `setWebhook`, POSTing queued updates in order, one at a
//! time; an update leaves the queue only on a 2xx, and failures are retried after a pause
//! that grows from 200 ms to 1 s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::state::Shared;
use super::wire::unix_now;

/// First pause after a failed delivery.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What to deliver next.
struct Next {
    update: Value,
    url: String,
    secret: Option<String>,
    timeout: Duration,
}

/// Delivers updates for `token` while its webhook is generation `generation`.
pub(super) async fn deliver(shared: Arc<Shared>, token: String, generation: u64) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let (next, mut changed) = {
            let mut state = shared.lock();
            let timeout = state.knobs.webhook_timeout;
            let Some(bot) = state.bots.get_mut(&token) else {
                return;
            };
            let Some(hook) = bot.webhook.as_ref().filter(|w| w.generation == generation) else {
                return;
            };
            let (url, secret) = (hook.url.clone(), hook.secret.clone());
            bot.prune_disallowed();
            let next = bot.queue.front().cloned().map(|update| Next {
                update,
                url,
                secret,
                timeout,
            });
            (next, bot.updates.subscribe())
        };
        let Some(next) = next else {
            if changed.changed().await.is_err() {
                return;
            }
            continue;
        };
        let update_id = next.update.get("update_id").cloned();
        let mut request = shared
            .http
            .post(&next.url)
            .timeout(next.timeout)
            .header("content-type", "application/json")
            .body(next.update.to_string());
        if let Some(secret) = &next.secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let outcome = match request.send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!(
                "Wrong response from the webhook: {}",
                resp.status()
            )),
            Err(e) if e.is_timeout() => Err("Read timeout expired".to_owned()),
            Err(e) => Err(format!("Connection refused: {e}")),
        };
        {
            let mut state = shared.lock();
            state.counters.webhook_posts += 1;
            if outcome.is_err() {
                state.counters.webhook_failures += 1;
            }
            let Some(bot) = state.bots.get_mut(&token) else {
                return;
            };
            match &outcome {
                Ok(()) => {
                    if let Some(pos) = bot
                        .queue
                        .iter()
                        .position(|u| u.get("update_id").cloned() == update_id)
                    {
                        bot.queue.remove(pos);
                    }
                }
                Err(message) => {
                    if let Some(hook) = bot.webhook.as_mut().filter(|w| w.generation == generation)
                    {
                        hook.last_error = Some((unix_now(), message.clone()));
                    }
                }
            }
        }
        if outcome.is_ok() {
            backoff = FIRST_BACKOFF;
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
