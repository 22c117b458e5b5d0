//! Replies on their way out: waiters keyed by upstream id.
//!
//! Keyed by upstream id (not inbox id) so a caller can wait *before* its message is
//! accepted: a reply that comes back faster than the accept's answer is not missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::mpsc;

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

/// The waiters of one account.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: AtomicU64,
    waiters: Mutex<HashMap<String, Vec<Entry>>>,
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
    /// The next delivery; `None` never happens while the outbox lives.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.outbox.forget(&self.key, self.id);
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(w.next().await, Some(done));
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
}
