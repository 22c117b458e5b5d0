//! The schema, versioned with SQLite's `user_version`.

use rusqlite::Connection;

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY,
    channel      TEXT NOT NULL,
    account      TEXT NOT NULL,
    upstream_id  TEXT NOT NULL,
    payload      BLOB NOT NULL,
    state        TEXT NOT NULL,
    session_key  TEXT,
    reply        TEXT,
    received_at  INTEGER NOT NULL,
    answered_at  INTEGER,
    UNIQUE (channel, account, upstream_id)
);
CREATE INDEX inbox_open ON inbox (state) WHERE state != 'delivered';

CREATE TABLE sessions (
    key           TEXT PRIMARY KEY,
    agent         TEXT NOT NULL,
    channel       TEXT NOT NULL,
    account       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_active   INTEGER NOT NULL,
    idle_ms       INTEGER NOT NULL,
    max_age_ms    INTEGER NOT NULL,
    context_from  INTEGER NOT NULL,
    turns         INTEGER NOT NULL
);

CREATE TABLE transcript (
    session_key  TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    entry        BLOB NOT NULL,
    PRIMARY KEY (session_key, seq)
) WITHOUT ROWID;

CREATE TABLE probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL);
"#,
    r#"
-- What a channel account learns and must remember across restarts: Telegram topic names,
-- Discord thread parents, DM pairings. Small, keyed rows; values are JSON text.
CREATE TABLE channel_meta (
    account  TEXT NOT NULL,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (account, key)
) WITHOUT ROWID;
CREATE INDEX inbox_answered ON inbox (channel, account, answered_at) WHERE state = 'answered';
"#,
    r#"
-- The secrets access trail: which actor asked for which ref, when, and what it got
-- (never the value). One row per change of outcome or version, not per read.
CREATE TABLE secret_access (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    ref      TEXT NOT NULL,
    outcome  TEXT NOT NULL
);
CREATE INDEX secret_access_at ON secret_access (at);
"#,
    r#"
-- Standing approvals: `/approve <id> always` lets an agent's tool act on `key` (for exec,
-- a resolved binary path) from then on without asking.
CREATE TABLE approvals (
    agent  TEXT NOT NULL,
    tool   TEXT NOT NULL,
    key    TEXT NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (agent, tool, key)
) WITHOUT ROWID;
"#,
    r#"
-- The current context's latest summary entry (0: none): a session loads that summary and
-- the turns after those it covers, never its whole transcript.
ALTER TABLE sessions ADD COLUMN summary_seq INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- What an answered entry's reply carried besides its text (usage, calls of the caller's
-- tools), as the channel encoded it: a retry with the same idempotency key gets it again.
ALTER TABLE inbox ADD COLUMN reply_extra BLOB;
"#,
    r#"
-- Hibernation: `live` while an actor holds the session, `hibernated` while its state is
-- only here, `ended` once its context expired; `expires_at` is when it ends (the earlier
-- of idle and max age), so ending hibernated sessions is an indexed range per account,
-- never a load of every row. Rows from before are hibernated (no actor runs at a
-- migration); those already past their time are ended by the first expiry pass.
ALTER TABLE sessions ADD COLUMN state TEXT NOT NULL DEFAULT 'hibernated';
ALTER TABLE sessions ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET expires_at = CASE
    WHEN max_age_ms > 0 AND created_at + max_age_ms < last_active + idle_ms
    THEN created_at + max_age_ms ELSE last_active + idle_ms END;
CREATE INDEX sessions_rest ON sessions (account, state, expires_at);
"#,
    r#"
-- Bytes of context per thousand tokens, learnt from the provider's counts (0: none yet):
-- a session that wakes or restarts budgets its context as well as before.
ALTER TABLE sessions ADD COLUMN bytes_per_1k_tokens INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Opens settings every connection needs.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a power cut may lose the last commits but never corrupts; a
    // process kill loses nothing that was committed.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Brings the schema to the current version.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let version = usize::try_from(version).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}
