//! `secrets`: resolves the secret references of the config in force and publishes the
//! values their users need (for now: the gateway token), again on every config change.
//!
//! This build resolves plaintext and `env` references from the process environment; the
//! `file`, `vault` and `aws` sources come with the external-secrets work and are reported
//! as unresolved, never as a start-up failure.

use std::collections::BTreeMap;

use pincer_actors::{ChildSpec, Scope};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::{SecretRef, SecretSource, SecretValue};
use crate::gateway::Gateway;

/// Why a secret could not be resolved. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("secret `{0}`: environment variable is not set")]
    MissingEnv(String),
    /// The source is not available in this build.
    #[error("secret `{0}`: source `{1}` is not available in this build")]
    Unsupported(String, &'static str),
}

/// Resolves `value` against environment `env`.
pub fn resolve(value: &SecretValue, env: &BTreeMap<String, String>) -> Result<String, SecretError> {
    match value {
        SecretValue::Plain(text) => Ok(text.clone()),
        SecretValue::Ref(r) => resolve_ref(r, env),
    }
}

fn resolve_ref(r: &SecretRef, env: &BTreeMap<String, String>) -> Result<String, SecretError> {
    match r.source {
        SecretSource::Env => env
            .get(&r.id)
            .cloned()
            .or_else(|| std::env::var(&r.id).ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| SecretError::MissingEnv(r.to_string())),
        other => Err(SecretError::Unsupported(r.to_string(), other.name())),
    }
}

/// The gateway token from config or `PINCER_GATEWAY_TOKEN` (the env layer has folded it
/// into the config already).
pub fn gateway_token(gw: &Gateway) -> Result<Option<String>, SecretError> {
    let config = gw.config();
    config
        .gateway
        .auth
        .token
        .as_ref()
        .map(|t| resolve(t, &gw.sources().env))
        .transpose()
}

/// The secrets actor.
#[derive(Debug, Clone, Copy)]
pub struct Secrets;

/// The child spec of `secrets`.
pub fn spec(gw: &Gateway) -> ChildSpec {
    crate::gateway::child(gw, "secrets", Secrets)
}

impl Actor for Secrets {
    type Msg = ();
    type State = ();
    type Arguments = (Gateway, Scope);

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        (gw, scope): (Gateway, Scope),
    ) -> Result<(), ActorProcessingErr> {
        let mut changes = gw.config_changes();
        scope.spawn(async move {
            while changes.changed().await.is_ok() {
                match gateway_token(&gw) {
                    // A token removed from config keeps the one in use (the generated one).
                    Ok(Some(token)) => gw.set_token(Some(token)),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%error, "Cannot resolve the gateway token; the one in use stays.")
                    }
                }
            }
        });
        Ok(())
    }
}
