//! What one web socket has yet to send, bounded.
//!
//! The page may read slowly or not at all. Frames wait here, at most [`MAX_QUEUED_BYTES`]
//! and [`MAX_QUEUED_FRAMES`] of them; while the page is behind, the deltas of one reply
//! merge into one frame, and a reply's end (`done`, `error`, `restart`) drops its deltas
//! still waiting, since it carries or replaces their text. A page that falls further
//! behind than the bounds is closed (1013, try again later): its messages are answered all
//! the same, and the page gets the replies when it reconnects and resends them.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Bytes a socket may have waiting to be sent.
pub(super) const MAX_QUEUED_BYTES: usize = 1024 * 1024;

/// Frames a socket may have waiting to be sent.
pub(super) const MAX_QUEUED_FRAMES: usize = 1024;

/// The frames a socket has yet to send.
#[derive(Debug, Default)]
pub(super) struct Outbound {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Item>,
    bytes: usize,
    /// Why the socket must close: it fell too far behind.
    behind: Option<String>,
}

#[derive(Debug)]
enum Item {
    /// A frame, as sent.
    Frame { id: Option<String>, text: String },
    /// Text of a reply, merged with what came after it while it waited.
    Delta { id: String, text: String },
}

impl Outbound {
    /// Queues a frame about no message in particular.
    pub(super) fn frame(&self, frame: &Value) {
        self.push(Item::Frame {
            id: None,
            text: frame.to_string(),
        });
    }

    /// Queues a frame already in its text form.
    pub(super) fn text(&self, text: String) {
        self.push(Item::Frame { id: None, text });
    }

    /// Queues a frame that ends or restarts message `id`'s reply (it carries the whole
    /// text, an error, or starts over): the reply's deltas still waiting are dropped.
    pub(super) fn end(&self, id: &str, frame: &Value) {
        {
            let mut queue = self.queue.lock();
            let before = queue.items.len();
            queue
                .items
                .retain(|item| !matches!(item, Item::Delta { id: d, .. } if d == id));
            if queue.items.len() != before {
                queue.recount();
            }
        }
        self.push(Item::Frame {
            id: Some(id.to_string()),
            text: frame.to_string(),
        });
    }

    /// Queues a frame about message `id` that does not end its reply (`accepted`).
    pub(super) fn about(&self, id: &str, frame: &Value) {
        self.push(Item::Frame {
            id: Some(id.to_string()),
            text: frame.to_string(),
        });
    }

    /// Queues text of message `id`'s reply, merged into its last delta if that is still
    /// waiting and nothing about `id` came after it.
    pub(super) fn delta(&self, id: &str, text: &str) {
        {
            let mut queue = self.queue.lock();
            if queue.behind.is_some() {
                return;
            }
            let last = queue.items.iter().rposition(|item| item.is_about(id));
            if let Some(Item::Delta { text: waiting, .. }) =
                last.and_then(|at| queue.items.get_mut(at))
            {
                waiting.push_str(text);
                queue.bytes += text.len();
                queue.check();
                drop(queue);
                self.ready.notify_one();
                return;
            }
        }
        self.push(Item::Delta {
            id: id.to_string(),
            text: text.to_string(),
        });
    }

    /// The next frame to send, as text.
    pub(super) fn take(&self) -> Option<String> {
        let mut queue = self.queue.lock();
        let item = queue.items.pop_front()?;
        queue.bytes -= item.size();
        Some(match item {
            Item::Frame { text, .. } => text,
            Item::Delta { id, text } => {
                json!({"type": "delta", "id": id, "text": text}).to_string()
            }
        })
    }

    /// Why the socket must close, once it fell too far behind.
    pub(super) fn behind(&self) -> Option<String> {
        self.queue.lock().behind.clone()
    }

    /// Waits until there may be something to take (or the socket fell behind).
    pub(super) async fn ready(&self) {
        self.ready.notified().await;
    }

    fn push(&self, item: Item) {
        {
            let mut queue = self.queue.lock();
            if queue.behind.is_some() {
                return;
            }
            queue.bytes += item.size();
            queue.items.push_back(item);
            queue.check();
        }
        self.ready.notify_one();
    }
}

// === impl Queue ===

impl Queue {
    fn recount(&mut self) {
        self.bytes = self.items.iter().map(Item::size).sum();
    }

    /// Past a bound, the queue is dropped and the socket marked for closing.
    fn check(&mut self) {
        if self.bytes > MAX_QUEUED_BYTES || self.items.len() > MAX_QUEUED_FRAMES {
            self.behind = Some(format!(
                "the page fell behind: {} frames, {} kB waiting",
                self.items.len(),
                self.bytes / 1024
            ));
            self.items.clear();
            self.bytes = 0;
        }
    }
}

// === impl Item ===

impl Item {
    fn is_about(&self, id: &str) -> bool {
        match self {
            Item::Frame { id: Some(i), .. } | Item::Delta { id: i, .. } => i == id,
            Item::Frame { id: None, .. } => false,
        }
    }

    fn size(&self) -> usize {
        match self {
            Item::Frame { text, .. } => text.len(),
            Item::Delta { id, text } => id.len() + text.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &Outbound) -> Vec<Value> {
        std::iter::from_fn(|| out.take())
            .map(|t| serde_json::from_str(&t).expect("json"))
            .collect()
    }

    #[test]
    fn deltas_merge_while_waiting_and_an_end_drops_them() {
        let out = Outbound::default();
        out.about("a", &json!({"type": "accepted", "id": "a"}));
        out.delta("a", "one ");
        out.delta("b", "x");
        out.delta("a", "two");
        let frames = drain(&out);
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(
            frames[1],
            json!({"type": "delta", "id": "a", "text": "one two"})
        );
        assert_eq!(frames[2], json!({"type": "delta", "id": "b", "text": "x"}));

        out.delta("a", "three");
        out.end(
            "a",
            &json!({"type": "done", "id": "a", "text": "one two three"}),
        );
        let frames = drain(&out);
        assert_eq!(
            frames,
            [json!({"type": "done", "id": "a", "text": "one two three"})]
        );
        assert_eq!(out.queue.lock().bytes, 0);
    }

    #[test]
    fn a_delta_after_a_frame_about_its_message_is_not_merged_before_it() {
        let out = Outbound::default();
        out.delta("a", "old");
        out.end("a", &json!({"type": "restart", "id": "a"}));
        out.delta("a", "new");
        let frames = drain(&out);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0]["type"], "restart");
        assert_eq!(frames[1]["text"], "new");
    }

    #[test]
    fn a_page_that_falls_behind_is_marked_and_its_queue_dropped() {
        let out = Outbound::default();
        let chunk = "z".repeat(64 * 1024);
        for _ in 1..MAX_QUEUED_BYTES / chunk.len() {
            out.delta("a", &chunk);
            assert!(out.behind().is_none());
        }
        out.delta("a", &chunk);
        out.delta("a", &chunk);
        let why = out.behind().expect("behind");
        assert!(why.contains("fell behind"), "{why}");
        assert!(out.take().is_none());
        out.frame(&json!({"type": "tree"}));
        assert!(out.take().is_none(), "nothing more is queued");

        let out = Outbound::default();
        for i in 0..=MAX_QUEUED_FRAMES {
            out.about(&format!("m{i}"), &json!({"type": "accepted"}));
        }
        assert!(out.behind().is_some());
    }
}
