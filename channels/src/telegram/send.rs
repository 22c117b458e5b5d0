//! Replies to Telegram: `sendMessage` in parts of at most 4096 characters, previews of a
//! streaming reply (`sendMessageDraft` in private chats where the server has it, else a
//! message edited with `editMessageText`), the typing action, each paced per chat and per
//! bot, with `retry_after` honoured on 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::api::{Api, ApiError};
use crate::pace::{Pacer, Rate};
use crate::push::{Draft, SendError, Upstream};
use crate::split;
use pincer_core::Inbound;

/// Telegram's limit on a message's text.
pub const MAX_TEXT: usize = 4096;

/// "About one message per second" in a chat, with a small burst.
const CHAT_RATE: Rate = Rate {
    burst: 3,
    per: Duration::from_secs(1),
};

/// "About 20 messages per minute" in a group.
const GROUP_RATE: Rate = Rate {
    burst: 3,
    per: Duration::from_secs(3),
};

/// "About 30 messages per second" for the bot.
const BOT_RATE: Rate = Rate {
    burst: 30,
    per: Duration::from_millis(34),
};

/// How long one send call may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// 429s in a row before a reply is left for the redelivery sweep.
const MAX_RATE_LIMITED: u32 = 5;

/// Tries of a send that failed on the network or with a 5xx.
const MAX_TRANSIENT: u32 = 3;

/// The sending side of one bot.
#[derive(Debug, Clone)]
pub struct Sender {
    api: Api,
    pacer: Arc<Pacer>,
    /// Cleared when the server has no `sendMessageDraft` (an older local Bot API server).
    drafts: Arc<AtomicBool>,
    preview_every: Duration,
}

/// Where a reply goes, read back from the message it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Chat id.
    pub chat: i64,
    /// Topic (forum or DM topic).
    pub thread: Option<i64>,
    /// The message answered.
    pub message: Option<i64>,
    /// A private chat.
    pub private: bool,
}

// === impl Target ===

impl Target {
    /// The target of a reply to `inbound` (upstream id `<chat>:<message>`).
    pub fn of(inbound: &Inbound) -> Option<Target> {
        let (chat, message) = inbound.upstream_id.split_once(':')?;
        Some(Target {
            chat: chat.parse().ok()?,
            message: message.parse().ok(),
            thread: inbound.thread.as_deref().and_then(|t| t.parse().ok()),
            private: inbound.peer.kind == "dm",
        })
    }

    fn rate(&self) -> Rate {
        if self.private { CHAT_RATE } else { GROUP_RATE }
    }

    fn lane(&self) -> String {
        self.chat.to_string()
    }

    fn base(&self) -> serde_json::Map<String, Value> {
        let mut body = serde_json::Map::new();
        body.insert("chat_id".into(), json!(self.chat));
        if let Some(thread) = self.thread {
            body.insert("message_thread_id".into(), json!(thread));
        }
        body
    }
}

// === impl Sender ===

impl Sender {
    /// A sender over `api`, showing previews at most every `preview_every`.
    pub fn new(api: Api, preview_every: Duration) -> Self {
        Self {
            api,
            pacer: Arc::new(Pacer::new(BOT_RATE)),
            drafts: Arc::new(AtomicBool::new(true)),
            preview_every,
        }
    }

    /// Sends `text` (split if long) to `to`, the first part as a reply to its message.
    /// Returns the id of the first message sent.
    pub async fn send(&self, to: Target, text: &str) -> Result<Option<i64>, SendError> {
        let parts = split::split(text, MAX_TEXT);
        let parts = if parts.is_empty() {
            vec!["(empty reply)".to_string()]
        } else {
            parts
        };
        let mut first = None;
        for (i, part) in parts.iter().enumerate() {
            let id = self.send_one(to, part, i == 0).await?;
            first = first.or(id);
        }
        Ok(first)
    }

    async fn send_one(
        &self,
        to: Target,
        text: &str,
        reply: bool,
    ) -> Result<Option<i64>, SendError> {
        let mut body = to.base();
        body.insert("text".into(), json!(text));
        if reply && let Some(message) = to.message {
            body.insert(
                "reply_parameters".into(),
                json!({"message_id": message, "allow_sending_without_reply": true}),
            );
        }
        let sent = self
            .call(to, "sendMessage", Value::Object(body), true)
            .await?;
        Ok(sent.get("message_id").and_then(Value::as_i64))
    }

    /// Shows "typing…" in `to` (best effort, not paced: it is no message).
    pub async fn typing(&self, to: Target) {
        let mut body = to.base();
        body.insert("action".into(), json!("typing"));
        let _ = self
            .api
            .call("sendChatAction", &Value::Object(body), SEND_TIMEOUT)
            .await;
    }

    /// One paced call, honouring 429 `retry_after` and trying transient failures again.
    /// `wait` = false skips the call (`Ok(Null)`) when the chat is short of rate.
    async fn call(
        &self,
        to: Target,
        method: &'static str,
        body: Value,
        wait: bool,
    ) -> Result<Value, SendError> {
        let (mut limited, mut failed) = (0, 0);
        loop {
            if wait {
                self.pacer.wait(&to.lane(), to.rate()).await;
            } else if !self.pacer.try_take(&to.lane(), to.rate()) {
                return Ok(Value::Null);
            }
            match self.api.call(method, &body, SEND_TIMEOUT).await {
                Ok(result) => return Ok(result),
                Err(ApiError::Refused {
                    code: 429,
                    retry_after,
                    ..
                }) => {
                    let after = retry_after.unwrap_or(Duration::from_secs(1));
                    self.pacer.pause(Some(&to.lane()), to.rate(), after);
                    limited += 1;
                    if limited >= MAX_RATE_LIMITED || !wait {
                        return Err(SendError::Transient(format!(
                            "{method}: rate limited {limited} times (retry after {}s)",
                            after.as_secs()
                        )));
                    }
                }
                Err(e) if e.code().is_some_and(|c| c < 500) => {
                    return Err(SendError::Permanent(e.to_string()));
                }
                Err(e) => {
                    failed += 1;
                    if failed >= MAX_TRANSIENT {
                        return Err(SendError::Transient(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(500) * failed).await;
                }
            }
        }
    }

    async fn edit(
        &self,
        to: Target,
        message_id: &str,
        text: &str,
        wait: bool,
    ) -> Result<(), SendError> {
        let mut body = to.base();
        body.remove("message_thread_id");
        body.insert(
            "message_id".into(),
            json!(message_id.parse::<i64>().unwrap_or(0)),
        );
        body.insert("text".into(), json!(text));
        match self
            .call(to, "editMessageText", Value::Object(body), wait)
            .await
        {
            Err(SendError::Permanent(e)) if e.contains("message is not modified") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

impl Upstream for Sender {
    fn lane(&self, inbound: &Inbound) -> String {
        Target::of(inbound).map_or_else(|| inbound.peer.id.clone(), |t| t.lane())
    }

    fn preview_interval(&self, inbound: &Inbound) -> Option<Duration> {
        let to = Target::of(inbound)?;
        Some(if to.private {
            self.preview_every
        } else {
            self.preview_every.max(GROUP_RATE.per)
        })
    }

    async fn typing(&self, inbound: &Inbound) {
        if let Some(to) = Target::of(inbound) {
            Sender::typing(self, to).await;
        }
    }

    async fn notice(&self, inbound: &Inbound, text: &str) -> Result<(), SendError> {
        match Target::of(inbound) {
            Some(to) => self.send(to, text).await.map(|_| ()),
            None => Err(SendError::Permanent(format!(
                "cannot tell the chat of `{}`",
                inbound.upstream_id
            ))),
        }
    }

    async fn preview(&self, inbound: &Inbound, draft: &mut Draft) -> Result<(), SendError> {
        let Some(to) = Target::of(inbound) else {
            return Ok(());
        };
        let shown = draft.shown_text();
        let text = split::split(&shown, MAX_TEXT)
            .into_iter()
            .next()
            .unwrap_or_default();
        if to.private && draft.message_id.is_none() && self.drafts.load(Ordering::Relaxed) {
            let mut body = to.base();
            body.insert("draft_id".into(), json!(draft.inbox_id.max(1)));
            body.insert("text".into(), json!(text));
            match self
                .call(to, "sendMessageDraft", Value::Object(body), false)
                .await
            {
                Ok(_) => {
                    draft.shown = shown;
                    return Ok(());
                }
                // An older server: previews by edits from now on.
                Err(SendError::Permanent(e)) if e.contains("404") || e.contains("method") => {
                    self.drafts.store(false, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        match &draft.message_id {
            Some(id) => self.edit(to, id, &text, false).await?,
            None => {
                let mut body = to.base();
                body.insert("text".into(), json!(text));
                if let Some(message) = to.message {
                    body.insert(
                        "reply_parameters".into(),
                        json!({"message_id": message, "allow_sending_without_reply": true}),
                    );
                }
                let sent = self
                    .call(to, "sendMessage", Value::Object(body), false)
                    .await?;
                draft.message_id = sent
                    .get("message_id")
                    .and_then(Value::as_i64)
                    .map(|id| id.to_string());
            }
        }
        draft.shown = shown;
        Ok(())
    }

    async fn finish(
        &self,
        inbound: &Inbound,
        draft: &mut Draft,
        reply: &str,
    ) -> Result<(), SendError> {
        let Some(to) = Target::of(inbound) else {
            return Err(SendError::Permanent(format!(
                "cannot tell the chat of `{}`",
                inbound.upstream_id
            )));
        };
        let Some(preview) = draft.message_id.clone() else {
            return self.send(to, reply).await.map(|_| ());
        };
        // The preview message becomes the first part; the rest follow.
        let mut parts = split::split(reply, MAX_TEXT).into_iter();
        let first = parts.next().unwrap_or_else(|| "(empty reply)".into());
        self.edit(to, &preview, &first, true).await?;
        for part in parts {
            self.send_one(to, &part, false).await?;
        }
        Ok(())
    }
}
