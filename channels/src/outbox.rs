//! Replies on their way out: waiters keyed by upstream id, and the sink of a push channel.
//!
//! Keyed by upstream id (not inbox id) so a caller can wait *before* its message is
//! accepted: a reply that comes back faster than the accept's answer is not missed.
//!
//! Telegram and Discord have no caller waiting: their link attaches a sink, and whatever
//! no waiter takes goes there as a [`Push`] with the message it answers (the link needs
//! its chat and thread to reply). A reply the sink did not take stays "answered, not
//! delivered" in the store, and the link sends it when it is back.
//!
//! Nothing here grows with a slow reader: a waiter holds at most [`MAX_WAITER_BYTES`] of
//! streamed text (past that it drops the rest of the deltas: the final delivery carries
//! the whole reply), and the sink holds at most [`SINK_CAPACITY`] pushes (a reply it
//! cannot take stays in the store for redelivery).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use pincer_core::Inbound;
use pincer_store::{InboxState, Store};

/// How long a waiter waits for a delivery before it asks the store: a session that died
/// between committing a reply and handing it over leaves the reply only there.
const STORE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Streamed text a waiter holds for a consumer that has not taken it. A reply longer than
/// this, to a consumer that lags by all of it, arrives whole with its final delivery.
pub const MAX_WAITER_BYTES: usize = 256 * 1024;

/// Pushes the sink of a push channel holds for its link.
pub const SINK_CAPACITY: usize = 1024;

/// One piece of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Streamed text. `attempt` grows when a turn is started again after its turn, agent
    /// or provider died; the new attempt streams from the start.
    Delta {
        /// Turn attempt, from 1.
        attempt: u32,
        /// The text.
        text: String,
    },
    /// A tool call of the reply in progress: sent as it starts and as it ends. Dropped
    /// like a delta for a consumer that lags (the transcript keeps every call).
    Step {
        /// Turn attempt, from 1.
        attempt: u32,
        /// The call (boxed: deltas, far more common, stay small).
        step: Box<Step>,
    },
    /// A message of the gateway in the conversation, apart from the reply (a question
    /// before a tool acts). Never dropped for a consumer that lags.
    Notice {
        /// Turn attempt, from 1.
        attempt: u32,
        /// The notice.
        notice: Box<Notice>,
    },
    /// The whole reply, as committed. The last delivery for a message.
    Done {
        /// Inbox row of the message.
        inbox_id: i64,
        /// The reply text.
        reply: String,
        /// The reply reports a failure (no model answered).
        failed: bool,
        /// What an API caller gets besides the text (token counts, calls of its tools);
        /// `None` for a reply read back from the store.
        extra: Option<Box<ReplyExtra>>,
    },
    /// The message was not taken after all (its session is busy): nothing of it is kept,
    /// and the sender should try again later. The last delivery for a message.
    Refused {
        /// Inbox row the message had.
        inbox_id: i64,
        /// Why, for the sender.
        reason: String,
    },
    /// Its reply could not be committed (the store refuses writes): the message stays
    /// pending and is answered once the store recovers; a caller may retry with the same
    /// key to get that answer. The last delivery a waiter gets for now.
    Unavailable {
        /// Inbox row of the message.
        inbox_id: i64,
        /// Why.
        reason: String,
    },
}

/// What a reply carries besides its text, for the OpenAI-compatible API. Kept with the
/// answered inbox entry ([`ReplyExtra::encode`]) so a retry gets it again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ReplyExtra {
    /// The person stopped the reply: the text is what had streamed until then.
    pub stopped: bool,
    /// Tokens the turn's model calls read and wrote, as the provider counted them.
    pub usage: Option<(u64, u64)>,
    /// Calls of the caller's own tools: the turn ended for the caller to run them.
    pub tool_calls: Vec<CallerCall>,
    /// The answer stopped at the model's output cap (OpenAI's `finish_reason: "length"`).
    pub cut: bool,
}

impl ReplyExtra {
    /// As stored with the inbox entry (MessagePack; fields by name, so new ones can come).
    pub fn encode(&self) -> Option<Vec<u8>> {
        rmp_serde::to_vec_named(self).ok()
    }

    /// What [`encode`](Self::encode) stored; `None` for nothing or what cannot be read
    /// (the reply's text is still there).
    pub fn decode(bytes: Option<&[u8]>) -> Option<Box<ReplyExtra>> {
        rmp_serde::from_slice(bytes?).ok().map(Box::new)
    }
}

/// A call of a caller's tool, as the model made it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallerCall {
    /// The model's id of the call.
    pub id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, a JSON text.
    pub arguments: String,
}

/// A message of the gateway in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// What it says, in full (channels without buttons show this).
    pub text: String,
    /// The question it asks, for channels that offer buttons.
    pub approval: Option<ApprovalPrompt>,
}

/// A question before a tool acts, answered with `/approve <id> once | always | deny`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPrompt {
    /// The question's id.
    pub id: String,
    /// The tool asking.
    pub tool: String,
    /// What it wants to do.
    pub action: String,
}

/// The most of a call's arguments a [`Step`] carries.
pub const STEP_ARGUMENTS_CHARS: usize = 300;

/// A tool call as a chat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its number in the turn, from 1.
    pub n: u32,
    /// The tool.
    pub tool: String,
    /// What a chat says while it runs ("Searching the web…").
    pub status: String,
    /// A short detail ("example.org").
    pub summary: String,
    /// Its arguments, cut to [`STEP_ARGUMENTS_CHARS`].
    pub arguments: String,
    /// Once it has ended: whether it succeeded, and how long it took in ms.
    pub end: Option<(bool, u64)>,
}

impl Delivery {
    /// Bytes of text it carries.
    fn size(&self) -> usize {
        match self {
            Self::Delta { text, .. } => text.len(),
            Self::Step { step, .. } => {
                step.tool.len() + step.status.len() + step.summary.len() + step.arguments.len()
            }
            Self::Done { reply, .. } => reply.len(),
            Self::Notice { notice, .. } => notice.text.len(),
            Self::Refused { reason, .. } | Self::Unavailable { reason, .. } => reason.len(),
        }
    }
}

/// Who took a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandedTo {
    /// A waiter (web chat, HTTP API): it is delivered.
    Waiter,
    /// The push sink: the link marks it delivered once sent.
    Sink,
    /// No one: it stays undelivered in the store.
    Nobody,
}

/// The waiters of one account.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: AtomicU64,
    waiters: Mutex<HashMap<String, Vec<Entry>>>,
    sink: Mutex<Option<mpsc::Sender<Push>>>,
}

/// A delivery for a push channel's link.
#[derive(Debug, Clone)]
pub struct Push {
    /// Inbox row of the message answered.
    pub inbox_id: i64,
    /// The message answered (where the reply goes).
    pub inbound: Arc<Inbound>,
    /// The delivery.
    pub delivery: Delivery,
}

/// One waiter: its id (to forget it on drop) and its mailbox.
type Entry = (u64, Arc<Mailbox>);

/// What a waiter has not taken yet, bounded by [`MAX_WAITER_BYTES`] of deltas.
#[derive(Debug, Default)]
struct Mailbox {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Delivery>,
    bytes: usize,
    /// Deltas were dropped: later ones are too (they would not join up), until the end.
    skipping: bool,
}

/// Receives the deliveries of one upstream id; stops waiting when dropped.
#[derive(Debug)]
pub struct Waiter {
    outbox: Outbox,
    key: String,
    id: u64,
    mailbox: Arc<Mailbox>,
}

// === impl Outbox ===

impl Outbox {
    /// Waits for the deliveries of `upstream_id`.
    pub fn wait(&self, upstream_id: &str) -> Waiter {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mailbox = Arc::new(Mailbox::default());
        self.inner
            .waiters
            .lock()
            .entry(upstream_id.to_string())
            .or_default()
            .push((id, mailbox.clone()));
        Waiter {
            outbox: self.clone(),
            key: upstream_id.to_string(),
            id,
            mailbox,
        }
    }

    /// Hands `delivery` to the waiters of `upstream_id`; returns how many took it.
    pub fn deliver(&self, upstream_id: &str, delivery: Delivery) -> usize {
        let mut waiters = self.inner.waiters.lock();
        let Some(list) = waiters.get_mut(upstream_id) else {
            return 0;
        };
        for (_, mailbox) in list.iter() {
            mailbox.put(delivery.clone());
        }
        list.len()
    }

    /// Attaches a push sink (replacing any earlier one): deliveries no waiter takes go to
    /// the returned receiver until it is dropped, at most [`SINK_CAPACITY`] at a time.
    pub fn attach(&self) -> mpsc::Receiver<Push> {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        *self.inner.sink.lock() = Some(tx);
        rx
    }

    /// Whether a push sink is attached and open.
    pub fn has_sink(&self) -> bool {
        self.inner
            .sink
            .lock()
            .as_ref()
            .is_some_and(|s| !s.is_closed())
    }

    /// Hands `delivery` for `inbound` to its waiters, or else to the push sink. Returns
    /// whether anyone took it, and whether that was a waiter (whose delivery is then done).
    pub fn hand_over(&self, inbox_id: i64, inbound: &Inbound, delivery: Delivery) -> HandedTo {
        if self.deliver(&inbound.upstream_id, delivery.clone()) > 0 {
            return HandedTo::Waiter;
        }
        let sink = self.inner.sink.lock();
        let push = Push {
            inbox_id,
            inbound: Arc::new(inbound.clone()),
            delivery,
        };
        // A full sink drops a delta (the reply comes whole at the end) and leaves a reply
        // undelivered in the store, where the link's redelivery finds it.
        match sink.as_ref().map(|s| s.try_send(push)) {
            Some(Ok(())) => HandedTo::Sink,
            _ => HandedTo::Nobody,
        }
    }

    /// How many upstream ids have waiters.
    pub fn len(&self) -> usize {
        self.inner.waiters.lock().len()
    }

    /// Whether no one waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn forget(&self, key: &str, id: u64) {
        let mut waiters = self.inner.waiters.lock();
        if let Some(list) = waiters.get_mut(key) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                waiters.remove(key);
            }
        }
    }
}

// === impl Mailbox ===

impl Mailbox {
    fn put(&self, delivery: Delivery) {
        {
            let mut queue = self.queue.lock();
            if let Delivery::Delta { .. } | Delivery::Step { .. } = delivery {
                if queue.skipping || queue.bytes + delivery.size() > MAX_WAITER_BYTES {
                    queue.skipping = true;
                    return;
                }
            } else {
                queue.skipping = false;
            }
            queue.bytes += delivery.size();
            queue.items.push_back(delivery);
        }
        self.ready.notify_one();
    }

    fn take(&self) -> Option<Delivery> {
        let mut queue = self.queue.lock();
        let delivery = queue.items.pop_front()?;
        queue.bytes -= delivery.size();
        Some(delivery)
    }
}

// === impl Waiter ===

impl Waiter {
    /// The next delivery (waits for it).
    pub async fn recv(&mut self) -> Delivery {
        loop {
            if let Some(delivery) = self.mailbox.take() {
                return delivery;
            }
            // `notify_one` keeps a permit when no one waits: a put between `take` and
            // here is not missed.
            self.mailbox.ready.notified().await;
        }
    }

    /// The next delivery, or the reply found in the store when none came for a while.
    pub async fn next_or_stored(
        &mut self,
        store: &Store,
        channel: &str,
        account: &str,
    ) -> Delivery {
        loop {
            match tokio::time::timeout(STORE_CHECK, self.recv()).await {
                Ok(delivery) => return delivery,
                Err(_) => {
                    let found = store.inbox_by_upstream(channel, account, &self.key).await;
                    if let Ok(Some(entry)) = found
                        && entry.state != InboxState::Pending
                    {
                        let (store, id) = (store.clone(), entry.id);
                        tokio::spawn(async move {
                            let _ = store.mark_delivered(id).await;
                        });
                        return Delivery::Done {
                            inbox_id: entry.id,
                            extra: ReplyExtra::decode(entry.reply_extra.as_deref()),
                            reply: entry.reply.unwrap_or_default(),
                            failed: false,
                        };
                    }
                }
            }
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.outbox.forget(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_waiter_registered_before_the_reply_gets_it_and_is_forgotten_on_drop() {
        let outbox = Outbox::default();
        let mut w = outbox.wait("u1");
        let done = Delivery::Done {
            inbox_id: 1,
            reply: "hi".into(),
            failed: false,
            extra: None,
        };
        assert_eq!(outbox.deliver("u1", done.clone()), 1);
        assert_eq!(w.recv().await, done);
        drop(w);
        assert!(outbox.is_empty());
        assert_eq!(
            outbox.deliver(
                "u1",
                Delivery::Delta {
                    attempt: 1,
                    text: "x".into()
                }
            ),
            0
        );
    }

    #[tokio::test]
    async fn a_waiter_that_is_not_read_holds_a_bounded_amount_and_still_gets_the_end() {
        let outbox = Outbox::default();
        let mut w = outbox.wait("slow");
        let piece = "x".repeat(1024);
        for _ in 0..2 * MAX_WAITER_BYTES / 1024 {
            outbox.deliver(
                "slow",
                Delivery::Delta {
                    attempt: 1,
                    text: piece.clone(),
                },
            );
        }
        let held = w.mailbox.queue.lock().bytes;
        assert!(held <= MAX_WAITER_BYTES, "holds {held} bytes");
        let done = Delivery::Done {
            inbox_id: 7,
            reply: "the whole reply".into(),
            failed: false,
            extra: None,
        };
        outbox.deliver("slow", done.clone());
        let mut deltas = 0;
        loop {
            match w.recv().await {
                Delivery::Delta { .. } => deltas += 1,
                other => {
                    assert_eq!(other, done);
                    break;
                }
            }
        }
        assert_eq!(
            deltas,
            MAX_WAITER_BYTES / 1024,
            "the deltas that fit, in order, then the end"
        );
    }

    #[tokio::test]
    async fn a_reply_committed_but_never_handed_over_is_found_in_the_store() {
        use pincer_core::{Inbound, PeerRef, now_ms};
        use pincer_store::CommitTurn;
        let dir = std::env::temp_dir().join(format!("pincer-outbox-{}", uuid::Uuid::new_v4()));
        let store = Store::new(dir.join("pincer.db"));
        let writer = store.start_writer().expect("writer");
        let inbound = Inbound {
            channel: "http".into(),
            account: "http".into(),
            upstream_id: "idem:k".into(),
            peer: PeerRef {
                kind: "user".into(),
                id: "u".into(),
            },
            thread: None,
            guild: None,
            team: None,
            agent: None,
            topic: None,
            text: "hi".into(),
            received_at_ms: now_ms(),
            sender: None,
            fingerprint: None,
            api: None,
        };
        let outbox = Outbox::default();
        let mut waiter = outbox.wait("idem:k");
        let accepted = store.accept(inbound).await.expect("accept");
        // The session commits, then dies before `deliver`.
        store
            .commit_turn(CommitTurn {
                inbox_id: Some(accepted.id),
                session: None,
                entries: Vec::new(),
                reply: Some("echo: hi".into()),
                reply_extra: None,
            })
            .await
            .expect("commit");
        let delivery = tokio::time::timeout(
            Duration::from_secs(5),
            waiter.next_or_stored(&store, "http", "http"),
        )
        .await
        .expect("found within a few seconds");
        assert_eq!(
            delivery,
            Delivery::Done {
                inbox_id: accepted.id,
                reply: "echo: hi".into(),
                failed: false,
                extra: None,
            }
        );
        store.stop_writer();
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
