//! A reader of secrets limited to the refs in one actor's config: a provider's keys, an
//! agent's key, an account's token. Every read leaves a row in the access trail when its
//! outcome or version changed since that actor's last read (never the value).

use std::sync::Arc;

use pincer_config::live::View;
use pincer_config::{SecretRef, SecretValue};

use crate::snapshot::Secrets;
use crate::{SecretError, refs};

/// The secrets one owner may read; see the [module docs](self). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    secrets: Arc<Secrets>,
    config: View,
    owner: String,
}

impl Handle {
    /// The handle of `owner` (a tree path: see [`refs`] for the owners), reading `secrets`
    /// under the config in force.
    pub fn new(secrets: Arc<Secrets>, config: View, owner: impl Into<String>) -> Self {
        Self {
            secrets,
            config,
            owner: owner.into(),
        }
    }

    /// Whose handle this is.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The resolved secrets behind this handle (their change notifications).
    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// The value of `value`: itself when plaintext, else the snapshot's value of the ref,
    /// if the ref is this owner's.
    pub fn get(&self, value: &SecretValue) -> Result<String, SecretError> {
        match value {
            SecretValue::Plain(text) => Ok(text.clone()),
            SecretValue::Ref(r) => self.get_ref(r),
        }
    }

    fn get_ref(&self, r: &SecretRef) -> Result<String, SecretError> {
        let config = self.config.current();
        let unresolved = |why: String| SecretError::Unresolved {
            reference: r.to_string(),
            why,
        };
        let key = refs::settle(r, &config).map_err(unresolved)?;
        let secrets = &self.secrets;
        let in_scope = secrets
            .scopes(&config)
            .get(&self.owner)
            .is_some_and(|keys| keys.contains(&key));
        if !in_scope {
            secrets.record(&self.owner, &key, "denied: not in this actor's config", "");
            return Err(SecretError::OutOfScope {
                owner: self.owner.clone(),
                reference: r.to_string(),
            });
        }
        let snapshot = secrets.snapshot();
        if let Some(held) = snapshot.values.get(&key) {
            secrets.record(&self.owner, &key, "ok", &held.version);
            return Ok(held.value.to_string());
        }
        let why = snapshot
            .failures
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "not resolved yet".to_string());
        secrets.record(&self.owner, &key, &format!("unresolved: {why}"), "");
        Err(unresolved(why))
    }
}
