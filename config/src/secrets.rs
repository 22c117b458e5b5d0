//! `[secrets.providers.<alias>]`: where secret refs are resolved.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;
use super::secret::SecretValue;

/// `[secrets]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretsConfig {
    /// Back ends by alias.
    #[serde(default)]
    pub providers: BTreeMap<String, SecretProvider>,
}

/// One secret back end, tagged by `source`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretProvider {
    /// Environment variables.
    Env {
        /// Only these names may be read; all when empty.
        #[serde(default)]
        allowlist: Vec<String>,
    },
    /// A file.
    File {
        /// Default `$PINCER_HOME/secrets.json`.
        path: Option<PathBuf>,
        /// `json` (ids are JSON pointers; default) or `single` (the whole file is one value).
        #[serde(default)]
        mode: FileMode,
    },
    /// HashiCorp Vault KV v2.
    Vault {
        /// Vault address.
        address: String,
        /// Vault token: a ref or `env:`/`file:` form; default `VAULT_TOKEN`, then
        /// `~/.vault-token`.
        token: Option<SecretValue>,
        /// KV mount. Default `secret`.
        #[serde(default = "secret_mount")]
        mount: String,
        /// Enterprise namespace.
        namespace: Option<String>,
        /// How often to look for new versions. Default 30 s.
        #[serde(
            rename = "pollInterval",
            default = "thirty_seconds",
            deserialize_with = "duration::seconds::deserialize"
        )]
        poll_interval: Duration,
    },
    /// AWS Secrets Manager.
    Aws {
        /// Region.
        region: Option<String>,
        /// Endpoint override (as `AWS_ENDPOINT_URL`).
        endpoint: Option<String>,
        /// How often to look for new versions. Default 30 s.
        #[serde(
            rename = "pollInterval",
            default = "thirty_seconds",
            deserialize_with = "duration::seconds::deserialize"
        )]
        poll_interval: Duration,
    },
}

/// How a file back end reads its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// A JSON document; ids are JSON pointers.
    #[default]
    Json,
    /// The whole file is one value.
    Single,
}

fn secret_mount() -> String {
    "secret".to_string()
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
