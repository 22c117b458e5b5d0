//! What the store keeps beside the shared records of `pincer_core`: inbox rows and their
//! states, session rows. Records that evolve are MessagePack with named fields, so a field
//! added later (with a serde default) still reads old rows.

use pincer_core::Inbound;
use serde::{Deserialize, Serialize};

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
    /// What the reply carried besides its text (`CommitTurn::reply_extra`).
    pub reply_extra: Option<Vec<u8>>,
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
    /// Sequence number of the current context's latest summary entry (0: none): the
    /// session's context is that summary and what follows the turns it covers.
    pub summary_seq: i64,
}

/// One row of the secrets access trail: which actor asked for which ref, when, and what it
/// got. Never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretAccess {
    /// Milliseconds since the epoch.
    pub at: u64,
    /// The actor path that asked.
    pub actor: String,
    /// The ref, settled (`vault:prod:app/openai#key`).
    pub reference: String,
    /// `ok`, `unresolved: …` or `denied: …`.
    pub outcome: String,
}
