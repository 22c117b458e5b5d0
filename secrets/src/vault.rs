//! The `vault` back end: HashiCorp Vault's KV version 2 engine over HTTP.
//!
//! A ref id is `path/to/secret#field` (field `value` when left out). One read of a path
//! gives every field and the path's version; the watcher reads each path once per poll
//! and swaps values only when the version moved.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::backend::BackendError;

/// Vault answers larger than this are refused.
const MAX_ANSWER: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

/// One Vault back end, with the token it reads with.
#[derive(Clone)]
pub struct Vault {
    /// `https://vault.example.com:8200`, no trailing slash.
    pub address: String,
    /// The KV v2 mount (`secret`).
    pub mount: String,
    /// The enterprise namespace, if any.
    pub namespace: Option<String>,
    /// The Vault token.
    pub token: String,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// A path as read: its fields and version.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // holds secret values
pub struct Secret {
    /// The fields of `data.data`.
    pub fields: Map<String, Value>,
    /// `data.metadata.version`.
    pub version: u64,
}

/// Splits a ref id into (path, field).
pub fn split_id(id: &str) -> (&str, &str) {
    match id.split_once('#') {
        Some((path, field)) if !field.is_empty() => (path.trim_matches('/'), field),
        Some((path, _)) => (path.trim_matches('/'), "value"),
        None => (id.trim_matches('/'), "value"),
    }
}

impl Vault {
    fn url(&self, path: &str) -> String {
        format!(
            "{}/v1/{}/data/{}",
            self.address.trim_end_matches('/'),
            self.mount.trim_matches('/'),
            path.trim_matches('/')
        )
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let builder = builder
            .header("X-Vault-Token", &self.token)
            .timeout(TIMEOUT);
        match &self.namespace {
            Some(ns) => builder.header("X-Vault-Namespace", ns),
            None => builder,
        }
    }

    /// Reads the latest version of `path`.
    pub async fn read(&self, http: &reqwest::Client, path: &str) -> Result<Secret, BackendError> {
        let response = self
            .request(http.get(self.url(path)))
            .send()
            .await
            .map_err(|e| unreachable_error(&self.address, &e))?;
        let body = answer(response, path).await?;
        let fields = body
            .pointer("/data/data")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| {
                BackendError::Invalid(format!("Vault answer for `{path}` has no data.data"))
            })?;
        let version = body
            .pointer("/data/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(Secret { fields, version })
    }

    /// Writes `fields` as a new version of `path`; returns the version.
    pub async fn write(
        &self,
        http: &reqwest::Client,
        path: &str,
        fields: Map<String, Value>,
    ) -> Result<u64, BackendError> {
        let response = self
            .request(http.post(self.url(path)))
            .json(&json!({ "data": fields }))
            .send()
            .await
            .map_err(|e| unreachable_error(&self.address, &e))?;
        let body = answer(response, path).await?;
        Ok(body
            .pointer("/data/version")
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }
}

/// The field `field` of `secret` as text (non-strings as their JSON).
pub fn field(secret: &Secret, path: &str, field: &str) -> Result<String, BackendError> {
    match secret.fields.get(field) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Null) | None | Some(Value::String(_)) => Err(BackendError::NotFound(format!(
            "Vault path `{path}` has no field `{field}`"
        ))),
        Some(other) => Ok(other.to_string()),
    }
}

fn unreachable_error(address: &str, error: &reqwest::Error) -> BackendError {
    let what = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    BackendError::Unavailable(format!("Vault at {address}: {what}"))
}

async fn answer(response: reqwest::Response, path: &str) -> Result<Value, BackendError> {
    let status = response.status().as_u16();
    let body = pincer_core::net::read_capped(response, MAX_ANSWER)
        .await
        .map_err(|e| BackendError::Unavailable(format!("Vault answer for `{path}`: {e}")))?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let errors = json
        .get("errors")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|e| !e.is_empty());
    let said = |default: &str| errors.clone().unwrap_or_else(|| default.to_string());
    match status {
        200..=299 if json.is_object() => Ok(json),
        200..=299 => Err(BackendError::Invalid(format!(
            "Vault answer for `{path}` is not JSON"
        ))),
        404 => Err(BackendError::NotFound(format!(
            "Vault has no secret at `{path}`"
        ))),
        401 | 403 => Err(BackendError::Denied(format!(
            "Vault refused `{path}`: {}",
            said("permission denied")
        ))),
        503 => Err(BackendError::Unavailable(format!(
            "Vault is not serving (503: {})",
            said("sealed or in standby")
        ))),
        s if s >= 500 => Err(BackendError::Unavailable(format!(
            "Vault answered {s}: {}",
            said("server error")
        ))),
        s => Err(BackendError::Invalid(format!(
            "Vault answered {s} for `{path}`: {}",
            said("bad request")
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_split_into_path_and_field() {
        assert_eq!(super::split_id("app/openai#key"), ("app/openai", "key"));
        assert_eq!(super::split_id("/app/openai"), ("app/openai", "value"));
        assert_eq!(super::split_id("app/openai#"), ("app/openai", "value"));
    }
}
