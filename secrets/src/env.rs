//! The `env` back end: environment variables, optionally limited to an allowlist.

use std::collections::BTreeMap;

use super::backend::{BackendError, Fetched};

/// Reads variable `id` from `env` (the gateway's `.env` layer) or the process environment.
pub fn fetch(
    id: &str,
    allowlist: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Fetched, BackendError> {
    if !allowlist.is_empty() && !allowlist.iter().any(|name| name == id) {
        return Err(BackendError::Denied(format!(
            "`{id}` is not in the env back end's allowlist"
        )));
    }
    env.get(id)
        .cloned()
        .or_else(|| std::env::var(id).ok())
        .filter(|v| !v.is_empty())
        .map(|value| Fetched {
            version: super::digest(&value),
            value,
        })
        .ok_or_else(|| BackendError::NotFound(format!("environment variable `{id}` is not set")))
}
