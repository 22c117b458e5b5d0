//! A browser's past chats: listed from the store, opened, renamed, deleted; and the stop
//! of a reply in flight.
//!
//! Every frame names a chat by its agent and the page's session id; the session key is
//! made here from the socket's [`Owner`], so a page reaches only its own chats: another
//! browser naming the same session id names a key of its own, which it never wrote.

use std::fmt::Write as _;

use pincer_core::{Outcome, Role, TranscriptEntry};
use serde_json::{Value, json};

use super::LinkCtx;
use super::outbound::Outbound;
use super::owner::{Owner, check_id};
use crate::router::RouterMsg;

/// Chats a page may ask for at once.
pub(super) const MAX_CHATS_PAGE: usize = 50;

/// Transcript entries an opened chat shows (its latest).
pub(super) const MAX_OPEN_ENTRIES: usize = 200;

/// Bytes of text an opened chat sends at most, a quarter of the socket's queue
/// ([`super::outbound::MAX_QUEUED_BYTES`]) so a reply streaming meanwhile still fits:
/// older entries past it are left out (the frame says how many).
pub(super) const MAX_OPEN_BYTES: usize = 256 * 1024;

/// Characters of one entry's text sent at most.
const MAX_ENTRY_CHARS: usize = 64 * 1024;

/// Characters of a tool call's arguments sent.
const MAX_ARGUMENT_CHARS: usize = 300;

/// The session key of `owner`'s chat `session` with `agent` on web account `account`:
/// the key the router gives its messages (`send` names the agent; the peer is the owner's).
pub(super) fn key(agent: &str, account: &str, owner: &Owner, session: &str) -> String {
    format!("agent:{agent}:web:{account}:user:{}", owner.peer(session))
}

/// Checks an agent named by a frame: configured, and a plain id.
pub(super) fn check_agent(link: &LinkCtx, agent: &str) -> Result<(), String> {
    if link.config.current().agents.contains_key(agent) {
        Ok(())
    } else {
        Err(format!("no agent `{agent}`"))
    }
}

/// The `chats` frame: `owner`'s chats with `agent`, most recently used first.
pub(super) async fn list(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    offset: usize,
    limit: usize,
) -> Result<Value, String> {
    check_agent(link, agent)?;
    let prefix = key(agent, &link.account, owner, "");
    let limit = limit.clamp(1, MAX_CHATS_PAGE);
    let (total, chats) = link
        .store
        .chats(&prefix, offset, limit)
        .await
        .map_err(|e| format!("cannot list chats: {e}"))?;
    let items: Vec<Value> = chats
        .into_iter()
        .filter_map(|chat| {
            let session = chat.key.strip_prefix(&prefix)?.to_string();
            Some(json!({
                "session": session,
                "title": chat.title,
                "renamed": chat.renamed,
                "started_at_ms": chat.started_at_ms,
                "last_active_ms": chat.last_active_ms,
                "turns": chat.turns,
            }))
        })
        .collect();
    Ok(json!({
        "type": "chats", "agent": agent, "offset": offset, "total": total, "items": items,
    }))
}

/// The `transcript` frame of `owner`'s chat `session` with `agent`: its latest entries,
/// within [`MAX_OPEN_ENTRIES`] and [`MAX_OPEN_BYTES`].
pub(super) async fn open(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    session: &str,
) -> Result<Value, String> {
    let key = checked_key(link, owner, agent, session)?;
    let entries = link
        .store
        .transcript_tail(&key, MAX_OPEN_ENTRIES)
        .await
        .map_err(|e| format!("cannot read chat `{session}`: {e}"))?;
    let mut items = Vec::with_capacity(entries.len());
    let mut bytes = 0;
    let mut left_out = 0;
    for (seq, entry) in entries.into_iter().rev() {
        if bytes >= MAX_OPEN_BYTES {
            left_out += 1;
            continue;
        }
        let item = entry_json(seq, entry);
        bytes += item.to_string().len();
        items.push(item);
    }
    items.reverse();
    Ok(json!({
        "type": "transcript", "agent": agent, "session": session, "items": items,
        "left_out": left_out,
    }))
}

/// One transcript entry as the page shows it. Summaries and tool results are the model's
/// business: a tool call shows as its step line, a summary not at all.
fn entry_json(seq: i64, entry: TranscriptEntry) -> Value {
    let role = match entry.role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::System if entry.summary_through.is_some() => "summary",
        Role::System => "notice",
        Role::Tool => "tool",
    };
    let mut item = json!({
        "seq": seq,
        "role": role,
        "at_ms": entry.at_ms,
        "inbox": entry.inbox_id,
    });
    if role != "tool" && role != "summary" {
        item["text"] = json!(capped(&entry.content, MAX_ENTRY_CHARS));
    }
    match entry.outcome {
        Some(Outcome::Stopped) => item["outcome"] = json!("stopped"),
        Some(Outcome::Failed) => item["outcome"] = json!("failed"),
        None => {}
    }
    if let Some(tool) = entry.tool {
        item["tool"] = json!({
            "name": tool.name,
            "ok": tool.ok,
            "ms": tool.ms,
            "arguments": capped(&tool.arguments, MAX_ARGUMENT_CHARS),
        });
    }
    item
}

fn capped(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        None => text.to_string(),
        Some((at, _)) => {
            let mut cut = text[..at].to_string();
            let _ = write!(
                cut,
                "… ({} characters left out)",
                text[at..].chars().count()
            );
            cut
        }
    }
}

/// Renames `owner`'s chat `session` with `agent`; an empty title takes the first message
/// again.
pub(super) async fn rename(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    session: &str,
    title: &str,
) -> Result<Value, String> {
    let key = existing(link, owner, agent, session).await?;
    if title.chars().count() > pincer_store::MAX_TITLE_CHARS {
        return Err(format!(
            "a chat's title has at most {} characters",
            pincer_store::MAX_TITLE_CHARS
        ));
    }
    link.store
        .set_title(&key, &link.account, title)
        .await
        .map_err(|e| format!("cannot rename chat `{session}`: {e}"))?;
    Ok(json!({
        "type": "renamed", "agent": agent, "session": session,
        "title": pincer_store::title_of(title),
    }))
}

/// Deletes `owner`'s chat `session` with `agent`: its session stops (a reply in flight is
/// dropped), then its row, transcript and title go from the store. A chat whose first
/// reply is still coming has no row yet: its running session is what makes it a chat.
pub(super) async fn delete(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    session: &str,
) -> Result<Value, String> {
    let key = checked_key(link, owner, agent, session)?;
    let stored = existing(link, owner, agent, session).await;
    let (done, stopped) = tokio::sync::oneshot::channel();
    let close = RouterMsg::Close {
        account: link.account.clone(),
        key: key.clone(),
        done,
    };
    if !to_router(link, close) {
        return Err(format!(
            "cannot delete chat `{session}` now: the router is restarting; try again"
        ));
    }
    match (stored, stopped.await) {
        (Ok(_), Ok(_)) | (Err(_), Ok(true)) => {}
        (Err(why), Ok(false)) => return Err(why),
        (_, Err(_)) => {
            return Err(format!(
                "cannot delete chat `{session}` now: the router restarted; try again"
            ));
        }
    }
    link.store
        .delete_session(&key, &link.account)
        .await
        .map_err(|e| format!("cannot delete chat `{session}`: {e}"))?;
    Ok(json!({"type": "deleted", "agent": agent, "session": session}))
}

/// Asks the router to stop the reply to message `id` of `owner`'s chat `session`.
pub(super) fn stop(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    session: &str,
    id: &str,
) -> Result<(), String> {
    let key = checked_key(link, owner, agent, session)?;
    check_id("id", id)?;
    let peer = owner.peer(session);
    let stop = RouterMsg::Stop {
        account: link.account.clone(),
        key,
        upstream_id: super::socket::upstream_id(&peer, id),
    };
    if to_router(link, stop) {
        Ok(())
    } else {
        Err("cannot stop now: the router is restarting; try again".to_string())
    }
}

/// Casts `msg` to the router; false when it is not running.
fn to_router(link: &LinkCtx, msg: RouterMsg) -> bool {
    link.intake
        .router
        .get()
        .is_some_and(|router| router.cast(msg).is_ok())
}

/// The key of `owner`'s chat `session` with `agent`, once both names are checked.
fn checked_key(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    session: &str,
) -> Result<String, String> {
    check_agent(link, agent)?;
    check_id("session", session)?;
    Ok(key(agent, &link.account, owner, session))
}

/// The key of `owner`'s chat `session` with `agent`, if the store has it.
async fn existing(
    link: &LinkCtx,
    owner: &Owner,
    agent: &str,
    session: &str,
) -> Result<String, String> {
    let key = checked_key(link, owner, agent, session)?;
    match link.store.session(&key).await {
        Ok(Some(_)) => Ok(key),
        Ok(None) => Err(format!("you have no chat `{session}` with agent `{agent}`")),
        Err(e) => Err(format!("cannot read chat `{session}`: {e}")),
    }
}

/// Sends `result` (a frame, or an error about `what`) on `out`.
pub(super) fn reply(out: &Outbound, what: &str, session: &str, result: Result<Value, String>) {
    match result {
        Ok(frame) => out.frame(&frame),
        Err(message) => out.frame(&json!({
            "type": "error", "about": what, "session": session, "message": message,
        })),
    }
}
