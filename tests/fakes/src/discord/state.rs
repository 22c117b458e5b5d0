//! State shared by the handle, the REST handlers and the gateway connections: knobs,
//! sessions with their sequence numbers and replay buffers, live connections (each reached
//! through a command channel), records, counters and snowflakes.
//!
//! Every dispatch is built and queued under the one `State` lock, so the order of events on
//! a connection is the order of their sequence numbers, whoever produced them.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::limits::Limits;
use super::{
    BotMessage, Counters, Frame, INTENT_DIRECT_MESSAGES, INTENT_GUILD_MESSAGES, INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT, Incoming, Knobs, Recorded,
};

/// Discord's epoch (2015-01-01T00:00:00Z) in Unix milliseconds.
const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// What a connection task is told to do by others.
#[derive(Debug)]
pub(super) enum Cmd {
    /// Send this text frame.
    Send(String),
    /// Send a close frame with this code and reason, then end.
    Close(u16, &'static str),
    /// End without a close frame.
    Drop,
}

/// A live gateway connection, as the rest of the fake sees it.
#[derive(Debug)]
struct ConnEntry {
    tx: mpsc::UnboundedSender<Cmd>,
    /// The session it is attached to (after a good Identify or Resume).
    session: Option<String>,
}

/// A gateway session: survives its connections until invalidated.
#[derive(Debug)]
struct Session {
    token: String,
    intents: u64,
    /// Last sequence number given.
    seq: u64,
    /// Every dispatch given a sequence number: `(s, frame text)`.
    buffer: Vec<(u64, String)>,
    /// The live connection attached, if any.
    conn: Option<u64>,
}

/// Outcome of a Resume.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ResumeOutcome {
    /// Replayed and `RESUMED` queued.
    Resumed,
    /// Unknown session (or another token's): op 9 `false` queued.
    Invalid,
    /// `seq` beyond the session's last: close 4007 (the session is forgotten).
    BadSeq,
}

/// Outcome of an Identify that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum IdentifyOutcome {
    /// `READY` queued.
    Ready,
    /// Session start limit used up: op 9 `false` queued.
    LimitReached,
}

/// Mutable gateway and message state, under one lock.
#[derive(Debug, Default)]
struct State {
    conns: BTreeMap<u64, ConnEntry>,
    sessions: BTreeMap<String, Session>,
    counters: Counters,
    next_conn: u64,
    /// Channel (or thread) id -> guild id (`None`: a DM), from injected messages/threads.
    channels: HashMap<String, Option<String>>,
    /// Message ids that exist (injected or posted by the bot), for reply validation.
    known_messages: HashSet<String>,
    /// Identifies that started a session (for `session_start_limit.remaining`).
    sessions_started: u32,
    last_snowflake: u64,
    session_nonce: u64,
}

/// Everything the fake's tasks share; owned through an `Arc`.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) knobs: Mutex<Knobs>,
    pub(super) gateway_url: String,
    pub(super) limits: Mutex<Limits>,
    state: Mutex<State>,
    records: Mutex<Vec<Recorded>>,
    frames: Mutex<Vec<Frame>>,
    messages: Mutex<Vec<BotMessage>>,
    started: Instant,
    random: RandomState,
}

impl Shared {
    pub(super) fn new(knobs: Knobs, gateway_url: String) -> Shared {
        Shared {
            knobs: Mutex::new(knobs),
            gateway_url,
            limits: Mutex::new(Limits::default()),
            state: Mutex::new(State::default()),
            records: Mutex::new(Vec::new()),
            frames: Mutex::new(Vec::new()),
            messages: Mutex::new(Vec::new()),
            started: Instant::now(),
            random: RandomState::new(),
        }
    }

    pub(super) fn knobs(&self) -> Knobs {
        self.knobs.lock().clone()
    }

    pub(super) fn counters(&self) -> Counters {
        self.state.lock().counters.clone()
    }

    pub(super) fn count<F: FnOnce(&mut Counters)>(&self, f: F) {
        f(&mut self.state.lock().counters);
    }

    // ---- records ----

    pub(super) fn record(&self, record: Recorded) {
        self.records.lock().push(record);
    }

    pub(super) fn requests(&self) -> Vec<Recorded> {
        self.records.lock().clone()
    }

    pub(super) fn record_frame(&self, frame: Frame) {
        self.frames.lock().push(frame);
    }

    pub(super) fn frames(&self) -> Vec<Frame> {
        self.frames.lock().clone()
    }

    pub(super) fn bot_messages(&self) -> Vec<BotMessage> {
        self.messages.lock().clone()
    }

    /// The bot user object.
    pub(super) fn bot_user(&self) -> Value {
        let knobs = self.knobs.lock();
        json!({
            "id": knobs.bot_id,
            "username": knobs.bot_username,
            "discriminator": "0",
            "global_name": null,
            "avatar": null,
            "bot": true,
            "verified": true,
            "mfa_enabled": false,
            "flags": 0,
            "public_flags": 0,
        })
    }

    /// `(total, remaining, reset_after ms)` of the session start limit.
    pub(super) fn session_start_limit(&self) -> (u32, u32, u64) {
        let total = self.knobs.lock().session_start_limit;
        let used = self.state.lock().sessions_started;
        let day_ms = 86_400_000u64;
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(day_ms);
        let reset_after = day_ms.saturating_sub(elapsed % day_ms);
        (total, total.saturating_sub(used), reset_after)
    }

    // ---- connections ----

    /// Registers a new live connection: its number and command receiver.
    pub(super) fn open_connection(&self) -> (u64, mpsc::UnboundedReceiver<Cmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = self.state.lock();
        state.next_conn += 1;
        let id = state.next_conn;
        state.conns.insert(id, ConnEntry { tx, session: None });
        let c = &mut state.counters;
        c.connections += 1;
        c.live_connections += 1;
        c.max_live_connections = c.max_live_connections.max(c.live_connections);
        (id, rx)
    }

    /// Unregisters a connection (idempotent); its session keeps buffering. With
    /// `end_session` (the client closed with 1000/1001) the session is forgotten.
    pub(super) fn close_connection(&self, conn: u64, end_session: bool) {
        let mut state = self.state.lock();
        let Some(entry) = state.conns.remove(&conn) else {
            return;
        };
        state.counters.live_connections = state.counters.live_connections.saturating_sub(1);
        if let Some(session_id) = entry.session {
            if end_session {
                state.sessions.remove(&session_id);
            } else if let Some(session) = state.sessions.get_mut(&session_id)
                && session.conn == Some(conn)
            {
                session.conn = None;
            }
        }
    }

    /// Whether the connection is attached to a session.
    pub(super) fn is_authenticated(&self, conn: u64) -> bool {
        self.state
            .lock()
            .conns
            .get(&conn)
            .is_some_and(|c| c.session.is_some())
    }

    /// A good Identify on `conn`: a new session and its `READY`, or op 9 when the session
    /// start limit is used up.
    pub(super) fn identify(&self, conn: u64, token: &str, intents: u64) -> IdentifyOutcome {
        let limit = self.knobs.lock().session_start_limit;
        let ready_user = self.bot_user();
        let bot_id = self.knobs.lock().bot_id.clone();
        let mut state = self.state.lock();
        if state.sessions_started >= limit {
            state.counters.invalid_sessions += 1;
            if let Some(entry) = state.conns.get(&conn) {
                let _ = entry.tx.send(Cmd::Send(op_frame(9, json!(false))));
            }
            return IdentifyOutcome::LimitReached;
        }
        state.sessions_started += 1;
        state.session_nonce += 1;
        let session_id = self.session_id(state.session_nonce);
        state.sessions.insert(
            session_id.clone(),
            Session {
                token: token.to_owned(),
                intents,
                seq: 0,
                buffer: Vec::new(),
                conn: Some(conn),
            },
        );
        if let Some(entry) = state.conns.get_mut(&conn) {
            entry.session = Some(session_id.clone());
        }
        let ready = json!({
            "v": 10,
            "user": ready_user,
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "guilds": [],
            "private_channels": [],
            "relationships": [],
            "application": {"id": bot_id, "flags": 0},
            "_trace": ["[\"pincer-fake-gateway\",{\"micros\":1}]"],
        });
        state.dispatch_to(&session_id, "READY", ready);
        IdentifyOutcome::Ready
    }

    /// A Resume on `conn` with a valid token.
    pub(super) fn resume(
        &self,
        conn: u64,
        token: &str,
        session_id: &str,
        seq: u64,
    ) -> ResumeOutcome {
        let mut state = self.state.lock();
        let state = &mut *state;
        let Some(session) = state
            .sessions
            .get_mut(session_id)
            .filter(|s| s.token == token)
        else {
            state.counters.invalid_sessions += 1;
            if let Some(entry) = state.conns.get(&conn) {
                let _ = entry.tx.send(Cmd::Send(op_frame(9, json!(false))));
            }
            return ResumeOutcome::Invalid;
        };
        if seq > session.seq {
            let old = session.conn;
            state.sessions.remove(session_id);
            if let Some(old) = old
                && let Some(entry) = state.conns.get_mut(&old)
            {
                entry.session = None;
            }
            return ResumeOutcome::BadSeq;
        }
        // One live connection per session: the one resuming wins, the old one is detached
        // at once and closed with 4000.
        if let Some(old) = session.conn.replace(conn)
            && old != conn
            && let Some(entry) = state.conns.remove(&old)
        {
            state.counters.live_connections = state.counters.live_connections.saturating_sub(1);
            let _ = entry
                .tx
                .send(Cmd::Close(4000, "Session resumed on another connection."));
        }
        let Some(entry) = state.conns.get_mut(&conn) else {
            // The connection died meanwhile: nothing to replay to.
            session.conn = None;
            return ResumeOutcome::Resumed;
        };
        entry.session = Some(session_id.to_owned());
        let mut replayed = 0;
        for (_, text) in session.buffer.iter().filter(|(s, _)| *s > seq) {
            let _ = entry.tx.send(Cmd::Send(text.clone()));
            replayed += 1;
        }
        state.counters.replayed += replayed;
        state.counters.successful_resumes += 1;
        state.dispatch_to(
            session_id,
            "RESUMED",
            json!({"_trace": ["pincer-fake-gateway"]}),
        );
        ResumeOutcome::Resumed
    }

    // ---- server-side events ----

    pub(super) fn send_reconnect(&self) {
        let state = self.state.lock();
        for entry in state.conns.values() {
            let _ = entry.tx.send(Cmd::Send(op_frame(7, Value::Null)));
        }
    }

    pub(super) fn request_heartbeat(&self) {
        let state = self.state.lock();
        for entry in state.conns.values() {
            let _ = entry.tx.send(Cmd::Send(op_frame(1, Value::Null)));
        }
    }

    pub(super) fn invalidate_sessions(&self, resumable: bool) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let mut sent = 0;
        for (id, entry) in &mut state.conns {
            let Some(session_id) = entry.session.take() else {
                continue;
            };
            let _ = entry.tx.send(Cmd::Send(op_frame(9, json!(resumable))));
            sent += 1;
            if resumable {
                if let Some(session) = state.sessions.get_mut(&session_id)
                    && session.conn == Some(*id)
                {
                    session.conn = None;
                }
            } else {
                state.sessions.remove(&session_id);
            }
        }
        state.counters.invalid_sessions += sent;
    }

    pub(super) fn close_all(&self, code: u16) {
        self.end_all(|| Cmd::Close(code, close_reason(code)));
    }

    pub(super) fn drop_all(&self) {
        self.end_all(|| Cmd::Drop);
    }

    /// Tells every live connection to end and detaches them at once, so events from now on
    /// are buffered for a resume.
    fn end_all(&self, cmd: impl Fn() -> Cmd) {
        let ids: Vec<u64> = {
            let state = self.state.lock();
            for entry in state.conns.values() {
                let _ = entry.tx.send(cmd());
            }
            state.conns.keys().copied().collect()
        };
        for id in ids {
            self.close_connection(id, false);
        }
    }

    // ---- messages ----

    pub(super) fn user_message(&self, msg: &Incoming) -> String {
        let bot_id = self.knobs.lock().bot_id.clone();
        let bot_user = self.bot_user();
        let mut state = self.state.lock();
        let id = state.snowflake();
        state
            .channels
            .insert(msg.channel_id.clone(), msg.guild_id.clone());
        state.known_messages.insert(id.clone());
        let mut author = json!({
            "id": msg.author.id,
            "username": msg.author.username,
            "discriminator": "0",
            "global_name": msg.author.username,
            "avatar": null,
        });
        if msg.author.bot {
            author["bot"] = json!(true);
        }
        let event = MessageEvent {
            id: &id,
            channel_id: &msg.channel_id,
            guild_id: msg.guild_id.as_deref(),
            author,
            content: &msg.content,
            mentions: if msg.mentions_bot {
                vec![bot_user]
            } else {
                Vec::new()
            },
            reference: None,
            from_bot: msg.author.id == bot_id,
        };
        state.dispatch_message(&event);
        id
    }

    /// Records a message the bot posted and echoes it to its sessions. Returns the message
    /// object as REST answers it.
    pub(super) fn bot_message(
        &self,
        channel_id: &str,
        content: &str,
        reply_to: Option<&str>,
    ) -> Value {
        let bot_user = self.bot_user();
        let mut state = self.state.lock();
        let id = state.snowflake();
        state.known_messages.insert(id.clone());
        state.counters.messages_posted += 1;
        let guild_id = state.channels.get(channel_id).cloned().flatten();
        let reference = reply_to.map(|m| {
            let mut r = json!({"type": 0, "message_id": m, "channel_id": channel_id});
            if let Some(g) = &guild_id {
                r["guild_id"] = json!(g);
            }
            r
        });
        let event = MessageEvent {
            id: &id,
            channel_id,
            guild_id: guild_id.as_deref(),
            author: bot_user,
            content,
            mentions: Vec::new(),
            reference,
            from_bot: true,
        };
        let message = event.rest_object();
        state.dispatch_message(&event);
        // Recorded before the lock is released: the order of `all_messages` is the order
        // of the ids.
        self.messages.lock().push(BotMessage {
            id,
            channel_id: channel_id.to_owned(),
            content: content.to_owned(),
            reply_to: reply_to.map(str::to_owned),
            at: Instant::now(),
        });
        message
    }

    pub(super) fn message_exists(&self, id: &str) -> bool {
        self.state.lock().known_messages.contains(id)
    }

    pub(super) fn create_thread(&self, parent: &str, guild_id: &str, name: &str) -> String {
        let mut state = self.state.lock();
        let id = state.snowflake();
        state.channels.insert(id.clone(), Some(guild_id.to_owned()));
        let thread = json!({
            "id": id,
            "type": 11,
            "guild_id": guild_id,
            "parent_id": parent,
            "name": name,
            "last_message_id": null,
            "message_count": 0,
            "member_count": 0,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": false,
                "auto_archive_duration": 1440,
                "archive_timestamp": iso8601(unix_ms()),
                "locked": false,
            },
            "newly_created": true,
        });
        state.dispatch("THREAD_CREATE", |s| {
            (s.intents & INTENT_GUILDS != 0).then(|| thread.clone())
        });
        id
    }

    /// 32 random-looking hex digits.
    fn session_id(&self, nonce: u64) -> String {
        let part = |salt: u64| {
            let mut h = self.random.build_hasher();
            h.write_u64(nonce);
            h.write_u64(salt);
            h.write_u128(self.started.elapsed().as_nanos());
            h.finish()
        };
        format!("{:016x}{:016x}", part(1), part(2))
    }
}

/// A `MESSAGE_CREATE`, before per-session redaction.
struct MessageEvent<'a> {
    id: &'a str,
    channel_id: &'a str,
    guild_id: Option<&'a str>,
    author: Value,
    content: &'a str,
    mentions: Vec<Value>,
    reference: Option<Value>,
    /// Authored by the bot itself: its content is never redacted.
    from_bot: bool,
}

impl MessageEvent<'_> {
    /// The message object (REST shape, no `guild_id`/`member`).
    fn rest_object(&self) -> Value {
        let ms = snowflake_ms(self.id);
        let mut m = json!({
            "id": self.id,
            "type": if self.reference.is_some() { 19 } else { 0 },
            "channel_id": self.channel_id,
            "author": self.author,
            "content": self.content,
            "timestamp": iso8601(ms),
            "edited_timestamp": null,
            "tts": false,
            "mention_everyone": false,
            "mentions": self.mentions,
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": false,
            "flags": 0,
        });
        if let Some(r) = &self.reference {
            m["message_reference"] = r.clone();
        }
        m
    }

    /// The gateway `d` for a session with these intents, or `None` when the intents do not
    /// cover it.
    fn for_intents(&self, intents: u64) -> Option<Value> {
        let needed = if self.guild_id.is_some() {
            INTENT_GUILD_MESSAGES
        } else {
            INTENT_DIRECT_MESSAGES
        };
        if intents & needed == 0 {
            return None;
        }
        let mut d = self.rest_object();
        if let Some(g) = self.guild_id {
            d["guild_id"] = json!(g);
            d["member"] = json!({
                "roles": [],
                "joined_at": iso8601(DISCORD_EPOCH_MS),
                "deaf": false,
                "mute": false,
                "flags": 0,
            });
            let redact =
                intents & INTENT_MESSAGE_CONTENT == 0 && !self.from_bot && self.mentions.is_empty();
            if redact {
                d["content"] = json!("");
            }
        }
        Some(d)
    }
}

impl State {
    /// An increasing snowflake for "now".
    fn snowflake(&mut self) -> String {
        let ms = unix_ms().saturating_sub(DISCORD_EPOCH_MS);
        let candidate = ms << 22;
        self.last_snowflake = candidate.max(self.last_snowflake + 1);
        self.last_snowflake.to_string()
    }

    /// Dispatches `t` to every session for which `d_for` gives a payload.
    fn dispatch(&mut self, t: &str, d_for: impl Fn(&Session) -> Option<Value>) {
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            let Some(d) = self.sessions.get(&id).and_then(&d_for) else {
                continue;
            };
            self.dispatch_to(&id, t, d);
        }
    }

    fn dispatch_message(&mut self, event: &MessageEvent<'_>) {
        self.dispatch("MESSAGE_CREATE", |s| event.for_intents(s.intents));
    }

    /// Gives the event the session's next `s`, buffers it and sends it to the session's
    /// live connection, if any.
    fn dispatch_to(&mut self, session_id: &str, t: &str, d: Value) {
        let Some(session) = self.sessions.get_mut(session_id) else {
            return;
        };
        session.seq += 1;
        let text = json!({"op": 0, "t": t, "s": session.seq, "d": d}).to_string();
        session.buffer.push((session.seq, text.clone()));
        if let Some(entry) = session.conn.and_then(|c| self.conns.get(&c)) {
            let _ = entry.tx.send(Cmd::Send(text));
        }
        self.counters.dispatched += 1;
    }
}

/// `{"op":OP,"d":D,"s":null,"t":null}` as text.
pub(super) fn op_frame(op: u64, d: Value) -> String {
    json!({"op": op, "d": d, "s": null, "t": null}).to_string()
}

/// The reason Discord gives with each gateway close code.
pub(super) fn close_reason(code: u16) -> &'static str {
    match code {
        4000 => "Unknown error.",
        4001 => "Unknown opcode.",
        4002 => "Decode error.",
        4003 => "Not authenticated.",
        4004 => "Authentication failed.",
        4005 => "Already authenticated.",
        4007 => "Invalid seq.",
        4008 => "Rate limited.",
        4009 => "Session timed out.",
        4010 => "Invalid shard.",
        4011 => "Sharding required.",
        4012 => "Invalid API version.",
        4013 => "Invalid intent(s).",
        4014 => "Disallowed intent(s).",
        _ => "",
    }
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Seconds since the Unix epoch, `at` from now.
pub(super) fn epoch_secs_in(at: Duration) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (now + at).as_secs_f64()
}

fn snowflake_ms(id: &str) -> u64 {
    id.parse::<u64>()
        .map_or_else(|_| unix_ms(), |n| (n >> 22) + DISCORD_EPOCH_MS)
}

/// `2024-05-01T12:34:56.789000+00:00`, Discord's timestamp format.
pub(super) fn iso8601(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}000+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            iso8601(DISCORD_EPOCH_MS),
            "2015-01-01T00:00:00.000000+00:00"
        );
        assert_eq!(
            iso8601(1_709_251_199_123),
            "2024-02-29T23:59:59.123000+00:00"
        );
    }
}
