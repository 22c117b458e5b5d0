//! Conversations as a person lists them: one per session key, with a title (the first
//! message, or the one the person gave it), when it started, when it was last used, and
//! its turns. A given title is a channel fact (`channel_meta`, key `title:<session key>`),
//! so naming a chat needs no schema of its own.

use pincer_core::{Role, TranscriptEntry};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;

use super::StoreError;

/// Longest title kept, in characters: a first message is cut there, a given title refused
/// past it.
pub const MAX_TITLE_CHARS: usize = 120;

/// Transcript entries read from a chat's start to find its first message.
const HEAD_ENTRIES: i64 = 16;

/// One conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    /// Its session key.
    pub key: String,
    /// The title given to it, or its first message trimmed to [`MAX_TITLE_CHARS`].
    pub title: String,
    /// Whether the title was given (not taken from the first message).
    pub renamed: bool,
    /// Its first entry, ms since the Unix epoch (the session's start without one).
    pub started_at_ms: u64,
    /// Its last message, ms since the Unix epoch.
    pub last_active_ms: u64,
    /// Replies of its agent (whole, stopped or failed), across all its contexts.
    pub turns: u64,
}

/// The `channel_meta` key of a chat's given title.
pub(crate) fn title_key(session_key: &str) -> String {
    format!("title:{session_key}")
}

/// `text` as a title: spaces folded, trimmed, cut at [`MAX_TITLE_CHARS`].
pub fn title_of(text: &str) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= MAX_TITLE_CHARS {
        return folded;
    }
    let mut cut: String = folded.chars().take(MAX_TITLE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The chats whose session keys start with `prefix`, most recently used first: how many
/// there are, and `limit` of them from `offset`.
pub(crate) fn list(
    conn: &Connection,
    prefix: &str,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<Chat>), StoreError> {
    // LIKE would treat `_` and `%` in keys as wildcards; a range on the key does not.
    let (from, to) = (prefix.to_string(), format!("{prefix}\u{10FFFF}"));
    let total: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM sessions WHERE key >= ?1 AND key < ?2")
        .and_then(|mut s| s.query_row(params![from, to], |r| r.get(0)))
        .map_err(sql)?;
    let rows: Vec<(String, String, i64, i64)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, account, created_at, last_active FROM sessions
                 WHERE key >= ?1 AND key < ?2
                 ORDER BY last_active DESC, key LIMIT ?3 OFFSET ?4",
            )
            .map_err(sql)?;
        let rows = stmt
            .query_map(
                params![
                    from,
                    to,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(sql)?;
        rows.collect::<Result<_, _>>().map_err(sql)?
    };
    let mut chats = Vec::with_capacity(rows.len());
    for (key, account, created, last) in rows {
        chats.push(chat(conn, key, &account, created, last)?);
    }
    Ok((u64::try_from(total).unwrap_or(0), chats))
}

/// One chat's line, from its session row's fields and its transcript.
fn chat(
    conn: &Connection,
    key: String,
    account: &str,
    created: i64,
    last: i64,
) -> Result<Chat, StoreError> {
    let given: Option<String> = conn
        .query_row(
            "SELECT value FROM channel_meta WHERE account = ?1 AND key = ?2",
            params![account, title_key(&key)],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    let mut first: Option<(u64, String)> = None;
    let mut started = u64::try_from(created).unwrap_or(0);
    {
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, entry FROM transcript WHERE session_key = ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(sql)?;
        let mut rows = stmt.query(params![key, HEAD_ENTRIES]).map_err(sql)?;
        let mut at_start = true;
        while let Some(row) = rows.next().map_err(sql)? {
            let blob: Vec<u8> = row.get(1).map_err(sql)?;
            let entry: TranscriptEntry =
                rmp_serde::from_slice(&blob).map_err(|e| StoreError::Decode(e.to_string()))?;
            if at_start {
                started = entry.at_ms;
                at_start = false;
            }
            if entry.role == Role::User && !entry.content.trim().is_empty() {
                first = Some((entry.at_ms, entry.content));
                break;
            }
        }
    }
    let turns = count_replies(conn, &key)?;
    let (title, renamed) = match given {
        Some(title) => (title, true),
        None => (
            first.map(|(_, text)| title_of(&text)).unwrap_or_default(),
            false,
        ),
    };
    Ok(Chat {
        key,
        title,
        renamed,
        started_at_ms: started,
        last_active_ms: u64::try_from(last).unwrap_or(0),
        turns,
    })
}

/// Replies of the agent in a transcript: each entry's role is read, nothing else kept.
fn count_replies(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    #[derive(Deserialize)]
    struct Head {
        role: Role,
    }
    let mut stmt = conn
        .prepare_cached("SELECT entry FROM transcript WHERE session_key = ?1")
        .map_err(sql)?;
    let mut rows = stmt.query(params![key]).map_err(sql)?;
    let mut turns = 0;
    while let Some(row) = rows.next().map_err(sql)? {
        let blob = row.get_ref(0).map_err(sql)?.as_blob().map_err(|e| {
            StoreError::Decode(format!("transcript entry of `{key}` is not a blob: {e}"))
        })?;
        let head: Head =
            rmp_serde::from_slice(blob).map_err(|e| StoreError::Decode(e.to_string()))?;
        turns += u64::from(head.role == Role::Assistant);
    }
    Ok(turns)
}

/// Deletes a session's row, transcript, given title and inbox entries (pending ones too:
/// the router's sweep would otherwise bring the conversation back with them).
pub(crate) fn delete(conn: &Connection, key: &str, account: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM transcript WHERE session_key = ?1",
        params![key],
    )?;
    conn.execute("DELETE FROM sessions WHERE key = ?1", params![key])?;
    conn.execute("DELETE FROM inbox WHERE session_key = ?1", params![key])?;
    conn.execute(
        "DELETE FROM channel_meta WHERE account = ?1 AND key = ?2",
        params![account, title_key(key)],
    )?;
    Ok(())
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_fold_spaces_and_are_cut() {
        assert_eq!(title_of("  hello\n\n  world  "), "hello world");
        let long = "word ".repeat(100);
        let title = title_of(&long);
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert!(title.ends_with('…'));
    }
}
