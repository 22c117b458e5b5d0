//! Replies on their way out: waiters keyed by upstream id, and the sink of a push channel.
//!
//! Keyed by upstream id (not inbox id) so a caller can wait *before* its message is
//! accepted: a reply that comes back faster than the accept's answer is not missed.
//!
//! Telegram and Discord have no caller waiting: their link attaches a sink, and whatever
//! no waiter takes goes there as a [`Push`] with the message it answers (the link needs
//! its chat and thread to reply). A reply the sink did not take stays "answered, not
//! delivered" in the store, and the link sends it when it is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

use pincer_core::Inbound;
use pincer_store::{InboxState, Store};

/// How long a waiter waits for a delivery before it asks the store: a session that died
/// between committing a reply and handing it over leaves the reply only there.
const STORE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// The whole reply, as committed. The last delivery for a message.
    Done {
        /// Inbox row of the message.
        inbox_id: i64,
        /// The reply text.
        reply: String,
        /// The reply reports a failure (no model answered).
        failed: bool,
    },
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
    sink: Mutex<Option<mpsc::UnboundedSender<Push>>>,
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

/// One waiter: its id (to forget it on drop) and its channel.
type Entry = (u64, mpsc::UnboundedSender<Delivery>);

/// Receives the deliveries of one upstream id; stops waiting when dropped.
#[derive(Debug)]
pub struct Waiter {
    outbox: Outbox,
    key: String,
    id: u64,
    rx: mpsc::UnboundedReceiver<Delivery>,
}

// === impl Outbox ===

impl Outbox {
    /// Waits for the deliveries of `upstream_id`.
    pub fn wait(&self, upstream_id: &str) -> Waiter {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .waiters
            .lock()
            .entry(upstream_id.to_string())
            .or_default()
            .push((id, tx));
        Waiter {
            outbox: self.clone(),
            key: upstream_id.to_string(),
            id,
            rx,
        }
    }

    /// Hands `delivery` to the waiters of `upstream_id`; returns how many took it.
    pub fn deliver(&self, upstream_id: &str, delivery: Delivery) -> usize {
        let mut waiters = self.inner.waiters.lock();
        let Some(list) = waiters.get_mut(upstream_id) else {
            return 0;
        };
        list.retain(|(_, tx)| tx.send(delivery.clone()).is_ok());
        let taken = list.len();
        if list.is_empty() {
            waiters.remove(upstream_id);
        }
        taken
    }

    /// Attaches a push sink (replacing any earlier one): deliveries no waiter takes go to
    /// the returned receiver until it is dropped.
    pub fn attach(&self) -> mpsc::UnboundedReceiver<Push> {
        let (tx, rx) = mpsc::unbounded_channel();
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
        match sink.as_ref().map(|s| s.send(push)) {
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

// === impl Waiter ===

impl Waiter {
    /// The next delivery, or the reply found in the store when none came for a while.
    pub async fn next_or_stored(
        &mut self,
        store: &Store,
        channel: &str,
        account: &str,
    ) -> Delivery {
        loop {
            match tokio::time::timeout(STORE_CHECK, self.rx.recv()).await {
                Ok(Some(delivery)) => return delivery,
                Ok(None) => std::future::pending::<()>().await,
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
        };
        assert_eq!(outbox.deliver("u1", done.clone()), 1);
        assert_eq!(w.rx.recv().await, Some(done));
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
            fingerprint: None,
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
                failed: false
            }
        );
        store.stop_writer();
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
