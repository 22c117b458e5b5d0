//! What every secret back end gives back: a value with its version, or why not.

/// One secret as a back end holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The secret.
    pub value: String,
    /// The back end's version of it (Vault's `metadata.version`, AWS's `VersionId`, a
    /// digest for files and env): the snapshot swaps only when this changes.
    pub version: String,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("value", &"<redacted>")
            .field("version", &self.version)
            .finish()
    }
}

/// Why a back end gave no value. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The back end has no such secret (or no such field/key in it).
    #[error("not found: {0}")]
    NotFound(String),
    /// The back end refused us (403, bad credentials, file permissions).
    #[error("access denied: {0}")]
    Denied(String),
    /// The back end could not be reached or is not serving (connect error, 5xx, sealed).
    /// The last good value stays in use.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The config or the reply is not usable (bad id, malformed body).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl BackendError {
    /// Whether the back end itself is failing (as opposed to a secret missing): a
    /// failing back end is reported degraded, and its last good values stay.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}
