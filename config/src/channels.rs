//! `[channels.*]`: web chat, the HTTP API, Telegram and Discord accounts.

use std::collections::BTreeMap;

use serde::Deserialize;

use std::time::Duration;

use super::duration;
use super::gateway::SessionOverrides;
use super::secret::SecretValue;

/// `[channels]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelsConfig {
    /// `[channels.web]`: the chat page at `/`.
    #[serde(default)]
    pub web: LocalChannel,
    /// `[channels.http]`: `POST /v1/chat/completions`.
    #[serde(default)]
    pub http: LocalChannel,
    /// `[channels.telegram]`.
    pub telegram: Option<TelegramConfig>,
    /// `[channels.discord]`.
    pub discord: Option<DiscordConfig>,
}

/// A channel served on the gateway's own port (one account, named after the channel: `web`, `http`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalChannel {
    /// Serve it. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Idle time before a session's context ends (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub idle_hours: Option<Duration>,
    /// Hard cap on a session's age (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub max_age_hours: Option<Duration>,
}

impl Default for LocalChannel {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_hours: None,
            max_age_hours: None,
        }
    }
}

/// `[channels.telegram]`: defaults for every Telegram account, and the accounts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramConfig {
    /// Idle time before a session's context ends (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub idle_hours: Option<Duration>,
    /// Hard cap on a session's age (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub max_age_hours: Option<Duration>,
    /// `[channels.telegram.dm]`.
    #[serde(default)]
    pub dm: TelegramDm,
    /// `[channels.telegram.groups]`.
    #[serde(default)]
    pub groups: TelegramGroups,
    /// `[channels.telegram.accounts.<id>]`.
    #[serde(default)]
    pub accounts: BTreeMap<String, TelegramAccount>,
}

/// `[channels.telegram.dm]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramDm {
    /// Who may start a conversation in a DM. Default `pairing`.
    #[serde(default)]
    pub dm_policy: DmPolicy,
    /// A DM without a topic gets a short explanation and no turn. Default false.
    #[serde(default)]
    pub require_topic: bool,
    /// Senders allowed under `allowlist` (user ids or @usernames).
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// `[channels.telegram.dm.topics.<name or id>]`.
    #[serde(default)]
    pub topics: BTreeMap<String, TopicConfig>,
}

/// Who may talk to a bot in a DM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// An unknown sender gets a one-time code to approve with `pincer pairing approve`.
    #[default]
    Pairing,
    /// Only `allowFrom`.
    Allowlist,
    /// Anyone.
    Open,
    /// No DMs.
    Disabled,
}

/// A DM topic: its own session, skills and prompt.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TopicConfig {
    /// Narrows the agent's tools to these in this topic (never adds one the agent lacks);
    /// the agent's whole set when unset.
    pub skills: Option<Vec<String>>,
    /// System prompt for this topic.
    pub system_prompt: Option<String>,
    /// Agent for this topic (else the binding's).
    pub agent: Option<String>,
}

/// `[channels.telegram.groups]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramGroups {
    /// Answer in groups only when mentioned. Default false.
    #[serde(default)]
    pub require_mention: bool,
}

/// `[channels.telegram.accounts.<id>]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TelegramAccount {
    /// Bot token (plaintext or a secret ref).
    pub token: Option<SecretValue>,
    /// Bot API base URL. Default `https://api.telegram.org`.
    pub api_base: Option<String>,
    /// `poll` (default) or `webhook`.
    #[serde(default)]
    pub mode: TelegramMode,
    /// Public URL Telegram posts updates to, in webhook mode.
    pub webhook_url: Option<String>,
    /// Secret Telegram echoes in `X-Telegram-Bot-Api-Secret-Token`.
    pub webhook_secret: Option<SecretValue>,
    /// Idle time before a session's context ends (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub idle_hours: Option<Duration>,
    /// Hard cap on a session's age (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub max_age_hours: Option<Duration>,
}

/// How a Telegram account receives updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelegramMode {
    /// `getUpdates` long polling.
    #[default]
    Poll,
    /// `setWebhook`, served on the gateway port.
    Webhook,
}

/// `[channels.discord]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordConfig {
    /// Idle time before a session's context ends (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub idle_hours: Option<Duration>,
    /// Hard cap on a session's age (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub max_age_hours: Option<Duration>,
    /// `[channels.discord.threads]`: timers of thread sessions.
    #[serde(default)]
    pub threads: SessionOverrides,
    /// `[channels.discord.accounts.<id>]`.
    #[serde(default)]
    pub accounts: BTreeMap<String, DiscordAccount>,
}

/// `[channels.discord.accounts.<id>]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordAccount {
    /// Bot token (plaintext or a secret ref).
    pub token: Option<SecretValue>,
    /// REST base URL. Default `https://discord.com/api/v10`; the socket URL comes from
    /// `GET /gateway/bot`.
    pub api_base: Option<String>,
    /// Idle time before a session's context ends (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub idle_hours: Option<Duration>,
    /// Hard cap on a session's age (overrides `[sessions]`).
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub max_age_hours: Option<Duration>,
}

const fn yes() -> bool {
    true
}

macro_rules! session_overrides {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The session timer overrides written here.
            pub fn sessions(&self) -> SessionOverrides {
                SessionOverrides {
                    idle_hours: self.idle_hours,
                    max_age_hours: self.max_age_hours,
                }
            }
        }
    )*};
}

session_overrides!(
    LocalChannel,
    TelegramConfig,
    TelegramAccount,
    DiscordConfig,
    DiscordAccount
);
