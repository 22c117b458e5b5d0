//! # pincer-store: inbox, sessions and transcripts in SQLite
//!
//! SQLite in WAL mode, one writer thread, group commit. [`Store`] is a cloneable handle
//! used by every part on the message path. Writes go to the writer thread (the `writer`
//! module); reads open their own connection on a blocking thread, which WAL lets run
//! beside the writer. A store that cannot write (read-only directory, full disk) reports
//! why through [`StoreHealth`] and keeps probing until it can.
//!
//! This crate knows no actors: the gateway's `store` actor owns the writer's life (it
//! starts the thread with [`Store::start_writer`], and a restarted actor starts a new one
//! that waits for the old one to finish its last group).

mod chats;
pub mod files;
mod health;
mod lock;
mod prune;
mod records;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

pub use chats::{Chat, MAX_TITLE_CHARS, title_of};
pub use health::StoreHealth;
pub use lock::{LockError, StoreLock, lock, lock_path};
use pincer_core::{Inbound, TranscriptEntry};
pub use prune::{BATCH as PRUNE_BATCH, PrunePass, Totals as Pruned, pause_after as prune_pause};
pub use records::{
    InboxEntry, InboxState, Rest, SecretAccess, SessionFilter, SessionRow, StandingApproval,
};
use writer::Request;

/// Requests waiting for the writer before senders wait too (back-pressure).
const QUEUE: usize = 8192;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot take writes now; the text says why.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// SQLite refused a statement.
    #[error("store error: {0}")]
    Sqlite(String),
    /// A record could not be encoded.
    #[error("cannot encode record: {0}")]
    Encode(String),
    /// A stored record could not be decoded.
    #[error("cannot decode stored record: {0}")]
    Decode(String),
    /// A row that should exist does not.
    #[error("not found: {0}")]
    NotFound(String),
}

/// The result of accepting an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The inbox row.
    pub id: i64,
    /// The same (channel, account, upstream id) was accepted before.
    pub duplicate: bool,
    /// The row's state (for a duplicate: how far the first delivery got).
    pub state: InboxState,
    /// The reply, if already answered.
    pub reply: Option<String>,
    /// What the reply carried besides its text ([`CommitTurn::reply_extra`]).
    pub reply_extra: Option<Vec<u8>>,
}

/// A turn's durable outcome: the session row, new transcript entries, the inbox entry
/// answered, all in one transaction.
#[derive(Debug, Clone)]
pub struct CommitTurn {
    /// The inbox entry answered, if the turn came from one.
    pub inbox_id: Option<i64>,
    /// The session as it is after the turn; `None` for a message answered without one
    /// (it could not be routed), which then has no transcript entries.
    pub session: Option<SessionRow>,
    /// Entries to append (the user's message, the reply, ...). A summary among them (an
    /// entry with `summary_through`) becomes the session's `summary_seq`.
    pub entries: Vec<TranscriptEntry>,
    /// The reply sent back upstream.
    pub reply: Option<String>,
    /// What the reply carries besides its text, encoded by the channel (the OpenAI API's
    /// usage and tool calls), so a retry with the same idempotency key gets it again.
    pub reply_extra: Option<Vec<u8>>,
}

/// What committing a turn did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Sequence number of the first appended entry.
    pub first_seq: Option<i64>,
    /// The inbox entry was answered before: nothing was written, this is the reply given
    /// then.
    pub already_answered: Option<String>,
}

/// A handle to the store. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    sender: RwLock<Option<mpsc::Sender<Request>>>,
    health: Arc<StoreHealth>,
    exclusive: Arc<Mutex<()>>,
    reader: Mutex<Option<Connection>>,
    wal: writer::WalPolicy,
}

// === impl Store ===

impl Store {
    /// A store at `path` (the file need not exist). No writer runs until
    /// [`Store::start_writer`] (normally: the `store` actor).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_wal_policy(path, writer::WalPolicy::default())
    }

    /// A store whose write-ahead log is checkpointed by `wal` (tests use small logs).
    fn with_wal_policy(path: impl Into<PathBuf>, wal: writer::WalPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                path: path.into(),
                sender: RwLock::new(None),
                health: Arc::new(StoreHealth::default()),
                exclusive: Arc::new(Mutex::new(())),
                reader: Mutex::new(None),
                wal,
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the store can write, and why not.
    pub fn health(&self) -> &StoreHealth {
        &self.inner.health
    }

    /// Starts a writer thread and routes writes to it. The previous writer, if any, ends
    /// after its queued requests; the new one starts writing only after it has ended.
    pub fn start_writer(&self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = writer::spawn(
            self.inner.path.clone(),
            rx,
            self.inner.health.clone(),
            self.inner.exclusive.clone(),
            self.inner.wal,
        )?;
        *self.inner.sender.write() = Some(tx);
        Ok(handle)
    }

    /// Stops routing writes to the current writer, which ends after its queue.
    pub fn stop_writer(&self) {
        self.inner.sender.write().take();
    }

    /// Writes an inbound message to the inbox. A redelivery of the same (channel, account,
    /// upstream id) is not written twice: it comes back with `duplicate = true`.
    pub async fn accept(&self, inbound: Inbound) -> Result<Accepted, StoreError> {
        self.request(|r| Request::Accept(Box::new(inbound), r))
            .await
    }

    /// Records which session an inbox entry was routed to.
    pub async fn route(&self, inbox_id: i64, session_key: &str) -> Result<(), StoreError> {
        let key = session_key.to_string();
        self.request(|r| Request::Route(inbox_id, key, r)).await
    }

    /// Commits a turn (see [`CommitTurn`]). Committing an inbox entry that is already
    /// answered writes nothing and returns the earlier reply.
    pub async fn commit_turn(&self, turn: CommitTurn) -> Result<Committed, StoreError> {
        self.request(|r| Request::CommitTurn(Box::new(turn), r))
            .await
    }

    /// Marks an answered inbox entry as sent upstream.
    pub async fn mark_delivered(&self, inbox_id: i64) -> Result<(), StoreError> {
        self.request(|r| Request::MarkDelivered(inbox_id, r)).await
    }

    /// Removes an inbox entry that is still pending: its session refused it (busy), and its
    /// sender was told to try again. An entry answered meanwhile stays.
    pub async fn refuse(&self, inbox_id: i64) -> Result<(), StoreError> {
        self.request(|r| Request::Refuse(inbox_id, r)).await
    }

    /// Saves a session row (timers, context start, turns) of a live session.
    pub async fn save_session(&self, row: SessionRow) -> Result<(), StoreError> {
        self.save_session_as(row, Rest::Live).await
    }

    /// Saves a session row and leaves it in state `rest` (a hibernating session's last
    /// write is `Rest::Hibernated`).
    pub async fn save_session_as(&self, row: SessionRow, rest: Rest) -> Result<(), StoreError> {
        self.request(|r| Request::SaveSession(Box::new(row), rest, r))
            .await
    }

    /// Moves session `key` from state `from` to `to`; false if it was not in `from`.
    pub async fn set_rest(&self, key: &str, from: Rest, to: Rest) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.request(|r| Request::SetRest(key, from, to, r)).await
    }

    /// Ends at most `limit` hibernated sessions of `account` whose time is past at
    /// `now_ms`, without waking them. Returns how many, and the earliest expiry of the
    /// hibernated sessions left.
    pub async fn expire_hibernated(
        &self,
        account: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<(u64, Option<u64>), StoreError> {
        let account = account.to_string();
        self.request(|r| Request::ExpireRest(account, now_ms, limit, r))
            .await
    }

    /// Deletes a conversation: the session's row, transcript, given title and inbox
    /// entries (see [`Chat`]). Its actor must be stopped first, or it writes again.
    pub async fn delete_session(&self, key: &str, account: &str) -> Result<(), StoreError> {
        let (key, account) = (key.to_string(), account.to_string());
        self.request(|r| Request::DeleteSession(key, account, r))
            .await
    }

    /// Gives the conversation of session `key` (of `account`) a title, at most
    /// [`MAX_TITLE_CHARS`] characters; an empty one takes its first message again.
    pub async fn set_title(&self, key: &str, account: &str, title: &str) -> Result<(), StoreError> {
        let title = title_of(title);
        if title.chars().count() > MAX_TITLE_CHARS {
            return Err(StoreError::Encode(format!(
                "a title has at most {MAX_TITLE_CHARS} characters"
            )));
        }
        let value = (!title.is_empty()).then_some(title);
        self.put_meta(account, &chats::title_key(key), value).await
    }

    /// Sets (or with `None` deletes) one remembered fact of a channel account.
    pub async fn put_meta(
        &self,
        account: &str,
        key: &str,
        value: Option<String>,
    ) -> Result<(), StoreError> {
        let (account, key) = (account.to_string(), key.to_string());
        self.request(|r| Request::PutMeta(account, key, value, r))
            .await
    }

    /// Keeps a standing approval: `agent`'s `tool` may act on `key` without asking.
    pub async fn approve(&self, agent: &str, tool: &str, key: &str) -> Result<(), StoreError> {
        let (agent, tool, key) = (agent.to_string(), tool.to_string(), key.to_string());
        self.request(|r| Request::Approve(agent, tool, key, r))
            .await
    }

    /// Withdraws a standing approval; whether there was one.
    pub async fn revoke(&self, agent: &str, tool: &str, key: &str) -> Result<bool, StoreError> {
        let (agent, tool, key) = (agent.to_string(), tool.to_string(), key.to_string());
        self.request(|r| Request::Revoke(agent, tool, key, r)).await
    }

    /// Standing approvals, of one agent or all, by agent, tool and key; at most `limit`.
    pub async fn approvals(
        &self,
        agent: Option<String>,
        limit: usize,
    ) -> Result<Vec<StandingApproval>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT agent, tool, key, at FROM approvals
                     WHERE ?1 IS NULL OR agent = ?1 ORDER BY agent, tool, key LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![agent, limit], |r| {
                    Ok(StandingApproval {
                        agent: r.get(0)?,
                        tool: r.get(1)?,
                        key: r.get(2)?,
                        at_ms: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql)).collect()
        })
        .await
    }

    /// Whether `agent`'s `tool` has a standing approval for `key`.
    pub async fn approved(&self, agent: &str, tool: &str, key: &str) -> Result<bool, StoreError> {
        let (agent, tool, key) = (agent.to_string(), tool.to_string(), key.to_string());
        self.read(move |conn| {
            conn.query_row(
                "SELECT 1 FROM approvals WHERE agent = ?1 AND tool = ?2 AND key = ?3",
                params![agent, tool, key],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(sql)
        })
        .await
    }

    /// Appends rows to the secrets access trail.
    pub async fn record_access(&self, rows: Vec<SecretAccess>) -> Result<(), StoreError> {
        self.request(|r| Request::RecordAccess(rows, r)).await
    }

    /// Access trail rows at or after `since_ms`, oldest first, at most `limit`.
    pub async fn access_since(
        &self,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<SecretAccess>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT at, actor, ref, outcome FROM secret_access
                     WHERE at >= ?1 ORDER BY at, id LIMIT ?2",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![since_ms as i64, limit as i64], |r| {
                    Ok(SecretAccess {
                        at: r.get::<_, i64>(0)? as u64,
                        actor: r.get(1)?,
                        reference: r.get(2)?,
                        outcome: r.get(3)?,
                    })
                })
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql)).collect()
        })
        .await
    }

    /// Runs the next batch of a retention pass (one short transaction, run when no other
    /// write waits) and gives the pass back; see [`PrunePass`].
    pub async fn prune(&self, pass: PrunePass) -> Result<PrunePass, StoreError> {
        self.request(|r| Request::Prune(Box::new(pass), r))
            .await
            .map(|pass| *pass)
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(writer::Reply<T>) -> Request,
    ) -> Result<T, StoreError> {
        if let Some(reason) = self.inner.health.refusal() {
            // Fail fast while the disk refuses writes; the writer keeps probing.
            return Err(StoreError::Unavailable(reason));
        }
        let sender = self
            .inner
            .sender
            .read()
            .clone()
            .ok_or_else(|| StoreError::Unavailable("store writer is not running".into()))?;
        let (tx, rx) = oneshot::channel();
        sender
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }

    // --- reads ---

    /// Inbox entries not yet delivered, oldest first: what to resume after a restart.
    pub async fn open_inbox(&self) -> Result<Vec<InboxEntry>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, payload, state, session_key, reply, reply_extra FROM inbox
                     WHERE state != 'delivered' ORDER BY id",
                )
                .map_err(sql)?;
            let rows = stmt.query_map([], inbox_row).map_err(sql)?;
            rows.map(|r| r.map_err(sql).and_then(decode_inbox))
                .collect()
        })
        .await
    }

    /// Inbox entries still waiting for an answer, oldest first, received at or before
    /// `received_before_ms`: what the router resumes.
    pub async fn pending_inbox(
        &self,
        received_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let before = i64::try_from(received_before_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(PENDING_INBOX).map_err(sql)?;
            let rows = stmt
                .query_map(params![before, limit], inbox_row)
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql).and_then(decode_inbox))
                .collect()
        })
        .await
    }

    /// Answered entries of one account not yet sent upstream, oldest first, answered at
    /// or before `answered_before_ms`: what a push channel sends again after a restart.
    pub async fn undelivered(
        &self,
        channel: &str,
        account: &str,
        answered_before_ms: u64,
        limit: usize,
    ) -> Result<Vec<InboxEntry>, StoreError> {
        let (c, a) = (channel.to_string(), account.to_string());
        let before = i64::try_from(answered_before_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, payload, state, session_key, reply, reply_extra FROM inbox
                     WHERE state = 'answered' AND channel = ?1 AND account = ?2
                       AND answered_at <= ?3
                     ORDER BY id LIMIT ?4",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![c, a, before, limit], inbox_row)
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql).and_then(decode_inbox))
                .collect()
        })
        .await
    }

    /// One remembered fact of a channel account.
    pub async fn meta(&self, account: &str, key: &str) -> Result<Option<String>, StoreError> {
        let (a, k) = (account.to_string(), key.to_string());
        self.read(move |conn| {
            conn.query_row(
                "SELECT value FROM channel_meta WHERE account = ?1 AND key = ?2",
                params![a, k],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    /// Every remembered fact whose key starts with `prefix`, of one account or (`None`)
    /// of all: `(account, key, value)` by account and key.
    pub async fn meta_with_prefix(
        &self,
        account: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let account = account.map(str::to_string);
        // LIKE would treat `_` and `%` in ids as wildcards; a range on the key does not.
        let (from, to) = (prefix.to_string(), format!("{prefix}\u{10FFFF}"));
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT account, key, value FROM channel_meta
                     WHERE (?1 IS NULL OR account = ?1) AND key >= ?2 AND key < ?3
                     ORDER BY account, key",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![account, from, to], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql)).collect()
        })
        .await
    }

    /// How many inbox entries wait for an answer, and how many answers wait to be sent.
    pub async fn inbox_depth(&self) -> Result<(u64, u64), StoreError> {
        self.read(|conn| {
            let count = |state: &str| -> Result<u64, StoreError> {
                conn.prepare_cached(COUNT_OPEN_INBOX)
                    .and_then(|mut s| s.query_row(params![state], |r| r.get::<_, i64>(0)))
                    .map(|n| u64::try_from(n).unwrap_or(0))
                    .map_err(sql)
            };
            Ok((count("pending")?, count("answered")?))
        })
        .await
    }

    /// The inbox entry for an upstream id (the HTTP API's idempotency key).
    pub async fn inbox_by_upstream(
        &self,
        channel: &str,
        account: &str,
        upstream_id: &str,
    ) -> Result<Option<InboxEntry>, StoreError> {
        let (c, a, u) = (
            channel.to_string(),
            account.to_string(),
            upstream_id.to_string(),
        );
        self.read(move |conn| {
            conn.query_row(
                "SELECT id, payload, state, session_key, reply, reply_extra FROM inbox
                 WHERE channel = ?1 AND account = ?2 AND upstream_id = ?3",
                params![c, a, u],
                inbox_row,
            )
            .optional()
            .map_err(sql)?
            .map(decode_inbox)
            .transpose()
        })
        .await
    }

    /// The state of inbox entry `id`, if it exists.
    pub async fn inbox_state(&self, id: i64) -> Result<Option<InboxState>, StoreError> {
        self.read(move |conn| {
            let state: Option<String> = conn
                .prepare_cached("SELECT state FROM inbox WHERE id = ?1")
                .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
                .map_err(sql)?;
            state.map(|s| writer::parse_state(&s)).transpose()
        })
        .await
    }

    /// A session row.
    pub async fn session(&self, key: &str) -> Result<Option<SessionRow>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            conn.query_row(
                &format!("{SESSION_SELECT} WHERE key = ?1"),
                params![key],
                session_row,
            )
            .optional()
            .map_err(sql)
        })
        .await
    }

    /// All session rows, by key.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!("{SESSION_SELECT} ORDER BY key"))
                .map_err(sql)?;
            let rows = stmt.query_map([], session_row).map_err(sql)?;
            rows.map(|r| r.map_err(sql)).collect()
        })
        .await
    }

    /// A session row and the state it rests in.
    pub async fn session_at_rest(
        &self,
        key: &str,
    ) -> Result<Option<(SessionRow, Rest)>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "{SESSION_COLUMNS}, state FROM sessions WHERE key = ?1"
            ))
            .and_then(|mut s| {
                s.query_row(params![key], |r| {
                    let rest: String = r.get(STATE_AFTER_SESSION)?;
                    Ok((
                        session_row(r)?,
                        Rest::parse(&rest).unwrap_or(Rest::Hibernated),
                    ))
                })
                .optional()
            })
            .map_err(sql)
        })
        .await
    }

    /// A page of session rows in key order, after `after` (exclusive), at most `limit`,
    /// with the state each rests in. An agent filter is a range of keys (keys begin with
    /// the agent), so it never scans other agents' rows.
    pub async fn sessions_page(
        &self,
        filter: SessionFilter,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(SessionRow, Rest)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            // Keys begin with their agent: a prefix or an agent is a range of the key index.
            let start = match (&filter.prefix, &filter.agent) {
                (Some(prefix), _) => prefix.clone(),
                (None, Some(agent)) => format!("agent:{agent}:"),
                (None, None) => String::new(),
            };
            let (from, to) = (start.clone(), format!("{start}\u{10FFFF}"));
            let (from, inclusive) = match after {
                Some(after) if after >= from => (after, false),
                _ => (from, true),
            };
            let mut stmt = conn
                .prepare_cached(&format!(
                    "{SESSION_COLUMNS}, state FROM sessions
                     WHERE (key > ?1 OR (?7 AND key = ?1)) AND key < ?2
                       AND (?3 IS NULL OR channel = ?3) AND (?4 IS NULL OR account = ?4)
                       AND (?5 IS NULL OR state = ?5) AND (?8 IS NULL OR agent = ?8)
                     ORDER BY key LIMIT ?6"
                ))
                .map_err(sql)?;
            let state = filter.state.map(Rest::as_str);
            let rows = stmt
                .query_map(
                    params![
                        from,
                        to,
                        filter.channel,
                        filter.account,
                        state,
                        limit,
                        inclusive,
                        filter.agent
                    ],
                    |r| {
                        let rest: String = r.get(STATE_AFTER_SESSION)?;
                        Ok((
                            session_row(r)?,
                            Rest::parse(&rest).unwrap_or(Rest::Hibernated),
                        ))
                    },
                )
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql)).collect()
        })
        .await
    }

    /// How many sessions of `account` are hibernated, and the earliest time one of them
    /// ends: what an account's keeper starts from (one indexed count, no rows loaded).
    pub async fn hibernated_of(&self, account: &str) -> Result<(u64, Option<u64>), StoreError> {
        let account = account.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT COUNT(*), MIN(expires_at) FROM sessions
                 WHERE account = ?1 AND state = 'hibernated'",
            )
            .and_then(|mut s| {
                s.query_row(params![account], |r| {
                    let n: i64 = r.get(0)?;
                    let next: Option<i64> = r.get(1)?;
                    Ok((
                        u64::try_from(n).unwrap_or(0),
                        next.map(|n| u64::try_from(n).unwrap_or(0)),
                    ))
                })
            })
            .map_err(sql)
        })
        .await
    }

    /// Keys of `account`'s sessions stored as live: after a crash or a restart of the
    /// account's sessions, those without an actor are hibernated again.
    pub async fn live_keys(&self, account: &str) -> Result<Vec<String>, StoreError> {
        let account = account.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT key FROM sessions WHERE account = ?1 AND state = 'live'")
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![account], |r| r.get(0))
                .map_err(sql)?;
            rows.map(|r| r.map_err(sql)).collect()
        })
        .await
    }

    /// The conversations whose session keys start with `prefix`, most recently used
    /// first: how many there are, and `limit` of them from `offset`.
    pub async fn chats(
        &self,
        prefix: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(u64, Vec<Chat>), StoreError> {
        let prefix = prefix.to_string();
        self.read(move |conn| chats::list(conn, &prefix, offset, limit))
            .await
    }

    /// The last `limit` entries of a session's transcript (all contexts), oldest first.
    pub async fn transcript_tail(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<(i64, TranscriptEntry)>, StoreError> {
        let key = key.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry FROM transcript WHERE session_key = ?1
                     ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(sql)?;
            let mut entries = entries(&mut stmt, params![key, limit])?;
            entries.reverse();
            Ok(entries)
        })
        .await
    }

    /// A session's whole transcript (all contexts), with sequence numbers.
    pub async fn transcript(&self, key: &str) -> Result<Vec<(i64, TranscriptEntry)>, StoreError> {
        self.transcript_from(key, 0).await
    }

    /// One entry of a session's transcript.
    pub async fn transcript_entry(
        &self,
        key: &str,
        seq: i64,
    ) -> Result<Option<TranscriptEntry>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            let blob: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT entry FROM transcript WHERE session_key = ?1 AND seq = ?2",
                    params![key, seq],
                    |r| r.get(0),
                )
                .optional()
                .map_err(sql)?;
            blob.map(|b| rmp_serde::from_slice(&b).map_err(|e| StoreError::Decode(e.to_string())))
                .transpose()
        })
        .await
    }

    /// The last sequence number of a session's transcript (0 when it has none).
    pub async fn last_seq(&self, key: &str) -> Result<i64, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE session_key = ?1",
            )
            .and_then(|mut s| s.query_row(params![key], |r| r.get(0)))
            .map_err(sql)
        })
        .await
    }

    /// A session's transcript from sequence number `from_seq` on.
    pub async fn transcript_from(
        &self,
        key: &str,
        from_seq: i64,
    ) -> Result<Vec<(i64, TranscriptEntry)>, StoreError> {
        let key = key.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, entry FROM transcript WHERE session_key = ?1 AND seq >= ?2
                     ORDER BY seq",
                )
                .map_err(sql)?;
            entries(&mut stmt, params![key, from_seq])
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = inner.reader.lock();
            if reader.is_none() {
                if !inner.path.exists() {
                    return Err(StoreError::Unavailable(format!(
                        "store {} does not exist yet",
                        inner.path.display()
                    )));
                }
                let conn = Connection::open_with_flags(
                    &inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sql)?;
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .map_err(sql)?;
                *reader = Some(conn);
            }
            match reader.as_ref() {
                Some(conn) => f(conn),
                None => Err(StoreError::Unavailable("no reader".into())),
            }
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("store reader failed: {e}")))?
    }
}

// The inbox's open entries have a partial index (`inbox_open`, `WHERE state !=
// 'delivered'`). SQLite uses a partial index only when the query repeats its condition
// word for word (`state = 'pending'` does not count): without it, these scanned every
// row of the inbox, and the router's sweep runs once a second.
/// Pending entries received before `?1`, oldest first, at most `?2`.
const PENDING_INBOX: &str = "SELECT id, payload, state, session_key, reply, reply_extra FROM inbox
     WHERE state = 'pending' AND state != 'delivered' AND received_at <= ?1
     ORDER BY id LIMIT ?2";
/// Open entries in state `?1` (pending or answered).
const COUNT_OPEN_INBOX: &str =
    "SELECT COUNT(*) FROM inbox WHERE state = ?1 AND state != 'delivered'";

macro_rules! session_columns {
    () => {
        "SELECT key, agent, channel, account, created_at, last_active, idle_ms, max_age_ms, \
         context_from, turns, summary_seq, bytes_per_1k_tokens"
    };
}
/// The columns of a [`SessionRow`], in [`session_row`]'s order.
const SESSION_COLUMNS: &str = session_columns!();
/// Where a `state` column selected after [`SESSION_COLUMNS`] is.
const STATE_AFTER_SESSION: usize = 12;
const SESSION_SELECT: &str = concat!(session_columns!(), " FROM sessions");

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e.to_string())
}

/// The `(seq, entry)` rows `stmt` selects with `params`, entries decoded.
fn entries(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<(i64, TranscriptEntry)>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(sql)?;
    rows.map(|r| {
        let (seq, blob) = r.map_err(sql)?;
        let entry = rmp_serde::from_slice(&blob).map_err(|e| StoreError::Decode(e.to_string()))?;
        Ok((seq, entry))
    })
    .collect()
}

/// An inbox row: id, payload, state, session key, reply, reply extra.
type InboxRow = (
    i64,
    Vec<u8>,
    String,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

fn inbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InboxRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn decode_inbox(
    (id, payload, state, session_key, reply, reply_extra): InboxRow,
) -> Result<InboxEntry, StoreError> {
    Ok(InboxEntry {
        id,
        inbound: rmp_serde::from_slice(&payload).map_err(|e| StoreError::Decode(e.to_string()))?,
        state: writer::parse_state(&state)?,
        session_key,
        reply,
        reply_extra,
    })
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let u = |i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(SessionRow {
        key: r.get(0)?,
        agent: r.get(1)?,
        channel: r.get(2)?,
        account: r.get(3)?,
        created_at_ms: u(4)?,
        last_active_ms: u(5)?,
        idle_ms: u(6)?,
        max_age_ms: u(7)?,
        context_from: r.get(8)?,
        turns: u(9)?,
        summary_seq: r.get(10)?,
        bytes_per_1k_tokens: r.get::<_, i64>(11).map(|v| u32::try_from(v).unwrap_or(0))?,
    })
}

#[cfg(test)]
mod tests;
