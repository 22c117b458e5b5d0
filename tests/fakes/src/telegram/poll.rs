//! `getUpdates`: offset confirmation, a real long poll, and the 409 that the newer of two
//! overlapping polls of one token inflicts on the older one.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::state::{Shared, Termination};
use super::wire::{Answer, Args};

/// Ends the poll's bookkeeping however the poll ends: answered, terminated, or dropped
/// because the client went away.
struct PollGuard {
    shared: Arc<Shared>,
    token: String,
    id: u64,
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.counters.get_updates_active = state.counters.get_updates_active.saturating_sub(1);
        if let Some(bot) = state.bots.get_mut(&self.token) {
            bot.polls.retain(|(id, _)| *id != self.id);
        }
    }
}

/// Answers one `getUpdates`.
pub(super) async fn get_updates(shared: &Arc<Shared>, token: &str, args: Args<'_>) -> Answer {
    let offset = args.int_lenient("offset").unwrap_or(0);
    // Like the real server: out-of-range limits mean the maximum.
    let limit = match args.int_lenient("limit") {
        Some(n @ 1..=100) => usize::try_from(n).unwrap_or(100),
        _ => 100,
    };
    let timeout_secs = args.int_lenient("timeout").unwrap_or(0).max(0);
    let allowed = args.list("allowed_updates");

    let (mut terminated, guard, deadline) = {
        let mut guard = shared.lock();
        let state = &mut *guard;
        let cap = state.knobs.max_long_poll;
        let id = state.next_poll_id;
        state.next_poll_id += 1;
        let bot = match state.bot(token) {
            Ok(bot) => bot,
            Err(answer) => return answer,
        };
        if bot.webhook.is_some() {
            return Answer::conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to \
                 delete the webhook first",
            );
        }
        if let Some(list) = allowed {
            bot.allowed_updates = Some(list);
        }
        confirm(&mut bot.queue, offset);
        let (stop, terminated) = oneshot::channel();
        bot.polls.push((id, stop));
        let concurrent = bot.polls.len() as u64;
        // The newest poll wins: every older one of this token is answered 409.
        let older: Vec<_> = bot.polls.drain(..bot.polls.len() - 1).collect();
        for (_, stop) in older {
            // An older poll whose client left has nobody to answer.
            let _ = stop.send(Termination::OtherGetUpdates);
        }
        let counters = &mut state.counters;
        counters.get_updates_active += 1;
        counters.max_concurrent_get_updates = counters.max_concurrent_get_updates.max(concurrent);
        let wait = Duration::from_secs(u64::try_from(timeout_secs).unwrap_or(0)).min(cap);
        let guard = PollGuard {
            shared: Arc::clone(shared),
            token: token.to_owned(),
            id,
        };
        (terminated, guard, tokio::time::Instant::now() + wait)
    };

    loop {
        let (updates, mut changed) = {
            let mut state = shared.lock();
            // A poll already told to stop returns nothing more, even if updates arrived.
            if let Ok(reason) = terminated.try_recv() {
                drop(state);
                drop(guard);
                return terminated_answer(reason);
            }
            let Some(bot) = state.bots.get_mut(token) else {
                return Answer::ok(Value::Array(Vec::new()));
            };
            if bot.webhook.is_some() {
                drop(state);
                drop(guard);
                return Answer::conflict("terminated by setWebhook request");
            }
            bot.prune_disallowed();
            let updates: Vec<Value> = bot
                .queue
                .iter()
                .filter(|u| update_id(u) >= offset)
                .take(limit)
                .cloned()
                .collect();
            // Subscribing under the lock: an update queued after this read wakes us.
            (updates, bot.updates.subscribe())
        };
        if !updates.is_empty() || tokio::time::Instant::now() >= deadline {
            drop(guard);
            return Answer::ok(Value::Array(updates));
        }
        tokio::select! {
            reason = &mut terminated => {
                drop(guard);
                // A dropped sender means the poll was removed: same as a rival's.
                return terminated_answer(reason.unwrap_or(Termination::OtherGetUpdates));
            }
            _ = changed.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The 409 a terminated poll gets.
fn terminated_answer(reason: Termination) -> Answer {
    match reason {
        Termination::SetWebhook => Answer::conflict("terminated by setWebhook request"),
        Termination::OtherGetUpdates => Answer::conflict(
            "terminated by other getUpdates request; make sure that only one bot instance is \
             running",
        ),
    }
}

fn update_id(update: &Value) -> i64 {
    update
        .get("update_id")
        .and_then(Value::as_i64)
        .unwrap_or(i64::MIN)
}

/// Applies `offset`: a positive one forgets every update before it; a negative one keeps
/// only the last `-offset` updates, as the real API does.
fn confirm(queue: &mut std::collections::VecDeque<Value>, offset: i64) {
    if offset > 0 {
        queue.retain(|u| update_id(u) >= offset);
    } else if offset < 0 {
        let keep = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
        while queue.len() > keep {
            queue.pop_front();
        }
    }
}
