//! Dispatches in: MESSAGE_CREATE becomes an inbox entry (a DM, a guild channel, or a
//! thread of a channel: a session per thread), THREAD_CREATE teaches which channel a
//! thread belongs to (remembered in the store, for parent-peer bindings after a restart).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use pincer_channels::discord::rest::Rest;
use pincer_channels::discord::socket::Dispatch;

use crate::channel::{IntakeError, LinkCtx};
use pincer_core::{Inbound, PeerRef, now_ms};

/// Everything a dispatch needs from its link.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) link: LinkCtx,
    pub(crate) account: String,
    pub(crate) rest: Arc<Rest>,
    /// Thread id → parent channel id, learned from THREAD_CREATE.
    threads: Mutex<HashMap<String, String>>,
}

// === impl Ctx ===

impl Ctx {
    pub(crate) fn new(link: LinkCtx, rest: Arc<Rest>) -> Self {
        Self {
            account: link.account.clone(),
            link,
            rest,
            threads: Mutex::default(),
        }
    }

    /// THREAD_CREATE: remembers the thread's parent.
    pub(crate) async fn on_thread(&self, d: &Value) {
        let (Some(id), Some(parent)) = (
            d.get("id").and_then(Value::as_str),
            d.get("parent_id").and_then(Value::as_str),
        ) else {
            return;
        };
        self.threads
            .lock()
            .insert(id.to_string(), parent.to_string());
        let key = format!("thread:{id}");
        if let Err(error) = self
            .link
            .store
            .put_meta(&self.account, &key, Some(parent.to_string()))
            .await
        {
            tracing::warn!(account = %self.account, %error, "Cannot remember a thread's parent.");
        }
    }

    /// MESSAGE_CREATE: into the inbox unless it is the bot's own or another bot's. An
    /// error means nothing was written.
    pub(crate) async fn on_message(&self, d: &Value, bot_id: &str) -> Result<(), IntakeError> {
        let author = d.get("author");
        let author_id = author
            .and_then(|a| a.get("id"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let from_bot = author.and_then(|a| a.get("bot")).and_then(Value::as_bool) == Some(true);
        if from_bot || author_id == bot_id {
            return Ok(());
        }
        let (Some(channel), Some(id)) = (
            d.get("channel_id").and_then(Value::as_str),
            d.get("id").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let text = strip_mention(
            d.get("content").and_then(Value::as_str).unwrap_or(""),
            bot_id,
        );
        if text.is_empty() {
            return Ok(());
        }
        let guild = d
            .get("guild_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let (peer, thread) = match &guild {
            None => (
                PeerRef {
                    kind: "dm".into(),
                    id: author_id.to_string(),
                },
                None,
            ),
            Some(_) => match self.parent_of(channel).await {
                Some(parent) => (
                    PeerRef {
                        kind: "channel".into(),
                        id: parent,
                    },
                    Some(channel.to_string()),
                ),
                None => (
                    PeerRef {
                        kind: "channel".into(),
                        id: channel.to_string(),
                    },
                    None,
                ),
            },
        };
        let inbound = Inbound {
            channel: "discord".into(),
            account: self.account.clone(),
            upstream_id: format!("{channel}:{id}"),
            peer,
            thread,
            guild,
            team: None,
            agent: None,
            topic: None,
            text,
            received_at_ms: now_ms(),
            sender: (!author_id.is_empty()).then(|| author_id.to_string()),
            fingerprint: None,
            api: None,
        };
        let accepted = self.link.intake.take(inbound).await?;
        if !accepted.duplicate {
            let (rest, channel) = (self.rest.clone(), channel.to_string());
            tokio::spawn(async move { rest.typing(&channel).await });
        }
        Ok(())
    }

    async fn parent_of(&self, channel: &str) -> Option<String> {
        if let Some(parent) = self.threads.lock().get(channel) {
            return Some(parent.clone());
        }
        let key = format!("thread:{channel}");
        let parent = self.link.store.meta(&self.account, &key).await.ok()??;
        self.threads
            .lock()
            .insert(channel.to_string(), parent.clone());
        Some(parent)
    }
}

impl Dispatch for Ctx {
    async fn on_message(&self, d: &Value, bot_id: &str) -> Result<(), String> {
        Ctx::on_message(self, d, bot_id)
            .await
            .map_err(|e| e.to_string())
    }

    async fn on_thread(&self, d: &Value) {
        Ctx::on_thread(self, d).await;
    }
}

/// The content without the bot's mention (`<@id>` or `<@!id>`).
fn strip_mention(content: &str, bot_id: &str) -> String {
    content
        .replace(&format!("<@{bot_id}>"), "")
        .replace(&format!("<@!{bot_id}>"), "")
        .trim()
        .to_string()
}
