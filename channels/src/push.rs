//! Sending replies of a push channel (Telegram, Discord): lanes and redelivery.
//!
//! The link attaches its account's sink ([`start`]). Deliveries are sorted into lanes, one
//! per conversation (a chat, a Discord channel): a lane sends in order and at the pace the
//! upstream allows, while other lanes go on. Deltas of a reply that streams are folded into
//! a [`Draft`] and shown at most once per preview interval; the final reply replaces it.
//!
//! A reply is marked delivered only once sent. A reply that could not be sent (the link was
//! restarting, the network was down) stays "answered" in the store, and the redelivery
//! sweep sends it again. The final send of a reply runs in a task of its own that a link
//! kill does not cut short (it is bounded by the send's timeouts): a reply that was on its
//! way when its link died is finished and marked, not sent again by the next link, which
//! skips whatever [`Links`] says is being sent or was just sent.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_actors::Scope;
use tokio::sync::mpsc;

use pincer_store::Store;

use crate::{Delivery, Links, Outbox, Push};
use pincer_core::{Inbound, now_ms};

/// How often answered-but-unsent replies are looked for.
const REDELIVER_INTERVAL: Duration = Duration::from_secs(3);

/// A reply is redelivered only once it has been answered this long: younger ones are
/// still on their normal way.
const REDELIVER_MIN_AGE: Duration = Duration::from_secs(2);

/// A lane with nothing to do for this long ends (the next delivery starts it again).
const LANE_IDLE: Duration = Duration::from_secs(30);

/// Deliveries a lane holds while it sends (a chat paced to one message a second).
const LANE_CAPACITY: usize = 256;

/// Why a send failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network, 5xx, a 429 beyond patience).
    #[error("{0}")]
    Transient(String),
    /// Will never work (chat gone, bot blocked, malformed): the reply is dropped, logged.
    #[error("{0}")]
    Permanent(String),
}

/// A reply being streamed.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// Inbox row of the message answered.
    pub inbox_id: i64,
    /// Turn attempt the text belongs to.
    pub attempt: u32,
    /// Text so far.
    pub text: String,
    /// Text last shown upstream.
    pub shown: String,
    /// Upstream id of the preview message, once posted.
    pub message_id: Option<String>,
    /// When the preview was last shown.
    pub shown_at: Option<Instant>,
    /// When the first text came: a reply done within one preview interval is never
    /// previewed (a preview would only spend the chat's rate).
    pub started: Option<Instant>,
    /// The tool call running, with its status and when it started.
    pub running: Option<(String, Instant)>,
    /// The status shown under the text: a call that has run for [`STATUS_AFTER`].
    pub status: Option<String>,
    /// When the typing indicator was last shown.
    pub typed_at: Option<Instant>,
}

impl Draft {
    /// What a preview shows: the text so far, and under it the status of a call that has
    /// run for a while.
    pub fn shown_text(&self) -> String {
        match &self.status {
            Some(status) if self.text.trim().is_empty() => status.clone(),
            Some(status) => format!("{}\n\n{status}", self.text),
            None => self.text.clone(),
        }
    }

    /// Time until the tool call running needs the chat's attention (its status to show,
    /// the typing indicator to be shown again), if one runs.
    fn attention_in(&self) -> Option<Duration> {
        let (_, since) = self.running.as_ref()?;
        let status = match self.status {
            Some(_) => TYPING_EVERY,
            None => STATUS_AFTER.saturating_sub(since.elapsed()),
        };
        let typing = self
            .typed_at
            .map_or(Duration::ZERO, |t| TYPING_EVERY.saturating_sub(t.elapsed()));
        Some(status.min(typing))
    }

    /// Time until a preview is due under `every` (zero: due now).
    fn due_in(&self, every: Duration) -> Duration {
        let since = self
            .shown_at
            .or(self.started)
            .map_or(Duration::ZERO, |t| t.elapsed());
        every.saturating_sub(since)
    }
}

/// A tool call that runs this long gets its status shown ("Searching the web…").
pub const STATUS_AFTER: Duration = Duration::from_secs(2);

/// How often the typing indicator is shown again while a tool call runs (Telegram's lasts
/// 5 s, Discord's 10 s).
const TYPING_EVERY: Duration = Duration::from_secs(4);

/// What a push channel does upstream.
pub trait Upstream: Send + Sync + 'static {
    /// The lane of a message: its sends are ordered and paced together.
    fn lane(&self, inbound: &Inbound) -> String;

    /// How often a streaming reply may be previewed; `None`: no previews.
    fn preview_interval(&self, inbound: &Inbound) -> Option<Duration>;

    /// Shows the typing indicator in the chat of `inbound` (best effort).
    fn typing(&self, inbound: &Inbound) -> impl Future<Output = ()> + Send;

    /// Shows [`Draft::shown_text`] as the reply in progress (may skip when short of
    /// rate), and sets `draft.shown` to what it showed.
    fn preview(
        &self,
        inbound: &Inbound,
        draft: &mut Draft,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Sends `text` as a message of its own in the chat of `inbound` (a notice of the
    /// gateway, not the reply: nothing is marked delivered).
    fn notice(
        &self,
        inbound: &Inbound,
        text: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    /// Sends the whole `reply`, replacing the preview if there is one.
    fn finish(
        &self,
        inbound: &Inbound,
        draft: &mut Draft,
        reply: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// What sending replies of one account needs: the store (undelivered replies, delivered
/// marks), what outlives its links, and the account's outbox.
#[derive(Debug, Clone)]
pub struct PushCtx {
    /// Where replies are marked delivered and looked for again.
    pub store: Store,
    /// Which sends are under way or done, across link restarts.
    pub links: Arc<Links>,
    /// The account's outbox, whose sink the link attaches.
    pub outbox: Outbox,
}

/// Attaches `account`'s sink and sends its deliveries through `upstream`, in tasks of
/// `scope` (they end with the link).
pub fn start<U: Upstream>(ctx: PushCtx, scope: &Scope, kind: &'static str, account: &str, up: U) {
    let mut sink = ctx.outbox.attach();
    let up = Arc::new(up);
    let (again_tx, mut again_rx) = mpsc::unbounded_channel::<Push>();

    // Dispatcher: one lane per conversation.
    let (push2, scope2, up2, account2) =
        (ctx.clone(), scope.clone(), up.clone(), account.to_string());
    scope.spawn(async move {
        let mut lanes: HashMap<String, mpsc::Sender<Push>> = HashMap::new();
        loop {
            let push = tokio::select! {
                Some(p) = sink.recv() => p,
                Some(p) = again_rx.recv() => p,
                else => return,
            };
            let lane = up2.lane(&push.inbound);
            let push = match lanes.get(&lane) {
                Some(tx) => match tx.try_send(push) {
                    Ok(()) => continue,
                    // A lane that far behind loses deltas (the reply is sent whole) and,
                    // for a reply, leaves it to the redelivery below.
                    Err(mpsc::error::TrySendError::Full(p)) => {
                        tracing::debug!(account = %account2, inbox = p.inbox_id, "Lane full; the delivery waits for redelivery.");
                        continue;
                    }
                    Err(mpsc::error::TrySendError::Closed(p)) => p,
                },
                None => push,
            };
            lanes.retain(|_, tx| !tx.is_closed());
            let (tx, rx) = mpsc::channel(LANE_CAPACITY);
            let _ = tx.try_send(push);
            lanes.insert(lane, tx);
            let ctx = LaneCtx {
                push: push2.clone(),
                up: up2.clone(),
                account: account2.clone(),
            };
            scope2.spawn(run_lane(ctx, rx));
        }
    });

    // Redelivery of replies answered while no link was there to send them.
    let (store, account) = (ctx.store.clone(), account.to_string());
    scope.spawn(async move {
        let mut first = true;
        loop {
            let pause = if first {
                Duration::from_millis(300)
            } else {
                REDELIVER_INTERVAL
            };
            first = false;
            tokio::time::sleep(pause).await;
            let before = now_ms().saturating_sub(REDELIVER_MIN_AGE.as_millis() as u64);
            let Ok(entries) = store.undelivered(kind, &account, before, 200).await else {
                continue;
            };
            for entry in entries {
                let push = Push {
                    inbox_id: entry.id,
                    delivery: Delivery::Done {
                        inbox_id: entry.id,
                        reply: entry.reply.clone().unwrap_or_default(),
                        failed: false,
                        extra: None,
                    },
                    inbound: Arc::new(entry.inbound),
                };
                if again_tx.send(push).is_err() {
                    return;
                }
            }
        }
    });
}

struct LaneCtx<U> {
    push: PushCtx,
    up: Arc<U>,
    account: String,
}

/// One lane: sends in order, folding deltas that queued up while it was busy.
async fn run_lane<U: Upstream>(ctx: LaneCtx<U>, mut rx: mpsc::Receiver<Push>) {
    let mut drafts: HashMap<i64, (Arc<Inbound>, Draft)> = HashMap::new();
    loop {
        let wait = next_preview(&ctx, &drafts).unwrap_or(LANE_IDLE);
        let first = match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(p)) => Some(p),
            Ok(None) => return,
            Err(_) if drafts.is_empty() => return,
            Err(_) => None,
        };
        let mut batch: Vec<Push> = first.into_iter().collect();
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        let mut finished = Vec::new();
        for push in batch {
            match push.delivery {
                Delivery::Delta { attempt, text } => {
                    let (_, draft) = drafts.entry(push.inbox_id).or_insert_with(|| {
                        let draft = Draft {
                            inbox_id: push.inbox_id,
                            attempt,
                            started: Some(Instant::now()),
                            ..Draft::default()
                        };
                        (push.inbound.clone(), draft)
                    });
                    if attempt != draft.attempt {
                        // A retried turn streams from the start.
                        draft.attempt = attempt;
                        draft.text.clear();
                    }
                    draft.text.push_str(&text);
                }
                Delivery::Step { attempt, step } => {
                    let (_, draft) = drafts.entry(push.inbox_id).or_insert_with(|| {
                        let draft = Draft {
                            inbox_id: push.inbox_id,
                            attempt,
                            started: Some(Instant::now()),
                            ..Draft::default()
                        };
                        (push.inbound.clone(), draft)
                    });
                    draft.running = match step.end {
                        None => Some((step.status.clone(), Instant::now())),
                        Some(_) => None,
                    };
                    draft.status = None;
                }
                Delivery::Notice { notice, .. } => {
                    if let Err(error) = ctx.up.notice(&push.inbound, &notice.text).await {
                        tracing::warn!(account = %ctx.account, inbox = push.inbox_id, %error, "Notice not sent.");
                    }
                }
                Delivery::Done { reply, .. } => finished.push((push.inbox_id, push.inbound, reply)),
                // The message was not taken: the sender hears why (nothing to mark: its
                // inbox row is gone).
                Delivery::Refused { reason, .. } => {
                    finished.push((push.inbox_id, push.inbound, reason))
                }
                // The reply could not be committed: it comes later, from the redelivery.
                Delivery::Unavailable { .. } => {
                    drafts.remove(&push.inbox_id);
                }
            }
        }
        for (inbox_id, inbound, reply) in finished {
            // Claimed only here, by the task that will end the claim whatever happens.
            if !ctx.push.links.begin_send(&ctx.account, inbox_id) {
                drafts.remove(&inbox_id);
                continue; // on its way, or sent just now
            }
            let mut draft = drafts
                .remove(&inbox_id)
                .map(|(_, d)| d)
                .unwrap_or_else(|| Draft {
                    inbox_id,
                    ..Draft::default()
                });
            // Its own task: a link killed mid-send does not cut the reply short.
            let (push, up, account) = (ctx.push.clone(), ctx.up.clone(), ctx.account.clone());
            let sending = tokio::spawn(async move {
                finish(&push, up.as_ref(), &account, &inbound, &mut draft, &reply).await;
            });
            let _ = sending.await;
        }
        for (inbound, draft) in drafts.values_mut() {
            if let Some((status, since)) = &draft.running {
                // A call runs: keep "typing…" on, and past a while say what it does.
                if draft.typed_at.is_none_or(|t| t.elapsed() >= TYPING_EVERY) {
                    ctx.up.typing(inbound).await;
                    draft.typed_at = Some(Instant::now());
                }
                if since.elapsed() >= STATUS_AFTER {
                    draft.status = Some(status.clone());
                }
            }
            let due = ctx
                .up
                .preview_interval(inbound)
                .is_some_and(|every| draft.due_in(every).is_zero());
            let shown = draft.shown_text();
            if due && shown != draft.shown && !shown.trim().is_empty() {
                if let Err(error) = ctx.up.preview(inbound, draft).await {
                    tracing::debug!(account = %ctx.account, %error, "Preview not shown.");
                }
                draft.shown_at = Some(Instant::now());
            }
        }
    }
}

/// Time until the earliest preview is due or a running call needs attention, if any
/// draft waits for either.
fn next_preview<U: Upstream>(
    ctx: &LaneCtx<U>,
    drafts: &HashMap<i64, (Arc<Inbound>, Draft)>,
) -> Option<Duration> {
    let previews = drafts
        .values()
        .filter(|(_, d)| d.shown_text() != d.shown)
        .filter_map(|(inbound, d)| {
            let every = ctx.up.preview_interval(inbound)?;
            Some(d.due_in(every))
        });
    let calls = drafts.values().filter_map(|(_, d)| d.attention_in());
    previews
        .chain(calls)
        .min()
        .map(|d| d.max(Duration::from_millis(10)))
}

async fn finish<U: Upstream>(
    ctx: &PushCtx,
    up: &U,
    account: &str,
    inbound: &Inbound,
    draft: &mut Draft,
    reply: &str,
) {
    let inbox_id = draft.inbox_id;
    let delivered = match up.finish(inbound, draft, reply).await {
        Ok(()) => true,
        Err(SendError::Permanent(error)) => {
            tracing::warn!(account, inbox = inbox_id, %error, "Reply cannot be sent; dropping it.");
            ctx.links.error(account, &error);
            true
        }
        Err(SendError::Transient(error)) => {
            tracing::warn!(account, inbox = inbox_id, %error, "Reply not sent; it will be sent again.");
            ctx.links.error(account, &error);
            false
        }
    };
    if delivered && let Err(error) = ctx.store.mark_delivered(inbox_id).await {
        tracing::warn!(account, inbox = inbox_id, %error, "Cannot mark a reply sent.");
    }
    ctx.links.end_send(account, inbox_id, delivered);
}
