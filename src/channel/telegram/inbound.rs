//! One Telegram update in: what it is (a message, a topic being named, something else),
//! who may talk (the DM policy, pairing, `requireTopic`, `requireMention`), which topic
//! config applies, and the inbox entry it becomes.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde_json::Value;

use pincer_channels::pairing::{self, Verdict};
use pincer_channels::telegram::send::{Sender, Target};

use crate::channel::{IntakeError, LinkCtx};
use pincer_config::{DmPolicy, TelegramConfig};
use pincer_core::{Inbound, PeerRef, now_ms};

/// Sent to a DM without a topic when `requireTopic` is set.
pub const NEEDS_TOPIC: &str = "Please write in a topic: this bot answers DMs only inside topics. \
     Open the chat menu and create or pick one.";

/// Everything an update needs from its link.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The account's link context.
    pub(crate) link: LinkCtx,
    /// Account id.
    pub(crate) account: String,
    /// The bot's user id.
    pub(crate) bot_id: i64,
    /// The bot's username (without `@`).
    pub(crate) bot_username: String,
    /// Sends replies.
    pub(crate) sender: Sender,
    /// Topic names learned, by (chat, thread); the store has them too.
    topics: Mutex<HashMap<(i64, i64), String>>,
}

/// What became of an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written to the inbox (or already there).
    Taken,
    /// Answered by the link itself (a pairing code, a request for a topic); no turn.
    Answered,
    /// Not for an agent (a service message, a bot, another kind of update, no mention).
    Ignored(&'static str),
}

// === impl Ctx ===

impl Ctx {
    /// A context for `account`'s bot.
    pub(crate) fn new(link: LinkCtx, bot_id: i64, bot_username: String, sender: Sender) -> Self {
        Self {
            account: link.account.clone(),
            link,
            bot_id,
            bot_username,
            sender,
            topics: Mutex::default(),
        }
    }

    /// Takes one update in. An error means nothing was written: do not confirm it.
    pub(crate) async fn on_update(&self, update: &Value) -> Result<Outcome, IntakeError> {
        let Some(msg) = update.get("message") else {
            return Ok(Outcome::Ignored("not a message"));
        };
        let from = msg.get("from");
        if from.and_then(|f| f.get("is_bot")).and_then(Value::as_bool) == Some(true) {
            return Ok(Outcome::Ignored("from a bot"));
        }
        let (Some(chat), Some(message_id)) = (
            msg.pointer("/chat/id").and_then(Value::as_i64),
            msg.get("message_id").and_then(Value::as_i64),
        ) else {
            return Ok(Outcome::Ignored("no chat or message id"));
        };
        let private = msg.pointer("/chat/type").and_then(Value::as_str) == Some("private");
        let thread = msg
            .get("message_thread_id")
            .and_then(Value::as_i64)
            .filter(|_| {
                // In groups a thread id without `is_topic_message` marks a reply chain, not a topic.
                private || msg.get("is_topic_message").and_then(Value::as_bool) == Some(true)
            });
        let named = msg
            .pointer("/forum_topic_created/name")
            .or_else(|| msg.pointer("/forum_topic_edited/name"))
            .and_then(Value::as_str);
        if let (Some(name), Some(thread)) = (named, thread) {
            self.learn_topic(chat, thread, name).await;
            return Ok(Outcome::Ignored("topic service message"));
        }
        let Some(text) = msg.get("text").and_then(Value::as_str) else {
            return Ok(Outcome::Ignored("no text"));
        };
        let user = from
            .and_then(|f| f.get("id"))
            .and_then(Value::as_i64)
            .unwrap_or(chat);
        let config = self.link.config.current();
        let telegram = config.channels.telegram.clone().unwrap_or_default();
        let target = Target {
            chat,
            thread,
            message: Some(message_id),
            private,
        };
        let mut topic = None;
        let mut text = text.to_string();
        if private {
            let name = display_name(from);
            if !self.dm_allowed(&telegram, user, &name, target).await? {
                return Ok(Outcome::Answered);
            }
            if telegram.dm.require_topic && thread.is_none() {
                self.answer(target, NEEDS_TOPIC).await;
                return Ok(Outcome::Answered);
            }
            if let Some(thread) = thread {
                topic = self.topic_key(&telegram, chat, thread).await;
            }
        } else {
            let mentioned = self.strip_mention(&mut text);
            let to_bot = msg
                .pointer("/reply_to_message/from/id")
                .and_then(Value::as_i64)
                == Some(self.bot_id);
            if telegram.groups.require_mention && !mentioned && !to_bot {
                return Ok(Outcome::Ignored("group message without a mention"));
            }
        }
        self.strip_command_suffix(&mut text);
        let agent = topic
            .as_deref()
            .and_then(|key| telegram.dm.topics.get(key))
            .and_then(|t| t.agent.clone());
        let inbound = Inbound {
            channel: "telegram".into(),
            account: self.account.clone(),
            upstream_id: format!("{chat}:{message_id}"),
            peer: PeerRef {
                kind: if private { "dm" } else { "group" }.into(),
                id: if private { user } else { chat }.to_string(),
            },
            thread: thread.map(|t| t.to_string()),
            guild: None,
            team: None,
            agent,
            topic,
            text,
            received_at_ms: now_ms(),
            sender: Some(user.to_string()),
            fingerprint: None,
            api: None,
        };
        let accepted = self.link.intake.take(inbound).await?;
        if !accepted.duplicate {
            let sender = self.sender.clone();
            tokio::spawn(async move { sender.typing(target).await });
        }
        Ok(Outcome::Taken)
    }

    /// Applies the DM policy; answers the sender itself when they are not let in.
    async fn dm_allowed(
        &self,
        telegram: &TelegramConfig,
        user: i64,
        name: &str,
        to: Target,
    ) -> Result<bool, IntakeError> {
        let dm = &telegram.dm;
        let listed = dm.allow_from.iter().any(|a| {
            let a = a.trim();
            a == user.to_string() || (a.starts_with('@') && name.eq_ignore_ascii_case(a))
        });
        match dm.dm_policy {
            DmPolicy::Open => Ok(true),
            DmPolicy::Disabled => Ok(false),
            DmPolicy::Allowlist => Ok(listed),
            DmPolicy::Pairing if listed => Ok(true),
            DmPolicy::Pairing => {
                match pairing::check(&self.link.store, &self.account, &user.to_string(), name)
                    .await?
                {
                    Verdict::Approved => Ok(true),
                    Verdict::Pending(code) => {
                        let text = format!(
                            "Hi! I don't know you yet. Your pairing code is {code}. \
                             Ask the owner of this bot to run: pincer pairing approve {code}"
                        );
                        self.answer(to, &text).await;
                        Ok(false)
                    }
                }
            }
        }
    }

    /// A reply from the link itself (not a turn): best effort, not in the inbox.
    async fn answer(&self, to: Target, text: &str) {
        if let Err(error) = self.sender.send(to, text).await {
            tracing::warn!(account = %self.account, %error, "Cannot answer a DM.");
        }
    }

    async fn learn_topic(&self, chat: i64, thread: i64, name: &str) {
        self.topics.lock().insert((chat, thread), name.to_string());
        let key = format!("topic:{chat}:{thread}");
        if let Err(error) = self
            .link
            .store
            .put_meta(&self.account, &key, Some(name.to_string()))
            .await
        {
            tracing::warn!(account = %self.account, %error, "Cannot remember a topic name.");
        }
    }

    /// The `[channels.telegram.dm.topics.<key>]` for a thread: by id, else by its name.
    async fn topic_key(&self, telegram: &TelegramConfig, chat: i64, thread: i64) -> Option<String> {
        let topics = &telegram.dm.topics;
        let id = thread.to_string();
        if topics.contains_key(&id) {
            return Some(id);
        }
        let cached = self.topics.lock().get(&(chat, thread)).cloned();
        let name = match cached {
            Some(name) => name,
            None => {
                let key = format!("topic:{chat}:{thread}");
                let name = self.link.store.meta(&self.account, &key).await.ok()??;
                self.topics.lock().insert((chat, thread), name.clone());
                name
            }
        };
        topics
            .keys()
            .find(|k| k.eq_ignore_ascii_case(name.trim()))
            .cloned()
    }

    /// Removes `@bot` from a group message; returns whether it was there.
    fn strip_mention(&self, text: &mut String) -> bool {
        let mention = format!("@{}", self.bot_username.to_ascii_lowercase());
        let lower = text.to_ascii_lowercase();
        let Some(at) = lower.find(&mention) else {
            return false;
        };
        // `/session@bot` is a command addressed to the bot, handled below.
        if at > 0 && !text[..at].ends_with(char::is_whitespace) {
            return true;
        }
        text.replace_range(at..at + mention.len(), "");
        *text = text.trim().to_string();
        true
    }

    /// `/session@bot status` → `/session status`.
    fn strip_command_suffix(&self, text: &mut String) {
        let suffix = format!("@{}", self.bot_username);
        if text.starts_with('/')
            && let Some(first) = text.split_whitespace().next()
            && let Some(at) = first.find('@')
            && first[at..].eq_ignore_ascii_case(&suffix)
        {
            text.replace_range(at..first.len(), "");
        }
    }
}

/// `@username`, else the first name.
fn display_name(from: Option<&Value>) -> String {
    let from = from.cloned().unwrap_or_default();
    match from.get("username").and_then(Value::as_str) {
        Some(u) => format!("@{u}"),
        None => from
            .get("first_name")
            .and_then(Value::as_str)
            .unwrap_or("someone")
            .to_string(),
    }
}
