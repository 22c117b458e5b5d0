//! A fake of the Telegram Bot API (`/bot<TOKEN>/<METHOD>`), for offline tests and benches.
//!
//! Written from the wire notes, not from Pincer's client. It answers like the real service:
//! every reply is `{"ok":true,"result":...}` or `{"ok":false,"error_code":N,"description":...}`
//! with HTTP status `N`; method names are case-insensitive; parameters come as JSON, as an
//! urlencoded form or in the query string (numbers may arrive as strings).
//!
//! What it serves:
//! - `getMe`; `getUpdates` with a real long poll (`timeout`), `offset` confirmation, the
//!   "terminated by other getUpdates request" 409 for overlapping pollers (the newer poll
//!   wins) and the 409 while a webhook is set;
//! - `sendMessage`, `editMessageText`, `sendMessageDraft` (private chats only; can be
//!   switched off to look like an older server), `sendChatAction`, `deleteMessage`,
//!   `getChat`, `setMyCommands`/`getMyCommands`/`deleteMyCommands`, `answerCallbackQuery`,
//!   `setMessageReaction`, `logOut`, `close`; any other method is 404 "Not Found";
//! - `setWebhook`/`deleteWebhook`/`getWebhookInfo`, with real delivery: each update is
//!   POSTed to the URL in order, one at a time, with `X-Telegram-Bot-Api-Secret-Token`, and
//!   retried with a growing pause until a 2xx confirms it;
//! - token-bucket rate limits per chat and per bot, and injected 429s, answered with
//!   `parameters.retry_after`.
//!
//! Users are simulated with [`TelegramFake::send_text`], [`TelegramFake::create_topic`],
//! [`TelegramFake::edit_topic`] and [`TelegramFake::push_update`]; what the bot did is read
//! back with [`TelegramFake::messages`], [`TelegramFake::requests`] and
//! [`TelegramFake::counters`].
//!
//! Deliberate simplifications, each where the real service cannot be reproduced offline or
//! where Pincer does not go: webhook URLs may be plain `http://` (the real API requires
//! HTTPS); `multipart/form-data` bodies are not parsed; a webhook reply body that carries a
//! method call is ignored; message length is counted in Unicode scalar values (`char`s),
//! after trimming surrounding whitespace as Telegram does; unknown chat ids are created on
//! first use unless [`Knobs::auto_create_chats`] is off (positive ids are private chats,
//! negative ones groups, `-100…` ones supergroups).
//!
//! ```no_run
//! use pincer_fakes::telegram::{Chat, Incoming, TEST_TOKEN, TelegramFake, User};
//!
//! let fake = TelegramFake::start();
//! let alice = User::new(42, "Alice");
//! fake.send_text(TEST_TOKEN, Incoming::new(&Chat::private(&alice), &alice, "hi"));
//! // point the gateway at fake.base_url() with TEST_TOKEN, then:
//! let sent = fake.messages(TEST_TOKEN, 42);
//! # let _ = sent;
//! ```

mod methods;
mod poll;
mod server;
mod state;
mod webhook;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::state::Shared;
use crate::serve::{Listener, Runtime, Server};

/// The token of the bot the fake knows by default.
pub const TEST_TOKEN: &str = "123456:TEST-TOKEN";

/// Runtime-adjustable behaviour of the fake. Change it with [`TelegramFake::set`].
#[derive(Debug, Clone)]
pub struct Knobs {
    /// The bots (tokens) the fake knows. Default: one bot, token [`TEST_TOKEN`], id 123456,
    /// username `pincer_test_bot`, first name `Pincer`.
    pub bots: Vec<Bot>,
    /// When true, any token shaped `<digits>:<secret>` is a bot too: id = the digits,
    /// username `bot<digits>_bot`, first name `Bot`. Default false.
    pub accept_any_token: bool,
    /// Token bucket per (bot, chat) over `sendMessage` and `editMessageText` (drafts and
    /// chat actions are not limited). Default `None` (unlimited).
    pub chat_limit: Option<Limit>,
    /// Token bucket per bot over the same methods. Default `None` (unlimited).
    pub global_limit: Option<Limit>,
    /// Timeout of each webhook delivery POST. Default 10 s.
    pub webhook_timeout: Duration,
    /// Cap on the `getUpdates` `timeout` honoured (the real service: 50 s). Default 50 s.
    pub max_long_poll: Duration,
    /// Whether `sendMessageDraft` exists; when false it is 404 "Not Found", as on a Bot API
    /// server older than 9.3. Default true.
    pub drafts: bool,
    /// When true (the default), a chat id the fake has not seen yet is created on first use
    /// (kind guessed from the id's sign); when false it is 400 "Bad Request: chat not
    /// found", as for a user who never started the bot.
    pub auto_create_chats: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            bots: vec![Bot {
                token: TEST_TOKEN.to_owned(),
                id: 123_456,
                username: "pincer_test_bot".to_owned(),
                first_name: "Pincer".to_owned(),
            }],
            accept_any_token: false,
            chat_limit: None,
            global_limit: None,
            webhook_timeout: Duration::from_secs(10),
            max_long_poll: Duration::from_secs(50),
            drafts: true,
            auto_create_chats: true,
        }
    }
}

/// A bot account the fake serves.
#[derive(Debug, Clone)]
pub struct Bot {
    /// Its token, `<id>:<secret>`.
    pub token: String,
    /// Its user id.
    pub id: i64,
    /// Its username, without `@`.
    pub username: String,
    /// Its display name.
    pub first_name: String,
}

/// A token bucket: `burst` tokens, refilled at one token every `per`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Bucket size (and initial content).
    pub burst: u32,
    /// Time to refill one token.
    pub per: Duration,
}

/// A text message a simulated user sends to the bot.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The chat it is sent in.
    pub chat: Chat,
    /// Its sender.
    pub from: User,
    /// Its text.
    pub text: String,
    /// The topic (`message_thread_id`) it is sent in, if any.
    pub thread_id: Option<i64>,
    /// The `message_id` it replies to, if any.
    pub reply_to: Option<i64>,
}

impl Incoming {
    /// A plain text message, not in a topic, not a reply.
    pub fn new(chat: &Chat, from: &User, text: &str) -> Incoming {
        Incoming {
            chat: chat.clone(),
            from: from.clone(),
            text: text.to_owned(),
            thread_id: None,
            reply_to: None,
        }
    }

    /// The same message, sent in topic `thread_id`.
    pub fn in_thread(mut self, thread_id: i64) -> Incoming {
        self.thread_id = Some(thread_id);
        self
    }

    /// The same message, replying to `message_id`.
    pub fn replying_to(mut self, message_id: i64) -> Incoming {
        self.reply_to = Some(message_id);
        self
    }
}

/// A chat as a simulated user sees it.
#[derive(Debug, Clone)]
pub struct Chat {
    /// Chat id (a private chat's id is the user's id; groups are negative).
    pub id: i64,
    /// Its type.
    pub kind: ChatKind,
    /// Whether topics are enabled (forum supergroups).
    pub is_forum: bool,
    /// Its title (groups, supergroups, channels).
    pub title: Option<String>,
}

impl Chat {
    /// The private chat between `user` and the bot (id = the user's id).
    pub fn private(user: &User) -> Chat {
        Chat {
            id: user.id,
            kind: ChatKind::Private,
            is_forum: false,
            title: None,
        }
    }

    /// A basic group.
    pub fn group(id: i64, title: &str) -> Chat {
        Chat {
            id,
            kind: ChatKind::Group,
            is_forum: false,
            title: Some(title.to_owned()),
        }
    }

    /// A supergroup without topics.
    pub fn supergroup(id: i64, title: &str) -> Chat {
        Chat {
            id,
            kind: ChatKind::Supergroup,
            is_forum: false,
            title: Some(title.to_owned()),
        }
    }

    /// A supergroup with topics enabled (`is_forum`).
    pub fn forum(id: i64, title: &str) -> Chat {
        Chat {
            id,
            kind: ChatKind::Supergroup,
            is_forum: true,
            title: Some(title.to_owned()),
        }
    }
}

/// The `type` of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// `"private"`.
    Private,
    /// `"group"`.
    Group,
    /// `"supergroup"`.
    Supergroup,
    /// `"channel"`.
    Channel,
}

impl ChatKind {
    /// The wire name (`"private"`, `"group"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Private => "private",
            ChatKind::Group => "group",
            ChatKind::Supergroup => "supergroup",
            ChatKind::Channel => "channel",
        }
    }
}

/// A Telegram user.
#[derive(Debug, Clone)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Display name.
    pub first_name: String,
    /// Username, without `@`.
    pub username: Option<String>,
    /// Whether it is a bot.
    pub is_bot: bool,
}

impl User {
    /// A human user without a username.
    pub fn new(id: i64, first_name: &str) -> User {
        User {
            id,
            first_name: first_name.to_owned(),
            username: None,
            is_bot: false,
        }
    }

    /// The same user with a username.
    pub fn with_username(mut self, username: &str) -> User {
        self.username = Some(username.to_owned());
        self
    }
}

/// A message the bot sent, as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    /// The chat it was sent to.
    pub chat_id: i64,
    /// Its id in that chat.
    pub message_id: i64,
    /// Its topic, when sent with a `message_thread_id` the chat has.
    pub thread_id: Option<i64>,
    /// Current text (after edits, trimmed as Telegram stores it).
    pub text: String,
    /// The message it replies to (`reply_parameters.message_id` or
    /// `reply_to_message_id`).
    pub reply_to: Option<i64>,
    /// Successful `editMessageText` calls on it.
    pub edits: u32,
    /// When it was sent.
    pub sent_at: Instant,
}

/// A `sendMessageDraft` the bot made (drafts are previews, never messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// The private chat.
    pub chat_id: i64,
    /// The bot's `draft_id`.
    pub draft_id: i64,
    /// `message_thread_id`, when given.
    pub thread_id: Option<i64>,
    /// The draft text (may be empty: a "Thinking…" placeholder).
    pub text: String,
    /// When it arrived.
    pub at: Instant,
}

/// One HTTP request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The token from the path (empty when the path was not `/bot<TOKEN>/<METHOD>`).
    pub token: String,
    /// The method name as written in the path (e.g. `sendMessage`); the whole path when
    /// it was not `/bot<TOKEN>/<METHOD>`.
    pub method: String,
    /// The parameters (query string, then JSON or form body) as a JSON object; form
    /// values stay strings.
    pub body: Value,
    /// When it arrived.
    pub at: Instant,
    /// The HTTP status answered; 0 while still being processed (a long poll), 499 when the
    /// client went away first.
    pub status: u16,
}

impl Recorded {
    /// Whether this request called method `m` (case-insensitive, like the API).
    pub fn method_is(&self, m: &str) -> bool {
        self.method.eq_ignore_ascii_case(m)
    }
}

/// A snapshot of what the fake has served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// `getUpdates` calls (any outcome).
    pub get_updates: u64,
    /// `getUpdates` calls being processed right now (all tokens).
    pub get_updates_active: u64,
    /// The most `getUpdates` of one token ever processed at the same moment, counted
    /// before an overlapping newer one terminates the older: two pollers make it 2.
    pub max_concurrent_get_updates: u64,
    /// 409 answers (overlapping pollers, getUpdates while a webhook is set).
    pub conflicts: u64,
    /// `sendMessage` calls (any outcome).
    pub send_message: u64,
    /// `editMessageText` calls (any outcome).
    pub edit_message_text: u64,
    /// `sendMessageDraft` calls (any outcome, 404s when drafts are off included).
    pub send_message_draft: u64,
    /// `sendChatAction` calls (any outcome).
    pub send_chat_action: u64,
    /// 429 answers (buckets and injected).
    pub rate_limited: u64,
    /// Webhook delivery POSTs attempted.
    pub webhook_posts: u64,
    /// Of those, how many failed (non-2xx, refused, timed out).
    pub webhook_failures: u64,
    /// `setWebhook` calls (any outcome).
    pub set_webhook: u64,
    /// `deleteWebhook` calls (any outcome).
    pub delete_webhook: u64,
}

/// The webhook currently set for a bot.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookInfo {
    /// Where updates are POSTed.
    pub url: String,
    /// Sent back in `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: Option<String>,
}

/// A running fake Bot API on `127.0.0.1`. Dropping it stops the server, webhook delivery
/// and every open connection.
#[derive(Debug)]
pub struct TelegramFake {
    server: Server,
    shared: Arc<Shared>,
}

impl TelegramFake {
    /// Starts a fake with default [`Knobs`]; returns once the port is bound. Works from
    /// sync code and from either flavour of `#[tokio::test]`: the server runs on its own
    /// thread and runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start() -> TelegramFake {
        TelegramFake::start_with(Knobs::default())
    }

    /// Starts a fake with the given knobs; returns once the port is bound.
    ///
    /// # Panics
    /// When no loopback port can be bound or the runtime cannot start.
    pub fn start_with(knobs: Knobs) -> TelegramFake {
        let shared = Arc::new(Shared::new(knobs));
        let routes = server::routes(Arc::clone(&shared));
        let server = Listener::bind("telegram").serve(Runtime::CurrentThread, routes);
        TelegramFake { server, shared }
    }

    /// The base URL: `http://127.0.0.1:PORT`; methods are at `{base}/bot{TOKEN}/{METHOD}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes the knobs; applies to requests that arrive afterwards.
    pub fn set<F: FnOnce(&mut Knobs)>(&self, f: F) {
        f(&mut self.shared.lock().knobs);
    }

    /// BotFather's `/revoke`: the bot behind `old` gets token `new` (same bot: its chats,
    /// messages and update ids carry on); `old` is refused from now on. Long polls open
    /// with `old` are not cut here, as they are not upstream until they return.
    ///
    /// # Panics
    /// When `old` is not a bot from [`Knobs::bots`].
    pub fn revoke_token(&self, old: &str, new: &str) {
        let mut state = self.shared.lock();
        let bot = state
            .knobs
            .bots
            .iter_mut()
            .find(|b| b.token == old)
            .expect("telegram fake: revoke_token needs a bot from Knobs::bots");
        bot.token = new.to_owned();
        if let Some(mut bot_state) = state.bots.remove(old) {
            bot_state.info.token = new.to_owned();
            state.bots.insert(new.to_owned(), bot_state);
        }
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.lock().knobs.clone()
    }

    /// A user sends a text message; returns the `update_id` queued.
    ///
    /// # Panics
    /// When `token` is not a bot the fake knows.
    pub fn send_text(&self, token: &str, msg: Incoming) -> i64 {
        self.shared.with_bot(token, |bot| bot.user_message(&msg))
    }

    /// Queues a raw update object (its `update_id` is set by the fake); returns that id.
    /// The chats, users and messages it carries become known, so the bot can answer and
    /// reply to them. A non-object is queued as the update's `message`.
    ///
    /// # Panics
    /// When `token` is not a bot the fake knows.
    pub fn push_update(&self, token: &str, update: Value) -> i64 {
        self.shared.with_bot(token, |bot| {
            bot.absorb(&update);
            bot.push_update(update)
        })
    }

    /// `from` creates a topic named `name` in `chat` (any chat kind: private chats have
    /// topics since Bot API 9.3); queues the `forum_topic_created` service message and
    /// returns the new `message_thread_id` (the service message's own id, as in Telegram).
    ///
    /// # Panics
    /// When `token` is not a bot the fake knows.
    pub fn create_topic(&self, token: &str, chat: &Chat, from: &User, name: &str) -> i64 {
        self.shared
            .with_bot(token, |bot| bot.create_topic(chat, from, name))
    }

    /// `from` renames topic `thread_id`; queues the `forum_topic_edited` service message
    /// and returns its `update_id`.
    ///
    /// # Panics
    /// When `token` is not a bot the fake knows.
    pub fn edit_topic(
        &self,
        token: &str,
        chat: &Chat,
        from: &User,
        thread_id: i64,
        name: &str,
    ) -> i64 {
        self.shared
            .with_bot(token, |bot| bot.edit_topic(chat, from, thread_id, name))
    }

    /// Messages the bot sent in `chat_id`, oldest first, with their current text.
    pub fn messages(&self, token: &str, chat_id: i64) -> Vec<BotMessage> {
        self.shared
            .read_bot(token, |bot| {
                bot.sent
                    .iter()
                    .filter(|m| m.chat_id == chat_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every message the bot sent, oldest first.
    pub fn all_messages(&self, token: &str) -> Vec<BotMessage> {
        self.shared
            .read_bot(token, |bot| bot.sent.clone())
            .unwrap_or_default()
    }

    /// Drafts the bot streamed to `chat_id` (`sendMessageDraft` calls that succeeded).
    pub fn drafts(&self, token: &str, chat_id: i64) -> Vec<Draft> {
        self.shared
            .read_bot(token, |bot| {
                bot.drafts
                    .iter()
                    .filter(|d| d.chat_id == chat_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every HTTP request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().records.clone()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Updates queued for the bot and not yet confirmed (by a `getUpdates` offset or a
    /// webhook 2xx).
    pub fn pending_updates(&self, token: &str) -> usize {
        self.shared
            .read_bot(token, |bot| bot.queue.len())
            .unwrap_or(0)
    }

    /// The next `count` calls of `method` (case-insensitive, any token) are answered 429
    /// with `retry_after = retry_after_secs`, whatever the buckets say.
    pub fn inject_429(&self, method: &str, count: u32, retry_after_secs: u64) {
        let mut state = self.shared.lock();
        let method = method.to_ascii_lowercase();
        if count == 0 {
            state.injected.remove(&method);
        } else {
            state.injected.insert(method, (count, retry_after_secs));
        }
    }

    /// The webhook currently set for the bot, if any.
    pub fn webhook(&self, token: &str) -> Option<WebhookInfo> {
        self.shared
            .read_bot(token, |bot| {
                bot.webhook.as_ref().map(|w| WebhookInfo {
                    url: w.url.clone(),
                    secret_token: w.secret.clone(),
                })
            })
            .flatten()
    }
}
