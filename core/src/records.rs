//! The records that travel along a message's path: what a channel accepted ([`Inbound`]),
//! who it came from ([`PeerRef`]), and what a conversation is made of ([`Role`],
//! [`TranscriptEntry`]). The store keeps them as MessagePack with named fields, so a field
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
    /// Who sent it, in the channel's own ids (Telegram's `from.id`, Discord's author id):
    /// in a group, `peer` is the group and this the person. `None` on the web chat and the
    /// HTTP API, whose conversations are each one person's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// A digest of the request that carried it, when its upstream id is a client's
    /// idempotency key: a retry with that key must carry the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// What a caller of the OpenAI-compatible API brings besides `text` (its history,
    /// system messages, options and tools), as JSON the turn reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// A peer in a channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerRef {
    /// `dm`, `group`, `channel`, `user`, `session`.
    pub kind: String,
    /// The upstream id.
    pub id: String,
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
    /// On a [`Role::Tool`] entry, the call whose result `content` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolRecord>,
    /// On a summary (a [`Role::System`] entry written by compaction): the last sequence
    /// number it covers. The entries it covers stay in the transcript; the context is the
    /// summary and what follows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_through: Option<i64>,
    /// How a reply ended when it is not a whole answer: stopped by the person (the text
    /// is what had streamed) or failed (the text says why). `None`: a whole reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// How a reply that is not a whole answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The person stopped it: the text is what had streamed until then.
    Stopped,
    /// No model answered: the text says why.
    Failed,
}

/// A tool call of a turn, as the transcript keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolRecord {
    /// The tool.
    pub name: String,
    /// The model's id for the call.
    pub call_id: String,
    /// Its arguments, as the model gave them.
    pub arguments: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it ran, in ms.
    pub ms: u64,
}
