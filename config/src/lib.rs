//! Configuration: typed, layered, validated.
//!
//! Layers, lowest first: `config/default.toml` (compiled in), the config file
//! (`--config`, `$PINCER_CONFIG`, or `$PINCER_HOME/pincer.toml`; TOML, JSON or JSON5), then
//! the environment: `PINCER__SECTION__KEY` for any key, each key's name uppercased
//! (`PINCER__PROVIDERS__OPENAI__APIKEY`, `PINCER__CHANNELS__DISCORD__THREADS__IDLEHOURS`;
//! the older `IDLE_HOURS` form works, with a deprecation warning), plus
//! `PINCER_GATEWAY_PORT`, `PINCER_GATEWAY_TOKEN` and `PINCER_GATEWAY_TOKEN_FILE` (a file
//! holding only the token, such as a Docker secret). A configured OpenAI or Anthropic
//! provider that names no key reads `OPENAI_API_KEY` or `ANTHROPIC_API_KEY`.
//!
//! Every struct rejects unknown keys, so a key we forgot to model fails a test rather than
//! being ignored; the error names the key, the file and line, and the closest valid key.
//!
//! The running gateway shares the config in force through [`live`]: the config watcher
//! publishes, everything else reads a [`live::View`]. [`edit`] changes the file itself
//! keeping its comments (what the CLI does when no gateway runs). This crate knows no
//! actors: watching the file and applying an edit to the running tree live above it.

mod agents;
mod bindings;
mod channels;
mod context;
pub mod duration;
pub mod edit;
mod env_keys;
mod errors;
mod gateway;
pub mod live;
mod load;
pub mod models;
mod overrides;
mod providers;
mod secret;
mod secrets;
mod token;
pub mod tools;
mod validate;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use agents::{
    AdaptiveThinking, AgentConfig, ModelConfig, ThinkingConfig, ThinkingMode, infer_provider,
};
pub use bindings::{Binding, BindingMatch, Peer};
pub use channels::{
    ChannelsConfig, DiscordAccount, DiscordConfig, DmPolicy, LocalChannel, TelegramAccount,
    TelegramConfig, TelegramDm, TelegramGroups, TelegramMode, TopicConfig,
};
pub use context::{
    BUDGET_PERCENT, ContextConfig, ContextLimits, DEFAULT_COMPACT_AT, DEFAULT_KEEP_RECENT,
};
pub use env_keys::DEFAULT_KEY_ENV;
pub use errors::ConfigError;
pub use gateway::{
    AuthConfig, DEFAULT_PORT, GatewayConfig, Keep, Retention, SessionDefaults, SessionOverrides,
    StoreConfig,
};
pub use load::{
    DEFAULT_TOML, FALLBACK_AGENT, Format, Loaded, MAX_CONFIG_BYTES, Sources, TOKEN_FILE_ENV,
    TOKEN_FILE_PROVIDER, load, load_from, parse_str, read_file,
};
pub use overrides::Overrides;
pub use providers::{
    AnthropicConfig, EchoConfig, OpenAiConfig, ProvidersConfig, ResponseConfig, StreamMode,
    StreamOptions, Transport,
};
pub use secret::{SecretRef, SecretSource, SecretValue};
pub use secrets::{FileMode, SecretProvider, SecretsConfig};
pub use token::{MIN_TOKEN_CHARS, token_problem};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// `[gateway]`.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `[store]`.
    #[serde(default)]
    pub store: StoreConfig,
    /// `[sessions]`: timer defaults for every channel.
    #[serde(default)]
    pub sessions: SessionDefaults,
    /// `[agents.<id>]`.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    /// `[[bindings]]`, in order.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// `[providers.*]`.
    #[serde(default)]
    pub providers: ProvidersConfig,
    /// `[response]`.
    #[serde(default)]
    pub response: ResponseConfig,
    /// `[channels.*]`.
    #[serde(default)]
    pub channels: ChannelsConfig,
    /// `[secrets]`.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// `[tools]`: limits of every tool call.
    #[serde(default)]
    pub tools: tools::ToolsConfig,
}

impl Config {
    /// The default agent: the one marked `default = true`, else the one named `default`,
    /// else `main`, else the first by id.
    pub fn default_agent(&self) -> Option<&str> {
        self.agents
            .iter()
            .find(|(_, a)| a.default)
            .map(|(id, _)| id.as_str())
            .or_else(|| self.agents.contains_key("default").then_some("default"))
            .or_else(|| {
                self.agents
                    .contains_key(FALLBACK_AGENT)
                    .then_some(FALLBACK_AGENT)
            })
            .or_else(|| self.agents.keys().next().map(String::as_str))
    }

    /// Session timers for an account: `[sessions]`, then the channel's, then the account's;
    /// for a Discord thread then `[channels.discord.threads]`.
    pub fn session_limits(&self, channel: &str, account: &str, thread: bool) -> SessionDefaults {
        let base = self.sessions;
        match channel {
            "web" => base.with(self.channels.web.sessions()),
            "http" => base.with(self.channels.http.sessions()),
            "telegram" => self.channels.telegram.as_ref().map_or(base, |t| {
                let with_channel = base.with(t.sessions());
                t.accounts
                    .get(account)
                    .map_or(with_channel, |a| with_channel.with(a.sessions()))
            }),
            "discord" => self.channels.discord.as_ref().map_or(base, |d| {
                let with_channel = base.with(d.sessions());
                let with_account = d
                    .accounts
                    .get(account)
                    .map_or(with_channel, |a| with_channel.with(a.sessions()));
                if thread {
                    with_account.with(d.threads)
                } else {
                    with_account
                }
            }),
            _ => base,
        }
    }

    /// The DM topic `key` of `channel` (its prompt and skills), if configured.
    pub fn topic(&self, channel: &str, key: Option<&str>) -> Option<&TopicConfig> {
        match channel {
            "telegram" => self.channels.telegram.as_ref()?.dm.topics.get(key?),
            _ => None,
        }
    }

    /// Whether account `id` of `kind` has the same settings in `other` (a reload restarts
    /// an account whose settings changed, and only that one).
    pub fn same_account(&self, other: &Config, kind: &str, id: &str) -> bool {
        let (a, b) = (&self.channels, &other.channels);
        match kind {
            "telegram" => {
                let get = |c: &ChannelsConfig| {
                    c.telegram
                        .as_ref()
                        .and_then(|t| t.accounts.get(id))
                        .cloned()
                };
                get(a) == get(b)
            }
            "discord" => {
                let get = |c: &ChannelsConfig| {
                    c.discord.as_ref().and_then(|d| d.accounts.get(id)).cloned()
                };
                get(a) == get(b)
            }
            "web" => a.web == b.web,
            "http" => a.http == b.http,
            _ => true,
        }
    }

    /// Every configured account as (channel kind, account id), the built-in ones included.
    pub fn accounts(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if self.channels.web.enabled {
            out.push(("web", "web"));
        }
        if self.channels.http.enabled {
            out.push(("http", "http"));
        }
        if let Some(t) = &self.channels.telegram {
            out.extend(t.accounts.keys().map(|id| ("telegram", id.as_str())));
        }
        if let Some(d) = &self.channels.discord {
            out.extend(d.accounts.keys().map(|id| ("discord", id.as_str())));
        }
        out
    }
}

#[cfg(test)]
mod tests;
