//! Session keys: which conversation a message belongs to.
//!
//! `agent:<agent>:<channel>:<account>:<peer kind>:<peer id>`, then `:topic:<id>` for a
//! Telegram topic or `:thread:<id>` for another channel's thread. The key names the
//! session's transcript in the store and (escaped by [`child_id`]) its actor in the tree.

use crate::records::Inbound;

/// The session key of `inbound` when it is routed to `agent`.
pub fn session_key(agent: &str, inbound: &Inbound) -> String {
    let mut key = format!(
        "agent:{agent}:{}:{}:{}:{}",
        inbound.channel, inbound.account, inbound.peer.kind, inbound.peer.id
    );
    if let Some(thread) = &inbound.thread {
        // Telegram calls them topics (forum and DM topics), Discord threads.
        key.push_str(if inbound.channel == "telegram" {
            ":topic:"
        } else {
            ":thread:"
        });
        key.push_str(thread);
    }
    key
}

/// The agent id in a session key.
pub fn agent_of(key: &str) -> Option<&str> {
    key.strip_prefix("agent:")?.split(':').next()
}

/// The child id of the session with `key` under its account's `sessions` supervisor (ids
/// may not contain `/`).
pub fn child_id(key: &str) -> String {
    format!(
        "session:{}",
        key.replace('%', "%25")
            .replace('/', "%2F")
            .replace(|c: char| c.is_control(), "%3F")
    )
}
