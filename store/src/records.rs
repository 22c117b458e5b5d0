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
    /// Bytes of context per thousand tokens, learnt from the provider's own counts, so a
    /// session that wakes or restarts budgets as well as before (0: none learnt yet).
    pub bytes_per_1k_tokens: u32,
}

impl SessionRow {
    /// When the context ends at the latest: the earlier of the idle and max-age deadlines,
    /// ms since the Unix epoch.
    pub fn expires_at_ms(&self) -> u64 {
        let idle = self.last_active_ms.saturating_add(self.idle_ms);
        if self.max_age_ms > 0 {
            idle.min(self.created_at_ms.saturating_add(self.max_age_ms))
        } else {
            idle
        }
    }
}

/// Where a session is: held by an actor, resting in the store, or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rest {
    /// An actor holds it (or held it when the process ended).
    Live,
    /// Its state is only in the store; its next message revives it.
    Hibernated,
    /// Its context expired; the next message starts a new one.
    Ended,
}

impl Rest {
    /// The stored word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Hibernated => "hibernated",
            Self::Ended => "ended",
        }
    }

    /// The state a stored word names.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "live" => Some(Self::Live),
            "hibernated" => Some(Self::Hibernated),
            "ended" => Some(Self::Ended),
            _ => None,
        }
    }
}

/// Which session rows a page lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// Only this agent's.
    pub agent: Option<String>,
    /// Only this channel kind's.
    pub channel: Option<String>,
    /// Only this account's.
    pub account: Option<String>,
    /// Only those in this state.
    pub state: Option<Rest>,
}

/// A standing approval: `agent`'s `tool` acts on `key` without asking (`/approve … always`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandingApproval {
    /// The agent.
    pub agent: String,
    /// The tool (`exec`).
    pub tool: String,
    /// What it may act on (for exec, the resolved binary path).
    pub key: String,
    /// When it was given, ms since the epoch.
    pub at_ms: u64,
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
