//! `[gateway]`, `[store]` and `[sessions]`: the listener, the data directory, session timers.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use super::duration;
use super::secret::SecretValue;

/// Default gateway port.
pub const DEFAULT_PORT: u16 = 18789;

/// `[gateway]`: the one port that serves health, admin, web chat and the HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct GatewayConfig {
    /// Port to listen on. Default 18789; env `PINCER_GATEWAY_PORT`. Not reloadable.
    pub port: u16,
    /// Address to bind. Default `127.0.0.1`; a non-loopback address needs a token. Not
    /// reloadable.
    pub bind: String,
    /// `[gateway.auth]`.
    pub auth: AuthConfig,
    /// How long in-flight turns may run on SIGTERM before they are left pending. Default 10 s.
    #[serde(deserialize_with = "duration::seconds::deserialize")]
    pub drain_timeout: Duration,
    /// Largest request body accepted, in bytes. Default 1 MiB.
    pub max_body_bytes: u64,
    /// Origins (`https://chat.example.org`) allowed to open the web chat's socket besides
    /// the gateway's own. Default none.
    pub allowed_origins: Vec<String>,
    /// Host names (`chat.example.org`, `pincer.internal:18789`) requests may carry besides
    /// loopback names and the bind address; other hosts need the token. Default none.
    pub allowed_hosts: Vec<String>,
    /// Open connections at most; beyond, the oldest idle ones are closed first. Default
    /// 4096. Not reloadable.
    pub max_connections: NonZeroUsize,
    /// How long a client may take to send a request's headers. Default 10 s. Not
    /// reloadable.
    #[serde(deserialize_with = "duration::seconds::deserialize")]
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection stays open. Default 75 s. Not reloadable.
    #[serde(deserialize_with = "duration::seconds::deserialize")]
    pub idle_timeout: Duration,
    /// How long a connection may have bytes to send that its client takes none of before
    /// it is closed (a reader that stopped reading). Default 30 s. Not reloadable.
    #[serde(deserialize_with = "duration::seconds::deserialize")]
    pub write_timeout: Duration,
}

/// `[gateway.auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// Bearer token for the admin and HTTP APIs; env `PINCER_GATEWAY_TOKEN`, or
    /// `PINCER_GATEWAY_TOKEN_FILE` naming a file that holds only the token. When none is
    /// set, a loopback gateway generates one into `$PINCER_HOME/gateway.token`; any other
    /// refuses to start.
    pub token: Option<SecretValue>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            bind: "127.0.0.1".to_string(),
            auth: AuthConfig::default(),
            drain_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_connections: NonZeroUsize::new(4096).unwrap_or(NonZeroUsize::MIN),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreConfig {
    /// SQLite file. Default `$PINCER_HOME/pincer.db`. Not reloadable.
    pub path: Option<PathBuf>,
    /// `[store.retention]`: how long answered records are kept.
    #[serde(default)]
    pub retention: Retention,
}

/// `[store.retention]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Retention {
    /// Inbox rows answered and delivered, kept this long. Default 7 days.
    pub inbox: Keep,
    /// Transcript entries, kept this long. Default: kept for ever.
    pub transcripts: Keep,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            inbox: Keep::For(Duration::from_secs(7 * 86_400)),
            transcripts: Keep::Forever,
        }
    }
}

/// How long something is kept: `"keep"` (for ever) or a duration (`"7d"`, `"12h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Never pruned.
    Forever,
    /// Pruned once this old.
    For(Duration),
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim().eq_ignore_ascii_case("keep") {
            return Ok(Self::Forever);
        }
        duration::parse_duration(&text)
            .map(Self::For)
            .map_err(|why| de::Error::custom(format!("{why} (or \"keep\")")))
    }
}

/// Session timers, as `[sessions]` defaults or per channel and account.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SessionDefaults {
    /// Idle time after which a session's context ends. Hours, or a duration string.
    /// Default 24.
    #[serde(deserialize_with = "duration::hours::deserialize")]
    pub idle_hours: Duration,
    /// Hard cap on a session's age from its creation; 0 means no cap. Default 0.
    #[serde(deserialize_with = "duration::hours::deserialize")]
    pub max_age_hours: Duration,
    /// Quiet time after which a session's actor stops and its state rests in the store
    /// until its next message (its timers keep running there). Seconds, or a duration
    /// string. Default 5 minutes. Only in `[sessions]`.
    #[serde(deserialize_with = "duration::seconds::deserialize")]
    pub hibernate_after: Duration,
}

/// Default of `sessions.hibernateAfter`: a conversation that goes on keeps its actor
/// between turns, and one left for five minutes costs a store row instead of memory.
const HIBERNATE_AFTER: Duration = Duration::from_secs(300);

impl Default for SessionDefaults {
    fn default() -> Self {
        Self {
            idle_hours: Duration::from_secs(24 * 3600),
            max_age_hours: Duration::ZERO,
            hibernate_after: HIBERNATE_AFTER,
        }
    }
}

/// Per-channel or per-account overrides of [`SessionDefaults`].
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionOverrides {
    /// Overrides `idleHours`.
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub idle_hours: Option<Duration>,
    /// Overrides `maxAgeHours`.
    #[serde(default, deserialize_with = "duration::opt_hours::deserialize")]
    pub max_age_hours: Option<Duration>,
}

impl SessionDefaults {
    /// These defaults with `overrides` applied on top.
    pub fn with(self, overrides: SessionOverrides) -> Self {
        Self {
            idle_hours: overrides.idle_hours.unwrap_or(self.idle_hours),
            max_age_hours: overrides.max_age_hours.unwrap_or(self.max_age_hours),
            ..self
        }
    }
}
