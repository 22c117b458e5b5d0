//! What the store keeps. Records that evolve are MessagePack with named fields, so a field
//! added later (with a serde default) still reads old rows.

use serde::{Deserialize, Serialize};

/// A message as a channel accepted it. Written to the inbox before upstream is
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbound {
    /// Channel kind: `web`, `http`, `telegram`, `discord`.
    pub channel: String,
    /// Account id.
    pub account: String,
    /// The upstream's id for this message (update id, message id, idempotency key):
    /// unique per channel and account, so a redelivery is recognised.
    pub upstream_id: String,
    /// Who or where it came from.
    pub peer: PeerRef,
    /// Thread or topic within the peer.
    #[serde(default)]
    pub thread: Option<String>,
    /// Discord guild.
    #[serde(default)]
    pub guild: Option<String>,
    /// Team.
    #[serde(default)]
    pub team: Option<String>,
    /// Agent asked for explicitly (the HTTP API's `model`, a Telegram topic's `agent`).
    #[serde(default)]
    pub agent: Option<String>,
    /// The config key of the Telegram DM topic it came from
    /// (`[channels.telegram.dm.topics.<key>]`): its prompt and skills apply.
    #[serde(default)]
    pub topic: Option<String>,
    /// The text.
    pub text: String,
    /// When it was accepted, ms since the Unix epoch.
    pub received_at_ms: u64,
}

/// A peer in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerRef {
    /// `dm`, `group`, `channel`, `user`, `session`.
    pub kind: String,
    /// The upstream id.
    pub id: String,
}

/// Where an inbox entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxState {
    /// Accepted, not answered yet: resumed after any restart.
    Pending,
    /// Answered (reply stored, transcript written), not yet sent upstream.
    Answered,
    /// Sent upstream.
    Delivered,
}

/// An inbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Row id.
    pub id: i64,
    /// The message.
    pub inbound: Inbound,
    /// Its state.
    pub state: InboxState,
    /// The session it was routed to, once known.
    pub session_key: Option<String>,
    /// The reply, once answered.
    pub reply: Option<String>,
}

/// Who wrote a transcript entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person.
    User,
    /// The agent.
    Assistant,
    /// The gateway (session commands, notices).
    System,
    /// A tool result.
    Tool,
}

/// One transcript entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Who.
    pub role: Role,
    /// What.
    pub content: String,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The model's thinking, kept here and not sent to chat users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// The inbox entry it answers or comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_id: Option<i64>,
}

/// A session's durable state: enough to revive it with its timers intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// `agent:<agent>:<channel>:<account>:<peer kind>:<peer id>[:thread:<id>]`.
    pub key: String,
    /// Agent id.
    pub agent: String,
    /// Channel kind.
    pub channel: String,
    /// Account id.
    pub account: String,
    /// Creation of the current context, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Last message, ms since the Unix epoch.
    pub last_active_ms: u64,
    /// Idle limit of this session (after `/session extend`), ms.
    pub idle_ms: u64,
    /// Max age of this session, ms; 0 = none.
    pub max_age_ms: u64,
    /// First transcript sequence number of the current context.
    pub context_from: i64,
    /// Turns in the current context.
    pub turns: u64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
