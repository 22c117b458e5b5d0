//! Retention: old answered inbox rows and old transcript entries, removed in small batches.
//!
//! A [`PrunePass`] walks the store once, a batch at a time; each batch is one short
//! transaction on the writer thread examining at most [`BATCH`] rows, run alone and only
//! when no other write is waiting (see the writer). A write that comes while a batch runs
//! ends it early (it looks every 32 rows removed), so a message waits behind a few dozen
//! deletes, not a batch. Whoever drives the pass (the gateway's `store` actor) spaces the
//! batches ([`pause_after`]).
//!
//! What may go:
//!
//! - **Inbox:** only rows `delivered` (answered and sent upstream) whose answer is older
//!   than the inbox retention. A row still pending, or answered but not yet sent, is kept
//!   however old: it is work the gateway still owes. Once a row is gone, a redelivery of its
//!   upstream id (an HTTP `Idempotency-Key`, a Telegram update) is a new message.
//! - **Transcripts:** entries older than the transcript retention (by their `at_ms`) that
//!   no conversation can use again: those before the session's current context
//!   (`context_from`, moved by `/new` and by expiry), and every entry of a session whose
//!   context has ended (idle or past its max age: its next message starts a new one). The
//!   entries of a live context are kept however old, since the model is shown them. Each
//!   session keeps its last entry, which carries its sequence number: new entries go on
//!   after it, and a session's context start keeps pointing at the right place. Session
//!   rows are kept (timers, turn counts).
//!
//! SQLite reuses the pages pruning frees; the database file does not shrink.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{SESSION_SELECT, SessionRow, session_row};

/// Rows one batch examines at most (and so deletes at most): a few milliseconds of the
/// writer's time.
pub const BATCH: usize = 500;

/// The least pause between two batches of a pass: at most 2,500 rows a second, which
/// keeps up with 2,500 messages a second sustained, and adds little to the log the
/// checkpointer copies. Measured (`cargo bench -p pincer-store --bench prune`): with 50 ms
/// pauses the pass doubled the log's growth under 1,000 messages a second, and the writer's
/// folds of the log took 10 to 33 ms instead of 2 (live p99 up by 5 to 70 ms); with 200 ms
/// live p99 stayed within the run-to-run noise.
const MIN_PAUSE: Duration = Duration::from_millis(200);

/// How long to wait before the next batch of a pass, after one that kept the writer for
/// `took`: at least 200 ms, and ten times the batch, so a pass never takes more than a
/// tenth of the writer's time and group commits keep coming between its batches.
pub fn pause_after(took: Duration) -> Duration {
    MIN_PAUSE.max(took.saturating_mul(10))
}

/// One walk over the store, removing what retention allows; see the [module docs](self).
/// Give it to [`crate::Store::prune`] until [`PrunePass::is_done`].
#[derive(Debug, Clone)]
pub struct PrunePass {
    now_ms: i64,
    inbox_before: Option<i64>,
    transcripts_before: Option<i64>,
    batch: usize,
    stage: Stage,
    /// The last inbox row examined.
    inbox_after: i64,
    /// Where the transcripts' walk is.
    transcript: Cursor,
    totals: Totals,
    /// The writer's time on the last batch.
    last_batch: Duration,
}

/// What a pass (or one batch) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Inbox rows removed.
    pub inbox: u64,
    /// Transcript entries removed.
    pub transcript: u64,
    /// Batches run.
    pub batches: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Inbox,
    Transcripts,
    Done,
}

/// Where the walk over transcripts is: session by session, in key order.
#[derive(Debug, Clone, Default)]
struct Cursor {
    /// The session being walked, or the last one walked.
    key: Option<String>,
    /// Within `key`, the last entry examined; `None`: `key` is done.
    after_seq: Option<i64>,
}

// === impl PrunePass ===

impl PrunePass {
    /// A pass at `now_ms` keeping delivered inbox rows for `inbox` and transcript entries
    /// for `transcripts` (`None`: for ever).
    pub fn new(now_ms: u64, inbox: Option<Duration>, transcripts: Option<Duration>) -> Self {
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let before = |keep: Duration| {
            now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
        };
        let (inbox_before, transcripts_before) = (inbox.map(before), transcripts.map(before));
        let stage = match (inbox_before, transcripts_before) {
            (Some(_), _) => Stage::Inbox,
            (None, Some(_)) => Stage::Transcripts,
            (None, None) => Stage::Done,
        };
        Self {
            now_ms: now,
            inbox_before,
            transcripts_before,
            batch: BATCH,
            stage,
            inbox_after: 0,
            transcript: Cursor::default(),
            totals: Totals::default(),
            last_batch: Duration::ZERO,
        }
    }

    /// Rows each batch examines at most (default [`BATCH`]).
    pub fn batch(mut self, rows: usize) -> Self {
        self.batch = rows.max(1);
        self
    }

    /// Whether the walk is over.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// What the pass removed so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The writer's time on the last batch (its transaction, not the wait before it):
    /// what [`pause_after`] paces by.
    pub fn last_batch_time(&self) -> Duration {
        self.last_batch
    }
}

/// Rows removed between two looks at whether a write waits: a batch ends early (and
/// commits what it did) when one does, so a message waits behind about this many deletes
/// rather than a whole batch.
const YIELD_EVERY: u64 = 32;

/// One batch's budget, and when it should end early.
struct Batch<'a> {
    /// Rows it may still examine.
    budget: usize,
    /// Rows it removed.
    removed: u64,
    /// Whether a write is waiting.
    wanted: &'a dyn Fn() -> bool,
    /// It ended early for a waiting write.
    yielded: bool,
}

impl Batch<'_> {
    /// After a removal: whether to end the batch now, for a write that waits.
    fn should_yield(&mut self) -> bool {
        self.removed += 1;
        if self.removed.is_multiple_of(YIELD_EVERY) && (self.wanted)() {
            self.yielded = true;
        }
        self.yielded
    }

    fn open(&self) -> bool {
        self.budget > 0 && !self.yielded
    }
}

/// Runs the next batch of `pass` in one transaction. `wanted` tells whether another write
/// waits: the batch then ends at its next look (every [`YIELD_EVERY`] rows removed).
pub(crate) fn run_batch(
    conn: &mut Connection,
    pass: &mut PrunePass,
    wanted: &dyn Fn() -> bool,
) -> rusqlite::Result<()> {
    if pass.is_done() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let tx = conn.transaction()?;
    let mut batch = Batch {
        budget: pass.batch,
        removed: 0,
        wanted,
        yielded: false,
    };
    let mut removed = Totals::default();
    if pass.stage == Stage::Inbox {
        removed.inbox = inbox_batch(&tx, pass, &mut batch)?;
    }
    if pass.stage == Stage::Transcripts && batch.open() {
        removed.transcript = transcript_batch(&tx, pass, &mut batch)?;
    }
    tx.commit()?;
    pass.totals.inbox += removed.inbox;
    pass.totals.transcript += removed.transcript;
    pass.totals.batches += 1;
    pass.last_batch = started.elapsed();
    Ok(())
}

/// Walks the inbox in id order (the order rows came in), removing delivered rows answered
/// before the cutoff; stops at the first row received after it (every later one is newer).
fn inbox_batch(
    tx: &Connection,
    pass: &mut PrunePass,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<u64> {
    let Some(before) = pass.inbox_before else {
        pass.stage = Stage::Transcripts;
        return Ok(0);
    };
    let asked = batch.budget;
    let rows: Vec<(i64, i64, bool)> = tx
        .prepare_cached(
            "SELECT id, received_at,
                    state = 'delivered' AND answered_at IS NOT NULL AND answered_at < ?2
             FROM inbox WHERE id > ?1 ORDER BY id LIMIT ?3",
        )?
        .query_map(params![pass.inbox_after, before, asked as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut removed = 0;
    let mut walked = rows.len() < asked;
    for &(id, received_at, prunable) in &rows {
        if received_at >= before {
            walked = true;
            break;
        }
        batch.budget -= 1;
        pass.inbox_after = id;
        if prunable {
            removed += tx
                .prepare_cached("DELETE FROM inbox WHERE id = ?1")?
                .execute(params![id])? as u64;
            if batch.should_yield() {
                walked = false;
                break;
            }
        }
    }
    if walked {
        pass.stage = Stage::Transcripts;
    }
    Ok(removed)
}

/// Walks sessions in key order, removing from each the entries no context can use again
/// that are older than the cutoff; a session costs one row of the budget, each entry
/// examined one more.
fn transcript_batch(
    tx: &Connection,
    pass: &mut PrunePass,
    batch: &mut Batch<'_>,
) -> rusqlite::Result<u64> {
    let Some(before) = pass.transcripts_before else {
        pass.stage = Stage::Done;
        return Ok(0);
    };
    let mut removed = 0;
    while batch.open() {
        let cursor = &pass.transcript;
        let key = cursor.key.as_deref().unwrap_or("");
        let session = if cursor.after_seq.is_some() {
            session(tx, "WHERE key = ?1", key)?
        } else {
            // Keys are never empty: `> ''` is every session.
            session(tx, "WHERE key > ?1 ORDER BY key LIMIT 1", key)?
        };
        let Some(row) = session else {
            pass.stage = Stage::Done;
            break;
        };
        batch.budget -= 1;
        let after = pass.transcript.after_seq.unwrap_or(0);
        let last: i64 = tx
            .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM transcript WHERE session_key = ?1")?
            .query_row(params![row.key], |r| r.get(0))?;
        // Entries below `upto` no context uses again; the last entry always stays.
        let upto = if context_ended(&row, pass.now_ms) {
            last
        } else {
            row.context_from.min(last)
        };
        let asked = batch.budget;
        let entries: Vec<(i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT seq, entry FROM transcript
                 WHERE session_key = ?1 AND seq > ?2 AND seq < ?3 ORDER BY seq LIMIT ?4",
            )?
            .query_map(params![row.key, after, upto, asked as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut walked = entries.len() < asked;
        let mut after_seq = after;
        for (seq, blob) in &entries {
            batch.budget -= 1;
            // Entries come in time order: the first one too young ends this session's walk.
            // One that does not decode is kept.
            if at_ms(blob).is_none_or(|at| at >= before) {
                walked = true;
                break;
            }
            removed += tx
                .prepare_cached("DELETE FROM transcript WHERE session_key = ?1 AND seq = ?2")?
                .execute(params![row.key, seq])? as u64;
            after_seq = *seq;
            if batch.should_yield() {
                walked = false;
                break;
            }
        }
        pass.transcript = Cursor {
            key: Some(row.key),
            after_seq: (!walked).then_some(after_seq),
        };
    }
    Ok(removed)
}

fn session(tx: &Connection, filter: &str, key: &str) -> rusqlite::Result<Option<SessionRow>> {
    tx.prepare_cached(&format!("{SESSION_SELECT} {filter}"))?
        .query_row(params![key], session_row)
        .optional()
}

/// Whether the session's context has ended: what the gateway's session actor checks when
/// it starts (`session::expired`), so its next message starts a new context.
fn context_ended(row: &SessionRow, now_ms: i64) -> bool {
    let now = u64::try_from(now_ms).unwrap_or(0);
    let idle = now >= row.last_active_ms.saturating_add(row.idle_ms);
    let aged = row.max_age_ms > 0 && now >= row.created_at_ms.saturating_add(row.max_age_ms);
    idle || aged
}

/// An entry's time, read without decoding the rest of it.
fn at_ms(blob: &[u8]) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct At {
        at_ms: u64,
    }
    let at: At = rmp_serde::from_slice(blob).ok()?;
    i64::try_from(at.at_ms).ok()
}
