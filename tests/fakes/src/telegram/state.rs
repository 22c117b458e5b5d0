//! State shared between the test (through `TelegramFake`) and the server thread: per-bot
//! update queues, chats and their messages, pollers, webhooks and rate buckets.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use serde_json::{Map, Value, json};
use tokio::sync::{oneshot, watch};

use super::wire::{Answer, bot_json, chat_json, unix_now, user_json};
use super::{
    Bot, BotMessage, Chat, ChatKind, Counters, Draft, Incoming, Knobs, Limit, Recorded, User,
};

/// Telegram's default topic icon colour (one of the six it allows).
const ICON_COLOR: i64 = 7_322_096;

/// Update types Telegram leaves out unless `allowed_updates` names them.
const OPT_IN_UPDATES: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// Why a pending `getUpdates` is told to stop.
#[derive(Debug, Clone, Copy)]
pub(super) enum Termination {
    /// A newer `getUpdates` of the same token arrived.
    OtherGetUpdates,
    /// `setWebhook` set a URL.
    SetWebhook,
}

/// A webhook set with `setWebhook`.
#[derive(Debug)]
pub(super) struct Webhook {
    pub(super) url: String,
    pub(super) secret: Option<String>,
    /// Which delivery task owns it: a new `setWebhook` starts a new one.
    pub(super) generation: u64,
    /// `(unix time, message)` of the last failed delivery.
    pub(super) last_error: Option<(i64, String)>,
}

/// A token bucket's content.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(slot: &mut Option<Bucket>, limit: Limit, now: Instant) -> &mut Bucket {
        let burst = f64::from(limit.burst);
        let bucket = slot.get_or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let gained = if limit.per.is_zero() {
            burst
        } else {
            now.duration_since(bucket.last).as_secs_f64() / limit.per.as_secs_f64()
        };
        bucket.tokens = (bucket.tokens + gained).min(burst);
        bucket.last = now;
        bucket
    }

    /// Time until the bucket holds one token (zero when it does).
    fn wait(&self, limit: Limit) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            limit.per.mul_f64(1.0 - self.tokens)
        }
    }
}

/// Takes one token from each configured bucket, or none when any is empty; the error is
/// the `retry_after` to announce (whole seconds, at least 1).
pub(super) fn take_tokens(
    buckets: [(&mut Option<Bucket>, Option<Limit>); 2],
    now: Instant,
) -> Result<(), u64> {
    let mut wait = Duration::ZERO;
    let mut ready = Vec::new();
    for (slot, limit) in buckets {
        let Some(limit) = limit else { continue };
        let bucket = Bucket::refill(slot, limit, now);
        wait = wait.max(bucket.wait(limit));
        ready.push(bucket);
    }
    if !wait.is_zero() {
        let secs = wait.as_secs_f64().ceil();
        // Bounded by the knob's `per`; a float-to-int cast of a small positive value.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Err((secs as u64).max(1));
    }
    for bucket in ready {
        bucket.tokens -= 1.0;
    }
    Ok(())
}

/// One message in a chat (the users' and the bot's).
#[derive(Debug, Clone)]
pub(super) struct Stored {
    /// Its JSON, without `reply_to_message` (as Telegram nests it one level only).
    pub(super) json: Value,
    /// Its full JSON, as it was (or would be) delivered.
    pub(super) full: Value,
    /// Whether the bot sent it (only those can be edited by the bot).
    pub(super) from_bot: bool,
}

/// A chat the bot is in.
#[derive(Debug)]
pub(super) struct ChatState {
    pub(super) chat: Chat,
    next_message_id: i64,
    pub(super) messages: HashMap<i64, Stored>,
    /// Known topics: thread id → its `forum_topic_created` message, when the fake made it.
    pub(super) topics: HashMap<i64, Option<Value>>,
    pub(super) bucket: Option<Bucket>,
}

impl ChatState {
    fn new(chat: Chat) -> ChatState {
        ChatState {
            chat,
            next_message_id: 1,
            messages: HashMap::new(),
            topics: HashMap::new(),
            bucket: None,
        }
    }

    /// Whether `message_thread_id` is checked (and echoed) in this chat: forums and
    /// private chats have topics; plain groups and channels ignore the parameter.
    pub(super) fn has_topics(&self) -> bool {
        self.chat.is_forum || self.chat.kind == ChatKind::Private
    }
}

/// What a new message is made of, besides its chat and sender.
#[derive(Debug)]
pub(super) struct NewMessage {
    pub(super) from: Value,
    pub(super) from_bot: bool,
    pub(super) thread_id: Option<i64>,
    pub(super) reply_to: Option<i64>,
    /// Extra fields (`text`, `forum_topic_created`, ...).
    pub(super) fields: Map<String, Value>,
}

/// Everything the fake keeps for one bot token.
#[derive(Debug)]
pub(super) struct BotState {
    pub(super) info: Bot,
    next_update_id: i64,
    pub(super) queue: VecDeque<Value>,
    /// Bumped whenever an update is queued or the webhook changes: wakes pollers and the
    /// delivery task.
    pub(super) updates: watch::Sender<u64>,
    pub(super) chats: HashMap<i64, ChatState>,
    pub(super) users: HashMap<i64, User>,
    pub(super) sent: Vec<BotMessage>,
    pub(super) drafts: Vec<Draft>,
    /// `getUpdates` calls in progress, oldest first.
    pub(super) polls: Vec<(u64, oneshot::Sender<Termination>)>,
    pub(super) webhook: Option<Webhook>,
    pub(super) webhook_generation: u64,
    /// `allowed_updates` as last given (kept across calls, as Telegram does).
    pub(super) allowed_updates: Option<Vec<String>>,
    pub(super) bucket: Option<Bucket>,
    pub(super) commands: Value,
}

impl BotState {
    fn new(info: Bot) -> BotState {
        // A large, token-dependent first id: clients must not assume ids start at 0 or 1.
        let spread = info
            .token
            .bytes()
            .fold(0i64, |acc, b| (acc * 31 + i64::from(b)) % 900);
        BotState {
            info,
            next_update_id: 100_000_000 + spread * 1000 + 1,
            queue: VecDeque::new(),
            updates: watch::Sender::new(0),
            chats: HashMap::new(),
            users: HashMap::new(),
            sent: Vec::new(),
            drafts: Vec::new(),
            polls: Vec::new(),
            webhook: None,
            webhook_generation: 0,
            allowed_updates: None,
            bucket: None,
            commands: json!([]),
        }
    }

    /// Wakes every poller and the delivery task.
    pub(super) fn wake(&self) {
        self.updates.send_modify(|n| *n += 1);
    }

    /// Queues an update, giving it the next `update_id`.
    pub(super) fn push_update(&mut self, update: Value) -> i64 {
        let id = self.next_update_id;
        self.next_update_id += 1;
        let mut update = match update {
            Value::Object(map) => map,
            other => {
                let mut map = Map::new();
                map.insert("message".to_owned(), other);
                map
            }
        };
        update.insert("update_id".to_owned(), json!(id));
        self.queue.push_back(Value::Object(update));
        self.wake();
        id
    }

    /// Learns the chats, users and messages a raw update carries, so that the bot can
    /// answer and reply to them as it could in Telegram.
    pub(super) fn absorb(&mut self, update: &Value) {
        let keys = [
            "message",
            "edited_message",
            "channel_post",
            "edited_channel_post",
            "business_message",
        ];
        for key in keys {
            if let Some(msg) = update.get(key) {
                self.absorb_message(msg);
            }
        }
        if let Some(query) = update.get("callback_query") {
            if let Some(user) = query.get("from").and_then(parse_user) {
                self.users.insert(user.id, user);
            }
            if let Some(msg) = query.get("message") {
                self.absorb_message(msg);
            }
        }
    }

    fn absorb_message(&mut self, msg: &Value) {
        if let Some(user) = msg.get("from").and_then(parse_user) {
            self.users.insert(user.id, user);
        }
        let Some(raw_chat) = msg.get("chat") else {
            return;
        };
        let Some(chat) = parse_chat(raw_chat) else {
            return;
        };
        if chat.kind == ChatKind::Private && !self.users.contains_key(&chat.id) {
            let mut user = User::new(
                chat.id,
                raw_chat
                    .get("first_name")
                    .and_then(Value::as_str)
                    .unwrap_or("User"),
            );
            user.username = raw_chat
                .get("username")
                .and_then(Value::as_str)
                .map(str::to_owned);
            self.users.insert(chat.id, user);
        }
        let state = self.user_chat(&chat);
        let thread = msg.get("message_thread_id").and_then(Value::as_i64);
        if let Some(thread) = thread {
            state.topics.entry(thread).or_insert(None);
        }
        let Some(id) = msg.get("message_id").and_then(Value::as_i64) else {
            return;
        };
        state.next_message_id = state.next_message_id.max(id.saturating_add(1));
        let mut plain = msg.clone();
        if let Some(map) = plain.as_object_mut() {
            map.remove("reply_to_message");
        }
        if msg.get("forum_topic_created").is_some() {
            state
                .topics
                .insert(thread.unwrap_or(id), Some(plain.clone()));
        }
        state.messages.insert(
            id,
            Stored {
                json: plain,
                full: msg.clone(),
                from_bot: false,
            },
        );
    }

    /// Drops queued updates of types `allowed_updates` excludes (they are never sent).
    pub(super) fn prune_disallowed(&mut self) {
        let allowed = self.allowed_updates.clone().unwrap_or_default();
        self.queue.retain(|update| {
            let kind = update
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "update_id").cloned())
                .unwrap_or_default();
            if allowed.is_empty() {
                !OPT_IN_UPDATES.contains(&kind.as_str())
            } else {
                allowed.contains(&kind)
            }
        });
    }

    /// The chat as the user describes it (created, or its description refreshed).
    fn user_chat(&mut self, chat: &Chat) -> &mut ChatState {
        let state = self
            .chats
            .entry(chat.id)
            .or_insert_with(|| ChatState::new(chat.clone()));
        state.chat = chat.clone();
        state
    }

    /// The chat the bot addresses, created from its id alone when allowed.
    pub(super) fn bot_chat(&mut self, chat_id: i64, auto_create: bool) -> Result<(), Answer> {
        if self.chats.contains_key(&chat_id) {
            return Ok(());
        }
        if !auto_create || chat_id == 0 {
            return Err(Answer::bad("chat not found"));
        }
        let chat = if chat_id > 0 {
            Chat {
                id: chat_id,
                kind: ChatKind::Private,
                is_forum: false,
                title: None,
            }
        } else if chat_id <= -1_000_000_000_000 {
            Chat::supergroup(chat_id, &format!("Chat {chat_id}"))
        } else {
            Chat::group(chat_id, &format!("Chat {chat_id}"))
        };
        self.chats.insert(chat_id, ChatState::new(chat));
        Ok(())
    }

    /// The JSON of a chat the bot knows.
    pub(super) fn chat_value(&self, chat_id: i64) -> Option<Value> {
        let state = self.chats.get(&chat_id)?;
        Some(chat_json(&state.chat, self.users.get(&chat_id)))
    }

    /// Creates a message in a known chat and stores it; returns its id and JSON.
    pub(super) fn new_message(&mut self, chat_id: i64, new: NewMessage) -> (i64, Value) {
        let private_user = self.users.get(&chat_id).cloned();
        let state = self
            .chats
            .entry(chat_id)
            .or_insert_with(|| ChatState::new(Chat::group(chat_id, "Chat")));
        let message_id = state.next_message_id;
        state.next_message_id += 1;
        let chat = chat_json(&state.chat, private_user.as_ref());
        let date = unix_now();
        let mut msg = Map::new();
        msg.insert("message_id".to_owned(), json!(message_id));
        if let Some(thread) = new.thread_id {
            msg.insert("message_thread_id".to_owned(), json!(thread));
            msg.insert("is_topic_message".to_owned(), json!(true));
        }
        msg.insert("from".to_owned(), new.from);
        msg.insert("chat".to_owned(), chat.clone());
        msg.insert("date".to_owned(), json!(date));
        let replied = match new.reply_to {
            Some(id) => Some(
                state
                    .messages
                    .get(&id)
                    .map(|m| m.json.clone())
                    .unwrap_or_else(|| json!({"message_id": id, "chat": chat, "date": date})),
            ),
            // In forum supergroups, a topic message that replies to nothing is shown as a
            // reply to the topic's creation message.
            None if state.chat.is_forum && state.chat.kind == ChatKind::Supergroup => new
                .thread_id
                .and_then(|t| state.topics.get(&t).cloned().flatten()),
            None => None,
        };
        let stored = {
            let mut plain = msg.clone();
            plain.extend(new.fields.clone());
            Value::Object(plain)
        };
        if let Some(replied) = replied {
            msg.insert("reply_to_message".to_owned(), replied);
        }
        msg.extend(new.fields);
        let full = Value::Object(msg);
        state.messages.insert(
            message_id,
            Stored {
                json: stored,
                full: full.clone(),
                from_bot: new.from_bot,
            },
        );
        (message_id, full)
    }

    /// A user's text message: stores it and queues its update.
    pub(super) fn user_message(&mut self, msg: &Incoming) -> i64 {
        self.users.insert(msg.from.id, msg.from.clone());
        let state = self.user_chat(&msg.chat);
        if let Some(thread) = msg.thread_id {
            state.topics.entry(thread).or_insert(None);
        }
        let mut fields = Map::new();
        fields.insert("text".to_owned(), json!(msg.text));
        let (_, json) = self.new_message(
            msg.chat.id,
            NewMessage {
                from: user_json(&msg.from),
                from_bot: false,
                thread_id: msg.thread_id,
                reply_to: msg.reply_to,
                fields,
            },
        );
        self.push_update(json!({ "message": json }))
    }

    /// A user creates a topic; returns its thread id.
    pub(super) fn create_topic(&mut self, chat: &Chat, from: &User, name: &str) -> i64 {
        self.users.insert(from.id, from.clone());
        let state = self.user_chat(chat);
        let thread_id = state.next_message_id;
        let mut fields = Map::new();
        fields.insert(
            "forum_topic_created".to_owned(),
            json!({"name": name, "icon_color": ICON_COLOR}),
        );
        let (id, json) = self.new_message(
            chat.id,
            NewMessage {
                from: user_json(from),
                from_bot: false,
                thread_id: Some(thread_id),
                reply_to: None,
                fields,
            },
        );
        debug_assert_eq!(id, thread_id);
        if let Some(state) = self.chats.get_mut(&chat.id) {
            let stored = state.messages.get(&id).map(|m| m.json.clone());
            state.topics.insert(thread_id, stored);
        }
        self.push_update(json!({ "message": json }));
        thread_id
    }

    /// A user renames a topic; returns the update id.
    pub(super) fn edit_topic(
        &mut self,
        chat: &Chat,
        from: &User,
        thread_id: i64,
        name: &str,
    ) -> i64 {
        self.users.insert(from.id, from.clone());
        self.user_chat(chat).topics.entry(thread_id).or_insert(None);
        let mut fields = Map::new();
        fields.insert("forum_topic_edited".to_owned(), json!({ "name": name }));
        let (_, json) = self.new_message(
            chat.id,
            NewMessage {
                from: user_json(from),
                from_bot: false,
                thread_id: Some(thread_id),
                reply_to: None,
                fields,
            },
        );
        self.push_update(json!({ "message": json }))
    }

    /// The bot's own `User` JSON.
    pub(super) fn me(&self) -> Value {
        bot_json(&self.info)
    }
}

/// A `User` object from a raw update.
fn parse_user(v: &Value) -> Option<User> {
    Some(User {
        id: v.get("id")?.as_i64()?,
        first_name: v.get("first_name")?.as_str()?.to_owned(),
        username: v.get("username").and_then(Value::as_str).map(str::to_owned),
        is_bot: v.get("is_bot").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// A `Chat` object from a raw update.
fn parse_chat(v: &Value) -> Option<Chat> {
    let kind = match v.get("type")?.as_str()? {
        "private" => ChatKind::Private,
        "group" => ChatKind::Group,
        "supergroup" => ChatKind::Supergroup,
        "channel" => ChatKind::Channel,
        _ => return None,
    };
    Some(Chat {
        id: v.get("id")?.as_i64()?,
        kind,
        is_forum: v.get("is_forum").and_then(Value::as_bool).unwrap_or(false),
        title: v.get("title").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Everything mutable, behind one lock.
#[derive(Debug)]
pub(super) struct State {
    pub(super) knobs: Knobs,
    pub(super) bots: HashMap<String, BotState>,
    pub(super) counters: Counters,
    pub(super) records: Vec<Recorded>,
    /// Lower-case method → (calls left, retry_after).
    pub(super) injected: HashMap<String, (u32, u64)>,
    pub(super) next_poll_id: u64,
}

/// The bot id of a token shaped as the official server requires (`<id>:<secret>`, at most
/// 80 bytes, no leading `0`, no `/`), or `None` for a malformed token.
fn well_formed(token: &str) -> Option<i64> {
    let (id, secret) = token.split_once(':')?;
    if token.len() > 80 || token.starts_with('0') || token.contains('/') || secret.is_empty() {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0)
}

impl State {
    /// The bot behind `token`: listed bots first, then (when allowed) any well-formed
    /// token. Anything else is 401, worded as the official server words it: malformed
    /// tokens are "invalid token specified", well-formed unknown ones plain "Unauthorized".
    pub(super) fn resolve(&self, token: &str) -> Result<Bot, Answer> {
        if let Some(bot) = self.knobs.bots.iter().find(|b| b.token == token) {
            return Ok(bot.clone());
        }
        match well_formed(token) {
            Some(id) if self.knobs.accept_any_token => Ok(Bot {
                token: token.to_owned(),
                id,
                username: format!("bot{id}_bot"),
                first_name: "Bot".to_owned(),
            }),
            Some(_) => Err(Answer::error(401, "Unauthorized")),
            None => Err(Answer::error(401, "Unauthorized: invalid token specified")),
        }
    }

    /// The state of the bot behind `token`, created on first use.
    pub(super) fn bot(&mut self, token: &str) -> Result<&mut BotState, Answer> {
        let info = self.resolve(token)?;
        let state = self
            .bots
            .entry(token.to_owned())
            .or_insert_with(|| BotState::new(info.clone()));
        state.info = info;
        Ok(state)
    }
}

/// The lock around [`State`], plus the HTTP client webhooks are delivered with.
#[derive(Debug)]
pub(super) struct Shared {
    state: Mutex<State>,
    pub(super) http: reqwest::Client,
}

impl Shared {
    pub(super) fn new(knobs: Knobs) -> Shared {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("telegram fake: build the webhook HTTP client");
        Shared {
            state: Mutex::new(State {
                knobs,
                bots: HashMap::new(),
                counters: Counters::default(),
                records: Vec::new(),
                injected: HashMap::new(),
                next_poll_id: 1,
            }),
            http,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Runs `f` on the bot's state; for the test-facing simulation helpers.
    ///
    /// # Panics
    /// When the token is not a bot the fake knows (a bug in the test).
    pub(super) fn with_bot<R>(&self, token: &str, f: impl FnOnce(&mut BotState) -> R) -> R {
        let mut state = self.lock();
        match state.bot(token) {
            Ok(bot) => f(bot),
            Err(_) => panic!("telegram fake: unknown bot token {token:?} (see Knobs::bots)"),
        }
    }

    /// Reads the bot's state, if the fake has any for it yet.
    pub(super) fn read_bot<R>(&self, token: &str, f: impl FnOnce(&BotState) -> R) -> Option<R> {
        self.lock().bots.get(token).map(f)
    }
}
