//! Fake of Discord for a bot: the Gateway WebSocket (`/gateway`, JSON encoding, API v10) and
//! the REST API (`/api/v10`: `GET /gateway/bot`, `GET /users/@me`,
//! `POST /channels/{id}/messages`, `POST /channels/{id}/typing`).
//!
//! Gateway, as the real one: Hello (op 10) on connect; Heartbeat (op 1) answered by
//! Heartbeat ACK (op 11, unless [`Knobs::ack_heartbeats`] is off: a zombie link); Identify
//! (op 2) starts a *session* and gets `READY`; every Dispatch (op 0) takes the session's next
//! sequence number `s` and is kept in the session's replay buffer, so events that happen
//! while the session has no live connection are buffered; Resume (op 6) on a new connection
//! replays every event after the client's `seq`, then `RESUMED`. Close codes: 4001 unknown
//! opcode, 4002 decode error (bad JSON, binary/ETF frames, `compress`), 4003 not
//! authenticated, 4004 bad token, 4005 already authenticated, 4007 resume `seq` from the
//! future, 4008 more than 120 non-heartbeat payloads in 60 s, 4009 no heartbeat within
//! `heartbeat_interval * heartbeat_timeout_factor`, 4012 bad `v`, 4013 unknown intent bits,
//! 4014 [`Knobs::disallowed_intents`]. A session stays resumable after a drop, a server
//! close and a 4009; it is forgotten when the client closes with 1000/1001 (Discord ends
//! the session then), after `invalidate_session(false)` and after a 4007.
//!
//! Intents gate delivery: guild `MESSAGE_CREATE` needs `GUILD_MESSAGES` (512), DMs need
//! `DIRECT_MESSAGES` (4096), `THREAD_CREATE` needs `GUILDS` (1). Without `MESSAGE_CONTENT`
//! (32768) guild messages that do not mention the bot arrive with `content: ""`. Messages the
//! bot posts over REST are echoed to its sessions as `MESSAGE_CREATE` (author = the bot).
//!
//! REST checks `Authorization: Bot TOKEN`, the 2000-character limit, empty messages, unknown
//! replied-to messages, and applies a fixed-window bucket per channel for message posts plus
//! a global per-token cap per second, answering 429 with Discord's headers and body.
//!
//! Every instance runs on its own thread with its own tokio runtime: [`DiscordFake::start`]
//! is synchronous and works from `#[tokio::test]` (either flavour) and from plain tests.
//! Dropping the fake stops the server and closes every connection.
//!
//! ```no_run
//! use pincer_fakes::discord::{Author, DiscordFake, Incoming};
//!
//! let fake = DiscordFake::start();
//! fake.set(|k| k.heartbeat_interval = std::time::Duration::from_millis(500));
//! // point the bot at fake.api_base() with token "discord-test-token", then:
//! let id = fake.post(Incoming::guild("200", "300", Author::new("42", "alice"), "hi"));
//! assert!(!id.is_empty());
//! ```

mod gateway;
mod limits;
mod rest;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::state::Shared;
use crate::serve::{Listener, Runtime, Server};

/// The bot token accepted by default.
pub const TEST_TOKEN: &str = "discord-test-token";

/// Gateway intent `GUILDS`: needed for `THREAD_CREATE`.
pub const INTENT_GUILDS: u64 = 1;
/// Gateway intent `GUILD_MESSAGES`: needed for `MESSAGE_CREATE` in guild channels/threads.
pub const INTENT_GUILD_MESSAGES: u64 = 1 << 9;
/// Gateway intent `DIRECT_MESSAGES`: needed for `MESSAGE_CREATE` in DMs.
pub const INTENT_DIRECT_MESSAGES: u64 = 1 << 12;
/// Privileged gateway intent `MESSAGE_CONTENT`: without it guild messages that do not
/// mention the bot arrive with an empty `content`.
pub const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;

/// Behaviour switches. Change them at runtime with [`DiscordFake::set`]; gateway values
/// apply to connections opened afterwards (heartbeat interval) or to the next frame.
#[derive(Debug, Clone)]
pub struct Knobs {
    /// Valid bot tokens (REST `Authorization: Bot TOKEN`, Identify/Resume `token`). Default
    /// `["discord-test-token"]`.
    pub tokens: Vec<String>,
    /// The bot user's id. Default `"100000000000000001"`.
    pub bot_id: String,
    /// The bot user's name. Default `"pincer-bot"`.
    pub bot_username: String,
    /// Sent in Hello. Default 41.25 s (Discord's usual value).
    pub heartbeat_interval: Duration,
    /// Answer heartbeats with op 11. `false` makes a zombie server. Default `true`.
    pub ack_heartbeats: bool,
    /// A connection that has not sent a heartbeat for `heartbeat_interval` times this factor
    /// (counted from Hello, then from each heartbeat) is closed with 4009 "Session timed
    /// out." (the session stays resumable). `0` or less disables it. Default 1.5.
    pub heartbeat_timeout_factor: f32,
    /// Bucket of `POST /channels/{id}/messages`, one per channel id (the major parameter).
    /// `None`: no per-route limit. Default 5 per 5 s.
    pub route_limit: Option<Limit>,
    /// REST requests per second per token (Discord's global limit). `0` disables it.
    /// Default 50.
    pub global_limit: u32,
    /// Identifies allowed (`session_start_limit.total`); once used up Identify gets op 9
    /// `d:false`. Default 1000.
    pub session_start_limit: u32,
    /// Intent bits the application may not use (privileged intents not enabled in the
    /// developer portal): Identify asking for any of them is closed with 4014. Default `0`.
    pub disallowed_intents: u64,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            tokens: vec![TEST_TOKEN.to_owned()],
            bot_id: "100000000000000001".to_owned(),
            bot_username: "pincer-bot".to_owned(),
            heartbeat_interval: Duration::from_millis(41_250),
            ack_heartbeats: true,
            heartbeat_timeout_factor: 1.5,
            route_limit: Some(Limit {
                requests: 5,
                per: Duration::from_secs(5),
            }),
            global_limit: 50,
            session_start_limit: 1000,
            disallowed_intents: 0,
        }
    }
}

/// A fixed-window rate limit: `requests` per window of `per`, the window starting with the
/// first request (what `X-RateLimit-Reset-After` counts down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length.
    pub per: Duration,
}

/// A user message to inject with [`DiscordFake::post`].
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Channel (or thread) id.
    pub channel_id: String,
    /// Guild id; `None` makes a DM.
    pub guild_id: Option<String>,
    /// Who wrote it.
    pub author: Author,
    /// The text, verbatim (a mention is not added: put `<@BOT_ID>` in it if you want one).
    pub content: String,
    /// Lists the bot in `mentions` (and lets the content through without `MESSAGE_CONTENT`).
    pub mentions_bot: bool,
}

impl Incoming {
    /// A guild message that does not mention the bot.
    pub fn guild(channel_id: &str, guild_id: &str, author: Author, content: &str) -> Incoming {
        Incoming {
            channel_id: channel_id.to_owned(),
            guild_id: Some(guild_id.to_owned()),
            author,
            content: content.to_owned(),
            mentions_bot: false,
        }
    }

    /// A direct message.
    pub fn dm(channel_id: &str, author: Author, content: &str) -> Incoming {
        Incoming {
            channel_id: channel_id.to_owned(),
            guild_id: None,
            author,
            content: content.to_owned(),
            mentions_bot: false,
        }
    }

    /// Marks the message as mentioning the bot.
    pub fn mentioning_bot(mut self) -> Incoming {
        self.mentions_bot = true;
        self
    }
}

/// A message author.
#[derive(Debug, Clone)]
pub struct Author {
    /// User id (snowflake string).
    pub id: String,
    /// User name.
    pub username: String,
    /// A bot account (`author.bot: true` on the wire).
    pub bot: bool,
}

impl Author {
    /// A human user.
    pub fn new(id: &str, username: &str) -> Author {
        Author {
            id: id.to_owned(),
            username: username.to_owned(),
            bot: false,
        }
    }
}

/// A message the bot posted over REST (accepted ones only).
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    /// Snowflake the fake assigned.
    pub id: String,
    /// Channel it was posted in.
    pub channel_id: String,
    /// Its text.
    pub content: String,
    /// `message_reference.message_id`, when it is a reply.
    pub reply_to: Option<String>,
    /// When the fake accepted it.
    pub at: Instant,
}

/// One REST request, as received and answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path without the query, e.g. `/api/v10/channels/200/messages`.
    pub path: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// JSON body; `null` when empty; a JSON string holding the raw text when not JSON.
    pub body: Value,
    /// Status answered.
    pub status: u16,
    /// When it was received.
    pub at: Instant,
}

/// One gateway payload the *client* sent (parsed JSON with an integer `op` only).
#[derive(Debug, Clone)]
pub struct Frame {
    /// Connection number (1-based, in accept order).
    pub connection: u64,
    /// Opcode.
    pub op: u64,
    /// The `d` field (`null` when absent).
    pub d: Value,
    /// When it was received.
    pub at: Instant,
}

/// What the fake counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Gateway connections accepted.
    pub connections: u64,
    /// Gateway connections open now (detached at once by `close_all`/`drop_all`).
    pub live_connections: u64,
    /// Most gateway connections ever open at the same time.
    pub max_live_connections: u64,
    /// Identify payloads received (accepted or not).
    pub identifies: u64,
    /// Resume payloads received (accepted or not).
    pub resumes: u64,
    /// Resumes that replayed and got `RESUMED`.
    pub successful_resumes: u64,
    /// Heartbeats (op 1) received.
    pub heartbeats: u64,
    /// Heartbeat ACKs (op 11) sent.
    pub acks: u64,
    /// Dispatches (op 0) given a sequence number, delivered or buffered, `READY` and
    /// `RESUMED` included, replays not.
    pub dispatched: u64,
    /// Buffered dispatches re-sent on resume.
    pub replayed: u64,
    /// Invalid Session (op 9) payloads sent.
    pub invalid_sessions: u64,
    /// Messages the bot posted successfully.
    pub messages_posted: u64,
    /// 429 answers (route, global and injected).
    pub rate_limited: u64,
    /// 429 answers with `global: true`.
    pub global_rate_limited: u64,
}

/// A running fake Discord on `127.0.0.1`. Dropping it stops the server.
pub struct DiscordFake {
    server: Server,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DiscordFake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordFake")
            .field("addr", &self.addr())
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl DiscordFake {
    /// Starts a fake with default knobs.
    pub fn start() -> DiscordFake {
        Self::start_with(Knobs::default())
    }

    /// Starts a fake with these knobs. Synchronous: binds on the caller's thread, serves on
    /// a dedicated one.
    ///
    /// # Panics
    ///
    /// If `127.0.0.1:0` cannot be bound or the server thread or its runtime cannot start.
    pub fn start_with(knobs: Knobs) -> DiscordFake {
        let listener = Listener::bind("discord");
        let gateway_url = format!("ws://{}/gateway", listener.addr());
        let shared = Arc::new(Shared::new(knobs, gateway_url));
        let server = listener.serve(Runtime::TwoWorkers, rest::routes(Arc::clone(&shared)));
        DiscordFake { server, shared }
    }

    /// REST base: `http://127.0.0.1:PORT/api/v10`.
    pub fn api_base(&self) -> String {
        format!("http://{}/api/v10", self.addr())
    }

    /// Gateway URL, as `GET /gateway/bot` and `READY.resume_gateway_url` give it:
    /// `ws://127.0.0.1:PORT/gateway` (clients append `/?v=10&encoding=json`).
    pub fn gateway_url(&self) -> String {
        self.shared.gateway_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Changes knobs at runtime.
    pub fn set<F: FnOnce(&mut Knobs)>(&self, f: F) {
        f(&mut self.shared.knobs.lock());
    }

    /// A copy of the current knobs.
    pub fn knobs(&self) -> Knobs {
        self.shared.knobs()
    }

    /// A user posts a message: `MESSAGE_CREATE` to every session whose intents allow it,
    /// live or buffered for resume. Returns the message id.
    pub fn post(&self, msg: Incoming) -> String {
        self.shared.user_message(&msg)
    }

    /// A user opens a thread (type 11, public) under `parent_channel_id`: `THREAD_CREATE` to
    /// sessions with `GUILDS`. Returns the thread's channel id (post into it with
    /// [`DiscordFake::post`] using that id as `channel_id`).
    pub fn create_thread(&self, parent_channel_id: &str, guild_id: &str, name: &str) -> String {
        self.shared.create_thread(parent_channel_id, guild_id, name)
    }

    /// Sends Reconnect (op 7) to every live connection.
    pub fn send_reconnect(&self) {
        self.shared.send_reconnect();
    }

    /// Asks every live connection for an immediate heartbeat (server op 1).
    pub fn request_heartbeat(&self) {
        self.shared.request_heartbeat();
    }

    /// Sends Invalid Session (op 9, `d: resumable`) to every authenticated live connection
    /// and detaches it from its session (the connection may Identify or Resume again). With
    /// `resumable: false` those sessions are forgotten: resuming them gets op 9 `false`.
    pub fn invalidate_session(&self, resumable: bool) {
        self.shared.invalidate_sessions(resumable);
    }

    /// Closes every live connection with this close code (sessions stay resumable).
    pub fn close_all(&self, code: u16) {
        self.shared.close_all(code);
    }

    /// Drops every live connection's TCP stream without a close frame (1006 for clients).
    pub fn drop_all(&self) {
        self.shared.drop_all();
    }

    /// Messages the bot posted in this channel, in order.
    pub fn messages(&self, channel_id: &str) -> Vec<BotMessage> {
        self.shared
            .bot_messages()
            .into_iter()
            .filter(|m| m.channel_id == channel_id)
            .collect()
    }

    /// Every message the bot posted, in order.
    pub fn all_messages(&self) -> Vec<BotMessage> {
        self.shared.bot_messages()
    }

    /// Every REST request, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests()
    }

    /// Every gateway payload clients sent, oldest first.
    pub fn frames(&self) -> Vec<Frame> {
        self.shared.frames()
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        self.shared.counters()
    }

    /// The next `count` `POST /channels/{id}/messages` (with a valid token) get a 429 of the
    /// given kind, shaped like a real one, whatever the buckets say.
    pub fn inject_429(&self, count: u32, retry_after: Duration, global: bool) {
        self.shared.limits.lock().inject(count, retry_after, global);
    }
}
