//! `[providers.*]` and `[response]`: model back ends and how replies stream.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::Deserialize;

use super::duration;
use super::secret::SecretValue;

/// `[providers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProvidersConfig {
    /// `[providers.echo]`: the built-in offline model.
    #[serde(default)]
    pub echo: EchoConfig,
    /// `[providers.openai]`.
    pub openai: Option<OpenAiConfig>,
    /// `[providers.anthropic]`.
    pub anthropic: Option<AnthropicConfig>,
}

/// `[providers.echo]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct EchoConfig {
    /// Characters per streamed chunk. Default 16.
    pub chunk_size: NonZeroUsize,
    /// Pause before each chunk. Default 0.
    #[serde(deserialize_with = "duration::millis::deserialize")]
    pub chunk_delay_ms: Duration,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            chunk_size: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
            chunk_delay_ms: Duration::ZERO,
        }
    }
}

/// `[providers.openai]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpenAiConfig {
    /// API base URL; the WebSocket URL is derived from it. Default
    /// `https://api.openai.com/v1`.
    #[serde(default = "openai_base")]
    pub base_url: String,
    /// API key (plaintext or a secret ref).
    pub api_key: Option<SecretValue>,
    /// More keys (auth profiles), rotated with a cooldown on 429 and auth errors.
    #[serde(default)]
    pub api_keys: Vec<SecretValue>,
    /// WebSocket connections kept open. Default 2.
    #[serde(default = "two")]
    pub pool_size: NonZeroUsize,
    /// The seed's `"mode": "streaming"`.
    pub mode: Option<StreamMode>,
    /// The seed's `streamOptions`.
    #[serde(default)]
    pub stream_options: StreamOptions,
    /// A socket is replaced when idle after this long, before the upstream's 60-minute
    /// limit. Default "55m".
    #[serde(
        default = "fifty_five_minutes",
        deserialize_with = "duration::seconds::deserialize"
    )]
    pub socket_max_age: Duration,
    /// How long a reply may go without a byte from the upstream before the call counts as
    /// stalled. Default 120 s.
    #[serde(
        default = "two_minutes",
        deserialize_with = "duration::seconds::deserialize"
    )]
    pub read_timeout: Duration,
}

/// `[providers.anthropic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AnthropicConfig {
    /// API base URL. Default `https://api.anthropic.com`.
    #[serde(default = "anthropic_base")]
    pub base_url: String,
    /// API key (plaintext or a secret ref).
    pub api_key: Option<SecretValue>,
    /// More keys (auth profiles).
    #[serde(default)]
    pub api_keys: Vec<SecretValue>,
    /// `anthropic-version` header. Default `2023-06-01`.
    #[serde(default = "anthropic_version")]
    pub version: String,
    /// Calls in flight at once (spread over `poolSize` connection actors). Default 2.
    #[serde(default = "two")]
    pub pool_size: NonZeroUsize,
    /// `max_tokens` of a reply (raised above a thinking budget when needed). Default 8192.
    #[serde(default = "max_tokens")]
    pub max_tokens: u32,
    /// The seed's `streamOptions`.
    #[serde(default)]
    pub stream_options: StreamOptions,
    /// How long a reply may go without a byte from the upstream before the call counts as
    /// stalled. Default 120 s.
    #[serde(
        default = "two_minutes",
        deserialize_with = "duration::seconds::deserialize"
    )]
    pub read_timeout: Duration,
}

/// How replies are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// Token by token.
    Streaming,
    /// Whole replies.
    Batch,
}

/// `streamOptions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct StreamOptions {
    /// Tokens per chunk pushed to channels. Default 1.
    pub chunk_size: NonZeroUsize,
    /// A warning and a metric when time-to-first-token or a gap between chunks exceeds
    /// this (milliseconds, or a duration string). Default 0 (off).
    #[serde(deserialize_with = "duration::millis::deserialize")]
    pub latency_threshold: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            chunk_size: NonZeroUsize::MIN,
            latency_threshold: Duration::ZERO,
        }
    }
}

/// `[response]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResponseConfig {
    /// `auto` (WebSocket, SSE fallback; default), `websocket` or `sse`.
    #[serde(default)]
    pub transport: Transport,
    /// Per model: warm the WebSocket up (`generate:false`) when it opens.
    #[serde(default)]
    pub openai_ws_warmup: BTreeMap<String, bool>,
}

/// Transport for the OpenAI Responses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket, falling back to SSE when connecting or sending fails.
    #[default]
    Auto,
    /// WebSocket only; errors surface.
    Websocket,
    /// SSE only; never opens a socket.
    Sse,
}

fn openai_base() -> String {
    "https://api.openai.com/v1".to_string()
}
fn anthropic_base() -> String {
    "https://api.anthropic.com".to_string()
}
fn anthropic_version() -> String {
    "2023-06-01".to_string()
}
fn fifty_five_minutes() -> Duration {
    Duration::from_secs(55 * 60)
}
fn two_minutes() -> Duration {
    Duration::from_secs(120)
}
fn max_tokens() -> u32 {
    8192
}
fn two() -> NonZeroUsize {
    NonZeroUsize::MIN.saturating_add(1)
}
