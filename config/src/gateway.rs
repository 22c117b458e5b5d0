//! `[gateway]`, `[store]` and `[sessions]`: the listener, the data directory, session timers.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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
}

/// `[gateway.auth]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthConfig {
    /// Bearer token for the admin and HTTP APIs; env `PINCER_GATEWAY_TOKEN`. When neither
    /// is set, one is generated into `$PINCER_HOME/gateway.token`.
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
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreConfig {
    /// SQLite file. Default `$PINCER_HOME/pincer.db`. Not reloadable.
    pub path: Option<PathBuf>,
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
}

impl Default for SessionDefaults {
    fn default() -> Self {
        Self {
            idle_hours: Duration::from_secs(24 * 3600),
            max_age_hours: Duration::ZERO,
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
        }
    }
}
