//! `[[bindings]]`: which agent answers which channel, account, peer, guild or team.

use serde::{Deserialize, Serialize};

/// One binding: messages matching `match` go to `agent`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Binding {
    /// The agent id.
    pub agent: String,
    /// What the binding matches. All given fields must match.
    #[serde(rename = "match", default)]
    pub matches: BindingMatch,
}

/// The match of a binding. The most specific field given decides its tier: peer, guild,
/// team, account, channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingMatch {
    /// Channel kind: `telegram`, `discord`, `web`, `http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Account id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A chat, user, channel or thread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<Peer>,
    /// A Discord guild id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guild: Option<String>,
    /// A team id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// A peer: who or where a message comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Peer {
    /// `dm`, `group`, `channel`, `thread`, `topic`, `user`.
    pub kind: String,
    /// The upstream id.
    pub id: String,
}
