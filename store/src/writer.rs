//! The writer: one thread owns the write connection and commits in groups.
//!
//! Requests queue in a channel; the thread takes the first, then every request already
//! waiting (up to [`MAX_BATCH`]), and applies them in one transaction, each inside its own
//! savepoint so that one bad request fails alone. One fsync then covers the whole group,
//! which is what keeps accept latency flat under load. SQLite calls block, so they run on
//! this thread, never on a Tokio worker.
//!
//! The write-ahead log is folded back into the database in two steps. A checkpointer
//! thread copies it in bulk (and pays the fsyncs) beside the writer. But the log only
//! starts over when a write begins with every frame copied, and under steady load new
//! frames always arrive while the checkpointer copies: the log would grow without end
//! (measured: 47 MB/s at 1,000 chats/s). So once it is past [`WalPolicy::fold_frames`],
//! the writer itself copies the few frames left, between two groups, and its next write
//! starts the log over.
//!
//! Retention batches (`prune`) never join a group: each is its own short transaction, run
//! once nothing else is queued (or after [`PRUNE_PATIENCE`] under unbroken load), and it
//! ends early, committing what it did, when a write comes while it runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::health::StoreHealth;
use pincer_core::{Inbound, TranscriptEntry, now_ms};

use super::prune::{self, PrunePass};
use super::records::{InboxState, Rest, SessionRow};
use super::{Accepted, CommitTurn, Committed, StoreError, files, schema};

/// Most requests committed in one transaction.
const MAX_BATCH: usize = 512;

/// While the store cannot write, how often it tries again without being asked.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A reply channel for one request.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One write.
#[derive(Debug)]
pub(crate) enum Request {
    Accept(Box<Inbound>, Reply<Accepted>),
    Route(i64, String, Reply<()>),
    CommitTurn(Box<CommitTurn>, Reply<Committed>),
    MarkDelivered(i64, Reply<()>),
    /// Removes a pending entry its session refused.
    Refuse(i64, Reply<()>),
    /// A session row, with the state it is left in.
    SaveSession(Box<SessionRow>, Rest, Reply<()>),
    /// (key, from, to): moves a session between states if it is in `from`.
    SetRest(String, Rest, Rest, Reply<bool>),
    /// (account, now, limit): ends hibernated sessions past their time; how many, and the
    /// earliest time of those left.
    ExpireRest(String, u64, usize, Reply<(u64, Option<u64>)>),
    /// (account, key, value): `None` deletes.
    PutMeta(String, String, Option<String>, Reply<()>),
    /// Rows of the secrets access trail.
    RecordAccess(Vec<super::records::SecretAccess>, Reply<()>),
    /// (agent, tool, key): a standing approval.
    Approve(String, String, String, Reply<()>),
    /// (agent, tool, key): a standing approval withdrawn; whether there was one.
    Revoke(String, String, String, Reply<bool>),
    /// (session key, account): the session's row, transcript, inbox entries and title,
    /// gone.
    DeleteSession(String, String, Reply<()>),
    /// The next batch of a retention pass: runs alone, in its own transaction.
    Prune(Box<PrunePass>, Reply<Box<PrunePass>>),
}

/// Starts the writer thread. It waits for `exclusive` first, so a replacement never
/// writes while its predecessor still does, and ends when every sender is gone.
pub(crate) fn spawn(
    path: PathBuf,
    rx: mpsc::Receiver<Request>,
    health: Arc<StoreHealth>,
    exclusive: Arc<Mutex<()>>,
    policy: WalPolicy,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pincer-store".into())
        .spawn(move || {
            let _only_writer = exclusive.lock();
            let wal = Arc::new(Wal::default());
            let checkpointer = spawn_checkpointer(path.clone(), wal.clone(), policy);
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run(&path, rx, &health, &wal)
            }));
            wal.writing.store(false, Ordering::Release);
            if let Ok(checkpointer) = checkpointer {
                checkpointer.thread().unpark();
                let _ = checkpointer.join();
            }
            if let Err(panic) = ran {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                health.set_unwritable(format!("store writer crashed: {what}"));
            }
        })
}

/// When the write-ahead log is copied back into the database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalPolicy {
    /// How often the checkpointer copies the log.
    pub(crate) every: Duration,
    /// Frames (pages) in the log past which the writer finishes a copy itself, so that the
    /// log starts over.
    pub(crate) fold_frames: i64,
}

impl Default for WalPolicy {
    fn default() -> Self {
        Self {
            // Short passes: each copies about 1,000 frames at 1,000 chats/s (4 to 5 ms, with
            // its fsyncs) instead of 5,000 (15 to 20 ms). A long pass takes a core and the
            // disk from the writer for its whole length, and leaves more for the fold.
            every: Duration::from_millis(100),
            // 64 MB of 4 KiB pages. A fold stalls the writer for two fsyncs (1 to 8 ms
            // measured at 1,000 chats/s), so at that load it comes every 1.6 s rather than
            // every 0.5 s; under a light load the log starts over by itself between messages
            // and never folds.
            fold_frames: 16384,
        }
    }
}

/// What the writer and its checkpointer share.
#[derive(Debug)]
struct Wal {
    /// The writer runs; the checkpointer ends when it does not.
    writing: AtomicBool,
    /// The checkpointer saw the log past `fold_frames`: the writer should fold it.
    fold: AtomicBool,
    /// Groups the writer has committed: a checkpointer that finds no new ones and copied
    /// everything last time has nothing to do.
    commits: AtomicU64,
}

impl Default for Wal {
    fn default() -> Self {
        Self {
            writing: AtomicBool::new(true),
            fold: AtomicBool::new(false),
            commits: AtomicU64::new(0),
        }
    }
}

/// Once asked to fold, how long the writer waits for a moment with nothing queued before
/// it folds anyway (a fold delays the group behind it by a copy and two fsyncs).
const FOLD_PATIENCE: Duration = Duration::from_millis(250);

/// Checkpoints on a thread of its own: SQLite's automatic checkpoint runs inside a commit
/// and fsyncs there, which would stall every request of that group. A PASSIVE checkpoint
/// from another connection runs beside the writer and never blocks it.
fn spawn_checkpointer(
    path: PathBuf,
    wal: Arc<Wal>,
    policy: WalPolicy,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("pincer-checkpoint".into())
        .spawn(move || {
            let mut conn: Option<Connection> = None;
            // Commits already copied, as of the last pass that copied the whole log.
            let mut copied_up_to = None;
            while wal.writing.load(Ordering::Acquire) {
                // The writer unparks it when it stops.
                std::thread::park_timeout(policy.every);
                let commits = wal.commits.load(Ordering::Acquire);
                if copied_up_to == Some(commits) {
                    continue; // idle: nothing new since everything was copied
                }
                if conn.is_none() && path.exists() {
                    conn = Connection::open(&path)
                        .ok()
                        .filter(|c| c.busy_timeout(Duration::from_millis(100)).is_ok());
                }
                // Busy or failing: the next round tries again; the log only grows.
                let Some(Ok((busy, log, copied))) = conn.as_ref().map(checkpoint) else {
                    continue;
                };
                copied_up_to = (!busy && copied >= log).then_some(commits);
                if log >= policy.fold_frames {
                    wal.fold.store(true, Ordering::Release);
                }
            }
        })
}

/// A PASSIVE checkpoint: (busy, frames in the log, frames copied).
fn checkpoint(conn: &Connection) -> rusqlite::Result<(bool, i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(0)? != 0, r.get(1)?, r.get(2)?))
    })
}

/// The writer's half of a fold: copies what the checkpointer left, with no write running,
/// so every frame is copied and the next write starts the log over. `true` when done.
fn fold(conn: &Connection) -> bool {
    matches!(checkpoint(conn), Ok((false, log, copied)) if copied >= log)
}

fn run(path: &Path, mut rx: mpsc::Receiver<Request>, health: &StoreHealth, wal: &Wal) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            health.set_unwritable(format!("store writer cannot start: {e}"));
            return;
        }
    };
    let mut conn: Option<Connection> = None;
    let mut fold_asked: Option<std::time::Instant> = None;
    // Retention batches waiting for a moment with no other write queued, since when.
    let mut prunes = std::collections::VecDeque::new();
    loop {
        if conn.is_none() {
            match open(path) {
                Ok(c) => {
                    conn = Some(c);
                    probe(conn.as_mut(), path, health);
                }
                Err(e) => health.set_unwritable(format!(
                    "cannot open store {}: {e}{}",
                    path.display(),
                    os_cause(path)
                )),
            }
        }
        let first =
            runtime.block_on(async { tokio::time::timeout(PROBE_INTERVAL, rx.recv()).await });
        let first = match first {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(_) => {
                if !health.is_writable() {
                    probe(conn.as_mut(), path, health);
                }
                continue;
            }
        };
        let mut batch = vec![first];
        take_queued(&mut rx, &mut batch);
        set_aside_prunes(&mut batch, &mut prunes);
        if !batch.is_empty() && batch.iter().all(Request::can_wait) {
            runtime.block_on(wait_for_company(&mut rx, &mut batch));
            set_aside_prunes(&mut batch, &mut prunes);
        }
        let Some(c) = conn.as_mut() else {
            let reason = health
                .reason()
                .unwrap_or_else(|| "store is not open".into());
            for (request, _) in prunes.drain(..) {
                request.fail(StoreError::Unavailable(reason.clone()));
            }
            for request in batch {
                request.fail(StoreError::Unavailable(reason.clone()));
            }
            continue;
        };
        if !batch.is_empty() {
            commit_batch(c, batch, path, health);
            wal.commits.fetch_add(1, Ordering::Release);
            if wal.fold.load(Ordering::Acquire) {
                let asked = *fold_asked.get_or_insert_with(std::time::Instant::now);
                if (rx.is_empty() || asked.elapsed() >= FOLD_PATIENCE) && fold(c) {
                    wal.fold.store(false, Ordering::Release);
                    fold_asked = None;
                }
            }
        }
        // Retention batches run alone once nothing else waits, so a message queues behind
        // at most one of them. One left here means writes are queued: the next turn of the
        // loop takes them at once, then comes back to it.
        while let Some((_, since)) = prunes.front() {
            if !rx.is_empty() && since.elapsed() < PRUNE_PATIENCE {
                break;
            }
            if let Some((request, _)) = prunes.pop_front() {
                run_prune(c, request, &|| !rx.is_empty());
                wal.commits.fetch_add(1, Ordering::Release);
            }
        }
    }
}

/// Once a retention batch is asked for, how long it waits for a moment with nothing
/// queued before it runs anyway.
const PRUNE_PATIENCE: Duration = Duration::from_millis(250);

/// Moves the retention batches out of `batch` (they never share a transaction).
fn set_aside_prunes(
    batch: &mut Vec<Request>,
    prunes: &mut std::collections::VecDeque<(Request, std::time::Instant)>,
) {
    if !batch.iter().any(|r| matches!(r, Request::Prune(..))) {
        return;
    }
    for request in std::mem::take(batch) {
        if matches!(request, Request::Prune(..)) {
            prunes.push_back((request, std::time::Instant::now()));
        } else {
            batch.push(request);
        }
    }
}

/// One retention batch in its own transaction; `wanted` tells whether a write waits.
fn run_prune(conn: &mut Connection, request: Request, wanted: &dyn Fn() -> bool) {
    let Request::Prune(mut pass, reply) = request else {
        return request.fail(StoreError::Sqlite("not a retention batch".into()));
    };
    let outcome = prune::run_batch(conn, &mut pass, wanted).map_err(sql);
    let _ = reply.send(outcome.map(|()| pass));
}

/// SQLite says "unable to open database file" whatever the cause; the OS says why
/// (read-only file system, permission denied, no space left).
fn os_cause(path: &Path) -> String {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path);
    match file {
        Ok(_) => String::new(),
        Err(e) => format!(" ({e})"),
    }
}

/// Bytes the write-ahead log keeps on disk once it starts over: above the fold size plus
/// what the writer adds while it waits for a moment to fold, so a steady log is not cut.
const WAL_SIZE_LIMIT: i64 = 96 * 1024 * 1024;

pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        let _ = files::create_private_dir(dir);
    }
    // Before SQLite opens it: the log and its index get the database file's permissions.
    files::make_private(path);
    let mut conn = Connection::open(path)?;
    schema::configure(&conn)?;
    // Checkpoints run on their own thread (`spawn_checkpointer`), not inside commits.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // Room for every statement the writer runs (see `exec`).
    conn.set_prepared_statement_cache_capacity(32);
    // A log that grew in a burst is cut back to this when it starts over. Well above the
    // fold size, so a steady log keeps its blocks: cutting it each time cost the first
    // commit after a fold 5 to 8 ms (freeing and allocating the file's blocks).
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// A group of bookkeeping writes alone waits up to [`CAN_WAIT`] for a write someone is
/// waiting on, and commits with it: each commit costs a dozen system calls and several
/// pages of log, and under load this halves the commits per message.
async fn wait_for_company(rx: &mut mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
    let deadline = tokio::time::Instant::now() + CAN_WAIT;
    while batch.len() < MAX_BATCH {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(request)) => {
                let urgent = !request.can_wait();
                batch.push(request);
                if urgent {
                    break;
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
    take_queued(rx, batch);
}

/// Adds what is already queued to `batch`, up to [`MAX_BATCH`].
fn take_queued(rx: &mut mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
}

/// How long bookkeeping writes may wait for company.
const CAN_WAIT: Duration = Duration::from_millis(5);

/// A small write that tells whether the store can write now.
fn probe(conn: Option<&mut Connection>, path: &Path, health: &StoreHealth) {
    let Some(conn) = conn else {
        return;
    };
    let result = conn.transaction().and_then(|tx| {
        exec(
            &tx,
            "INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?1)",
            params![now_ms() as i64],
        )?;
        tx.commit()
    });
    match result {
        Ok(()) => wrote(path, health),
        Err(e) => health.set_unwritable(format!("store {} cannot write: {e}", path.display())),
    }
}

/// A write went through. After a refusal that alone does not make the store writable
/// again: a small write fits in pages the log already holds while a message does not (on a
/// full disk the probe succeeded between refused messages, and readiness flapped). It is
/// writable again once its disk has room.
fn wrote(path: &Path, health: &StoreHealth) {
    if health.refusal().is_some()
        && let Some(short) = short_of_room(path)
    {
        health.set_unwritable(short);
        return;
    }
    health.set_writable();
}

/// Free space a store that could not write needs before it writes again: 16 MB, or an
/// eighth of a small disk.
const ROOM: u64 = 16 * 1024 * 1024;

/// Why the disk holding `path` is too full to write on, if it is.
fn short_of_room(path: &Path) -> Option<String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let stat = rustix::fs::statvfs(dir).ok()?;
    let (free, size) = (
        stat.f_bavail.saturating_mul(stat.f_frsize),
        stat.f_blocks.saturating_mul(stat.f_frsize),
    );
    let need = ROOM.min(size / 8);
    (free < need).then(|| {
        format!(
            "the disk holding {} is full: writes resume once {} kB are free",
            dir.display(),
            need / 1024
        )
    })
}

pub(super) fn commit_batch(
    conn: &mut Connection,
    batch: Vec<Request>,
    path: &Path,
    health: &StoreHealth,
) {
    // Most groups succeed whole, so they are applied straight. Only when a request fails is
    // the group rolled back and applied again with a savepoint each, so that it fails alone
    // (savepoints cost a statement journal and two statements per request).
    let mut careful = false;
    let outcomes = loop {
        let mut tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => return refuse(batch, &e, path, health),
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in &batch {
            outcomes.push(if careful {
                in_savepoint(&mut tx, request)
            } else {
                request.apply(&tx)
            });
        }
        if outcomes.iter().any(Result::is_err) && !careful {
            drop(tx);
            if batch.len() > 1 {
                careful = true;
                continue;
            }
            // A lone request that failed: its error is the answer, nothing commits.
            break outcomes;
        }
        match tx.commit() {
            Ok(()) => {
                wrote(path, health);
                break outcomes;
            }
            Err(e) => return refuse(batch, &e, path, health),
        }
    };
    // A request that failed for want of storage (a full disk inside a statement, not at
    // the commit) says the store cannot write, as a failed commit does.
    if let Some(Err(StoreError::Unavailable(why))) = outcomes
        .iter()
        .find(|o| matches!(o, Err(StoreError::Unavailable(_))))
    {
        health.set_unwritable(format!("store {} cannot write: {why}", path.display()));
    }
    for (request, outcome) in batch.into_iter().zip(outcomes) {
        request.finish(outcome);
    }
}

/// A group the store could not write: every request gets the reason, which readiness shows.
fn refuse(batch: Vec<Request>, error: &rusqlite::Error, path: &Path, health: &StoreHealth) {
    let reason = format!("store {} cannot write: {error}", path.display());
    health.set_unwritable(reason.clone());
    for request in batch {
        request.fail(StoreError::Unavailable(reason.clone()));
    }
}

/// Applies one request of a group inside a savepoint, so that failing undoes only it.
fn in_savepoint(
    tx: &mut rusqlite::Transaction<'_>,
    request: &Request,
) -> Result<Outcome, StoreError> {
    let sp = tx.savepoint().map_err(sql)?;
    let result = request.apply(&sp);
    if result.is_ok() {
        sp.commit().map_err(sql).and(result)
    } else {
        result
    }
}

/// What a request produced, before the transaction is known to have committed.
#[derive(Debug)]
enum Outcome {
    Accepted(Accepted),
    Committed(Committed),
    Changed(bool),
    Expired(u64, Option<u64>),
    Done,
}

impl Request {
    /// Bookkeeping nobody waits on to answer a message (where a message was routed, that
    /// its reply went out, the secrets trail): it may wait a moment for a commit.
    fn can_wait(&self) -> bool {
        matches!(
            self,
            Self::Route(..) | Self::MarkDelivered(..) | Self::RecordAccess(..)
        )
    }

    fn apply(&self, tx: &Connection) -> Result<Outcome, StoreError> {
        match self {
            Self::Accept(inbound, _) => accept(tx, inbound).map(Outcome::Accepted),
            Self::Route(id, key, _) => {
                exec(
                    tx,
                    "UPDATE inbox SET session_key = ?1 WHERE id = ?2",
                    params![key, id],
                )
                .map_err(sql)?;
                Ok(Outcome::Done)
            }
            Self::CommitTurn(turn, _) => commit_turn(tx, turn).map(Outcome::Committed),
            Self::MarkDelivered(id, _) => {
                exec(
                    tx,
                    "UPDATE inbox SET state = 'delivered' WHERE id = ?1 AND state = 'answered'",
                    params![id],
                )
                .map_err(sql)?;
                Ok(Outcome::Done)
            }
            Self::Refuse(id, _) => {
                exec(
                    tx,
                    "DELETE FROM inbox WHERE id = ?1 AND state = 'pending'",
                    params![id],
                )
                .map_err(sql)?;
                Ok(Outcome::Done)
            }
            Self::SaveSession(row, rest, _) => {
                save_session(tx, row, *rest)?;
                Ok(Outcome::Done)
            }
            Self::SetRest(key, from, to, _) => {
                let changed = exec(
                    tx,
                    "UPDATE sessions SET state = ?1 WHERE key = ?2 AND state = ?3",
                    params![to.as_str(), key, from.as_str()],
                )
                .map_err(sql)?;
                Ok(Outcome::Changed(changed > 0))
            }
            Self::ExpireRest(account, now, limit, _) => {
                let now = i64::try_from(*now).unwrap_or(i64::MAX);
                let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
                // A bounded batch, so one pass never holds the writer long; the keeper
                // comes back at once while some are left past their time.
                let ended = exec(
                    tx,
                    "UPDATE sessions SET state = 'ended' WHERE rowid IN (
                         SELECT rowid FROM sessions
                         WHERE account = ?1 AND state = 'hibernated' AND expires_at <= ?2
                         ORDER BY expires_at LIMIT ?3)",
                    params![account, now, limit],
                )
                .map_err(sql)?;
                let next: Option<i64> = query_row(
                    tx,
                    "SELECT MIN(expires_at) FROM sessions WHERE account = ?1 AND state = 'hibernated'",
                    params![account],
                    |r| r.get(0),
                )
                .map_err(sql)?;
                Ok(Outcome::Expired(
                    ended as u64,
                    next.map(|n| u64::try_from(n).unwrap_or(0)),
                ))
            }
            Self::PutMeta(account, key, value, _) => {
                match value {
                    Some(value) => exec(
                        tx,
                        "INSERT OR REPLACE INTO channel_meta (account, key, value, at)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![account, key, value, now_ms() as i64],
                    ),
                    None => exec(
                        tx,
                        "DELETE FROM channel_meta WHERE account = ?1 AND key = ?2",
                        params![account, key],
                    ),
                }
                .map_err(sql)?;
                Ok(Outcome::Done)
            }
            Self::Approve(agent, tool, key, _) => {
                exec(
                    tx,
                    "INSERT OR REPLACE INTO approvals (agent, tool, key, at) VALUES (?1, ?2, ?3, ?4)",
                    params![agent, tool, key, now_ms() as i64],
                )
                .map_err(sql)?;
                Ok(Outcome::Done)
            }
            Self::Revoke(agent, tool, key, _) => {
                let gone = exec(
                    tx,
                    "DELETE FROM approvals WHERE agent = ?1 AND tool = ?2 AND key = ?3",
                    params![agent, tool, key],
                )
                .map_err(sql)?;
                Ok(Outcome::Changed(gone > 0))
            }
            Self::RecordAccess(rows, _) => {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO secret_access (at, actor, ref, outcome) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(sql)?;
                for row in rows {
                    stmt.execute(params![
                        row.at as i64,
                        row.actor,
                        row.reference,
                        row.outcome
                    ])
                    .map_err(sql)?;
                }
                Ok(Outcome::Done)
            }
            Self::DeleteSession(key, account, _) => {
                super::chats::delete(tx, key, account).map_err(sql)?;
                Ok(Outcome::Done)
            }
            // Set aside before a group is applied (`set_aside_prunes`).
            Self::Prune(..) => Err(StoreError::Sqlite(
                "a retention batch runs in its own transaction".into(),
            )),
        }
    }

    fn finish(self, outcome: Result<Outcome, StoreError>) {
        match (self, outcome) {
            (Self::Accept(_, r), Ok(Outcome::Accepted(a))) => drop(r.send(Ok(a))),
            (Self::CommitTurn(_, r), Ok(Outcome::Committed(c))) => drop(r.send(Ok(c))),
            (Self::SetRest(_, _, _, r) | Self::Revoke(_, _, _, r), Ok(Outcome::Changed(c))) => {
                drop(r.send(Ok(c)))
            }
            (Self::ExpireRest(_, _, _, r), Ok(Outcome::Expired(n, next))) => {
                drop(r.send(Ok((n, next))))
            }
            (
                Self::Route(_, _, r)
                | Self::MarkDelivered(_, r)
                | Self::Refuse(_, r)
                | Self::SaveSession(_, _, r)
                | Self::PutMeta(_, _, _, r)
                | Self::Approve(_, _, _, r)
                | Self::DeleteSession(_, _, r)
                | Self::RecordAccess(_, r),
                Ok(_),
            ) => drop(r.send(Ok(()))),
            (request, Err(e)) => request.fail(e),
            (request, Ok(other)) => {
                request.fail(StoreError::Sqlite(format!("unexpected outcome {other:?}")))
            }
        }
    }

    fn fail(self, error: StoreError) {
        match self {
            Self::Accept(_, r) => drop(r.send(Err(error))),
            Self::CommitTurn(_, r) => drop(r.send(Err(error))),
            Self::Prune(_, r) => drop(r.send(Err(error))),
            Self::SetRest(_, _, _, r) | Self::Revoke(_, _, _, r) => drop(r.send(Err(error))),
            Self::ExpireRest(_, _, _, r) => drop(r.send(Err(error))),
            Self::Route(_, _, r)
            | Self::MarkDelivered(_, r)
            | Self::Refuse(_, r)
            | Self::SaveSession(_, _, r)
            | Self::PutMeta(_, _, _, r)
            | Self::Approve(_, _, _, r)
            | Self::DeleteSession(_, _, r)
            | Self::RecordAccess(_, r) => drop(r.send(Err(error))),
        }
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
    match e.sqlite_error_code() {
        // Storage, not the statement: the store cannot write now.
        Some(DiskFull | ReadOnly | SystemIoFailure | CannotOpen) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Sqlite(e.to_string()),
    }
}

fn accept(tx: &Connection, inbound: &Inbound) -> Result<Accepted, StoreError> {
    let payload =
        rmp_serde::to_vec_named(inbound).map_err(|e| StoreError::Encode(e.to_string()))?;
    let inserted = tx
        .execute(
            "INSERT INTO inbox (channel, account, upstream_id, payload, state, received_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5)
             ON CONFLICT (channel, account, upstream_id) DO NOTHING",
            params![
                inbound.channel,
                inbound.account,
                inbound.upstream_id,
                payload,
                inbound.received_at_ms as i64
            ],
        )
        .map_err(sql)?;
    let (id, state, reply, reply_extra): (i64, String, Option<String>, Option<Vec<u8>>) =
        query_row(
            tx,
            "SELECT id, state, reply, reply_extra FROM inbox WHERE channel = ?1 AND account = ?2 AND upstream_id = ?3",
            params![inbound.channel, inbound.account, inbound.upstream_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(sql)?;
    Ok(Accepted {
        id,
        duplicate: inserted == 0,
        state: parse_state(&state)?,
        reply,
        reply_extra,
    })
}

fn commit_turn(tx: &Connection, turn: &CommitTurn) -> Result<Committed, StoreError> {
    if let Some(id) = turn.inbox_id {
        let row: Option<(String, Option<String>)> = query_row(
            tx,
            "SELECT state, reply FROM inbox WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql)?;
        match row {
            None => return Err(StoreError::NotFound(format!("inbox entry {id}"))),
            Some((state, reply)) if parse_state(&state)? != InboxState::Pending => {
                // Answered already (a resumed turn raced its first run): one reply only.
                return Ok(Committed {
                    first_seq: None,
                    already_answered: Some(reply.unwrap_or_default()),
                });
            }
            Some(_) => {}
        }
    }
    let key = turn.session.as_ref().map(|row| row.key.as_str());
    let mut first_seq = None;
    if let Some(row) = &turn.session {
        let mut seq: i64 = query_row(
            tx,
            "SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE session_key = ?1",
            params![row.key],
            |r| r.get(0),
        )
        .map_err(sql)?;
        first_seq = (!turn.entries.is_empty()).then_some(seq + 1);
        // A summary among the entries becomes the session's, in the same transaction.
        let mut row = row.clone();
        for (i, entry) in turn.entries.iter().enumerate() {
            if entry.summary_through.is_some() {
                row.summary_seq = seq + 1 + i as i64;
            }
        }
        // A turn is only committed by the actor that holds the session.
        save_session(tx, &row, Rest::Live)?;
        for entry in &turn.entries {
            seq += 1;
            let blob = encode_entry(entry)?;
            exec(
                tx,
                "INSERT INTO transcript (session_key, seq, entry) VALUES (?1, ?2, ?3)",
                params![row.key, seq, blob],
            )
            .map_err(sql)?;
        }
    }
    if let Some(id) = turn.inbox_id {
        exec(
            tx,
            "UPDATE inbox SET state = 'answered', reply = ?1,
                 session_key = COALESCE(?2, session_key), answered_at = ?3, reply_extra = ?5
             WHERE id = ?4",
            params![turn.reply, key, now_ms() as i64, id, turn.reply_extra],
        )
        .map_err(sql)?;
    }
    Ok(Committed {
        first_seq,
        already_answered: None,
    })
}

fn save_session(tx: &Connection, row: &SessionRow, rest: Rest) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO sessions (key, agent, channel, account, created_at, last_active, idle_ms,
                               max_age_ms, context_from, turns, summary_seq, state, expires_at,
                               bytes_per_1k_tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
         ON CONFLICT (key) DO UPDATE SET agent = ?2, channel = ?3, account = ?4,
             created_at = ?5, last_active = ?6, idle_ms = ?7, max_age_ms = ?8,
             context_from = ?9, turns = ?10, summary_seq = ?11, state = ?12,
             expires_at = ?13, bytes_per_1k_tokens = ?14",
        params![
            row.key,
            row.agent,
            row.channel,
            row.account,
            row.created_at_ms as i64,
            row.last_active_ms as i64,
            row.idle_ms as i64,
            row.max_age_ms as i64,
            row.context_from,
            row.turns as i64,
            row.summary_seq,
            rest.as_str(),
            i64::try_from(row.expires_at_ms()).unwrap_or(i64::MAX),
            i64::from(row.bytes_per_1k_tokens),
        ],
    )
    .map_err(sql)?;
    Ok(())
}

pub(crate) fn encode_entry(entry: &TranscriptEntry) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(entry).map_err(|e| StoreError::Encode(e.to_string()))
}

pub(crate) fn parse_state(state: &str) -> Result<InboxState, StoreError> {
    match state {
        "pending" => Ok(InboxState::Pending),
        "answered" => Ok(InboxState::Answered),
        "delivered" => Ok(InboxState::Delivered),
        other => Err(StoreError::Decode(format!("unknown inbox state `{other}`"))),
    }
}

/// Runs a statement kept in the connection's cache: these run thousands of times a second
/// under load, and parsing their SQL each time showed in the writer's profile.
fn exec(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// [`exec`] for a statement that returns one row.
fn query_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, row)
}
